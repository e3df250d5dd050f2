"""Likely mislabelled rows dropped before training (``data.drop_misaligned: true``).

Every train and eval row that passed the data checks is force-aligned to its transcript through
``data.align_model``'s CTC posteriors, and flagged by the rule ``check-data --align`` uses
(:mod:`wavtune.infer.mislabel`): a score far below the data's own, with a greedy transcript that
differs from the given one. The threshold is chosen on the train and eval rows together, so a
small eval set is judged by the same bar. The test split is never touched: its score must stay
comparable with runs that did not clean. Dropped rows are logged by id and counted as
``misaligned`` in the split's ``dropped`` (``metrics.json``, the model card's data table).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from wavtune.config import Config
from wavtune.config.sections import ConfigError
from wavtune.data.manifest import Utterance
from wavtune.infer.aligner import RowAlignment
from wavtune.train.prepare import PreparedData

log = logging.getLogger("wavtune")
CLEANED_SPLITS = ("train", "eval")
MISALIGNED = "misaligned"  # the problem name in ``dropped``


def scoring_device() -> str:
    """The device of this process's accelerator state (the one the run trains on)."""
    from accelerate import PartialState

    return str(PartialState().device)


def score_rows(config: Config, data: PreparedData, device: str
               ) -> dict[str, list[RowAlignment]]:
    """Each cleaned split's rows aligned by ``data.align_model`` (in row order)."""
    from wavtune.infer.aligner import Aligner
    from wavtune.infer.loaded import require_model_folder
    from wavtune.infer.mislabel import SCORING_OPTIONS
    from wavtune.run.directory import RunError

    run = config.data.align_model
    try:
        require_model_folder(run)
    except RunError as e:
        raise ConfigError(f"data.align_model: {e}") from None
    aligner = Aligner(run, device, SCORING_OPTIONS)
    return {name: list(aligner.align_rows(data.split(name), config.data.text_column))
            for name in CLEANED_SPLITS if data.split(name)}


def drop_misaligned(data: PreparedData, config: Config, device: str | None = None
                    ) -> PreparedData:
    """``data`` without the train and eval rows flagged as mislabelled, counted in ``dropped``;
    unchanged unless ``data.drop_misaligned``."""
    if not config.data.drop_misaligned:
        return data
    from wavtune.infer.mislabel import MisalignOptions, data_threshold, find_misaligned

    scored = score_rows(config, data, device or scoring_device())
    threshold = data_threshold([r.score for rows in scored.values() for r in rows
                                if r.alignment is not None])
    kept: dict[str, tuple[Utterance, ...]] = {}
    dropped = {name: dict(problems) for name, problems in data.dropped.items()}
    for name, rows in scored.items():
        report = find_misaligned(rows, MisalignOptions(threshold=threshold))
        flagged = {m.where for m in report.flagged}
        for m in report.flagged:
            log.warning("data.%s: dropped %s (data.drop_misaligned): score %.3f below %.3f, text "
                        "%r, %s hears %r", name, m.where, m.score, threshold, m.text,
                        config.data.align_model, m.hypothesis)
        kept[name] = tuple(u for u, r in zip(data.split(name), rows) if r.where not in flagged)
        if flagged:
            dropped[name] = {**dropped.get(name, {}), MISALIGNED: len(flagged)}
        log.info("data.%s: %d of %d rows flagged as mislabelled by %s (threshold %.3f)", name,
                 len(flagged), len(rows), config.data.align_model, threshold)
    if not kept.get("train", data.train):
        raise ConfigError(f"data.drop_misaligned: every training row was flagged as mislabelled "
                          f"by {config.data.align_model}; check that data.align_model was "
                          f"trained on this language and text normalisation")
    return replace(data, train=kept.get("train", data.train), eval=kept.get("eval", data.eval),
                   dropped=dropped)
