"""The steps that set a run up before its first batch, in the order the Trainer takes them: the run
directory, the data checked against the model's geometry, and the summary said before training.

The data is read and its vocabulary and label sets built without the model
(:func:`wavtune.train.prepare.prepare_data`); the model is built from them; only the CTC
feasibility check (are there enough frames for the transcript?) needs the model's conv geometry,
which is why it runs here, after the build.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wavtune.config import Config
from wavtune.data.cache import CacheSettings, open_cache
from wavtune.data.dataset import AudioSettings
from wavtune.data.frames import FrameGeometry
from wavtune.data.spool import DecodedSpool
from wavtune.model.build import BuiltModel, count_parameters
from wavtune.model.families import encoder_config, family_of, geometry_of
from wavtune.run.directory import RunDir, prepare_run_dir
from wavtune.train.cleaning import drop_misaligned
from wavtune.train.loader import cache_folder
from wavtune.train.prepare import PreparedData

log = logging.getLogger("wavtune")


def open_run(config: Config, accelerator: Any, resume: bool) -> RunDir:
    """The run directory ``train.output_dir``: the main process creates (or checks, resuming)
    it and saves the resolved config; the others wait for it (every process must call this)."""
    run = RunDir(Path(config.train.output_dir))
    if accelerator.is_main_process:
        run = prepare_run_dir(config.train.output_dir, config, resume)
    accelerator.wait_for_everyone()
    return run


def fit_to_model(data: PreparedData, built: BuiltModel, config: Config, run: RunDir | None,
                 progress: bool = True) -> PreparedData:
    """``data`` after the data checks for this model (conv geometry, sample rate), rows dropped or
    the run stopped as ``data.on_error`` says, then likely mislabelled rows dropped
    (``data.drop_misaligned``); the vocabulary and feature extractor are saved in
    ``run`` (None: not the main process, which alone writes)."""
    warning = family_of(built.model.config).frame_warning(
        encoder_config(built.model.config), built.sample_rate)
    if warning:
        log.warning("%s", warning)
    checked = check_for_model(data, geometry_of(built.model.config), built.sample_rate, config,
                              run, progress)
    checked = drop_misaligned(checked, config)  # data.drop_misaligned: rows the checks passed
    if run is not None:
        if checked.vocab is not None:
            checked.vocab.save(run.root)
        built.feature_extractor.save_pretrained(str(run.root))
    return checked


def check_for_model(data: PreparedData, geometry: FrameGeometry, sample_rate: int,
                    config: Config, run: RunDir | None, progress: bool = True) -> PreparedData:
    """``data.checked`` for a model of this geometry and rate, keeping the clips it decodes for
    the audio cache about to be built (``decoded`` of the result; deleted if the checks fail)."""
    spool = decoded_spool(data, sample_rate, config, run)
    try:
        return data.checked(geometry, sample_rate, config.data.on_error, progress=progress,
                            spool=spool)
    except BaseException:
        if spool is not None:
            spool.close()
        raise


def decoded_spool(data: PreparedData, sample_rate: int, config: Config, run: RunDir | None
                  ) -> DecodedSpool | None:
    """Where the checks keep the clips they decode for the audio cache about to be built: only
    in the main process (it alone builds caches) and only when no valid cache exists yet."""
    if run is None or not config.data.audio_cache or not data.train:
        return None
    folder = cache_folder(config.data, run.root)
    if open_cache(data.train, CacheSettings(sample_rate), folder) is not None:
        return None  # built by an earlier run over the same rows: nothing will be decoded
    return DecodedSpool(folder, sample_rate)


def audio_settings(built: BuiltModel) -> AudioSettings:
    """How the datasets turn audio into the model's input (its feature extractor's settings)."""
    return AudioSettings(built.sample_rate,
                         bool(getattr(built.feature_extractor, "do_normalize", False)),
                         built.front_end)


def log_summary(built: BuiltModel, data: PreparedData, train_rows: int, eval_rows: int,
                total_steps: int, steps_per_epoch: int) -> None:
    """Say what is about to be trained: the model's size and heads, the data, the steps."""
    model = built.model
    heads = [f"vocabulary {len(data.vocab)} tokens"] if data.vocab else []
    heads += [f"{s.column}: {len(s)} labels" for s in data.label_sets]
    log.info("model: %s, %.2fM parameters (%.2fM trainable); %s",
             type(model).__name__, count_parameters(model) / 1e6,
             count_parameters(model, trainable_only=True) / 1e6, "; ".join(heads))
    log.info("data: %d train / %d eval utterances; %d steps (%d per epoch)",
             train_rows, eval_rows, total_steps, steps_per_epoch)


def check_first_step(built: BuiltModel, model: Any) -> None:
    """After the first backward of a PEFT run: every trainable tensor got a gradient, else a
    diagnosis now (not a run that silently trains only its head)."""
    if built.tuning is None or not built.tuning.efficient:
        return
    from wavtune.model.families import encoder_config
    from wavtune.model.peft import check_gradients

    check_gradients(model, float(getattr(encoder_config(model.config), "layerdrop", 0.0) or 0.0))
