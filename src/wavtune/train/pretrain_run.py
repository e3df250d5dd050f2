"""``wavtune pretrain``: self-supervised pre-training on unlabelled audio with the training loop.

:class:`PretrainTrainer` is a :class:`~wavtune.train.trainer.Trainer` whose model is transformers'
``*ForPreTraining``, whose data needs only audio (a manifest's text column is ignored; a folder of
audio files works too) and whose objective is
:class:`~wavtune.train.pretraining.ContrastiveObjective`.
Everything else is the fine-tuning loop's: duration-bucketed batches, the audio cache, the data
checks (minus text), exact resume, non-finite-step skipping, several processes, the run directory.
The published folder is a transformers model folder that ``wavtune train`` fine-tunes with
``model.name_or_path: RUN``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavtune.config import Config
from wavtune.constants import AUDIO_SUFFIXES
from wavtune.data.collate import Collator
from wavtune.data.dataset import SpeechDataset
from wavtune.data.frames import FrameGeometry
from wavtune.data.manifest import ManifestError, Utterance, with_durations
from wavtune.model.families import geometry_of
from wavtune.model.pretraining import build_pretraining_model, set_fine_tuning_masks
from wavtune.run.diagnostics import DiagnosticMonitor, DiagnosticSettings
from wavtune.train.checkpoint import save_model
from wavtune.train.engine import make_accelerator
from wavtune.train.hubert import HubertObjective, run_codebook
from wavtune.train.meter import TrainMeter
from wavtune.train.prepare import (
    SPLITS,
    PreparedData,
    hold_out,
    read_split,
    train_share,
)
from wavtune.train.pretraining import ContrastiveObjective, PretrainError, draw_masks
from wavtune.train.publish import load_best_weights
from wavtune.train.setup import check_for_model, open_run
from wavtune.train.trackers import start_trackers
from wavtune.train.trainer import Trainer, TrainResult

log = logging.getLogger("wavtune")

COLLAPSED_PERPLEXITY = 2.5  # a codebook used at about 2 entries: the collapse of transformers#14387


@dataclass(frozen=True)
class PretrainEvaluation:
    """The objective on the eval set, with fixed (seeded) masks: the loss and the objective's
    ``eval_parts`` (contrastive loss and accuracy; masked loss and accuracy for hubert)."""

    loss: float
    figures: dict[str, float]
    num_utterances: int

    def scores(self) -> dict[str, float]:
        return {"loss": self.loss, **self.figures}

    def log_record(self, prefix: str = "eval_") -> dict[str, Any]:
        return {f"{prefix}{k}": v for k, v in self.scores().items()}


def _folder_rows(folder: Path) -> list[Utterance]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    return [Utterance(str(p.relative_to(folder).with_suffix("")), p.resolve()) for p in files]


def read_unlabelled(config: Config) -> PreparedData:
    """The audio of each split (manifests or folders of audio files); text is not read."""
    if not config.data.train:
        raise ManifestError("data.train: no training audio given; set a manifest or a folder of "
                            "audio files with --set data.train=PATH")
    splits: dict[str, tuple[Utterance, ...]] = {}
    for name in SPLITS:
        path = getattr(config.data, name)
        if path and Path(path).is_dir():
            splits[name] = tuple(with_durations(_folder_rows(Path(path))))
        else:
            splits[name] = read_split(config, name)[0]
        if name == "train":
            splits[name] = train_share(config, splits[name])
        if path and not splits[name]:
            raise ManifestError(f"data.{name}={path}: no audio rows in it; give a manifest with "
                                f"an 'audio' column or a folder of audio files")
    if config.data.eval_from_train > 0:
        splits["train"], splits["eval"] = hold_out(splits["train"], config.data.eval_from_train,
                                                   config.train.seed)
    return PreparedData(config, splits["train"], splits["eval"], (), None)


def pretraining_config(config: Config) -> Config:
    """``config`` as pre-training runs it: chosen by eval loss; from scratch, the conv feature
    encoder trains too (a frozen random one would never learn)."""
    if config.train.regularize_after_steps:  # masking is the objective here, not a regulariser
        raise PretrainError("train.regularize_after_steps: applies to fine-tuning (wavtune train),"
                            " not to pre-training, whose masks are its objective; set it to 0")
    model = config.model
    if (not model.name_or_path or model.random_init) and model.freeze_feature_encoder:
        model = replace(model, freeze_feature_encoder=False)
    return replace(config, model=model,
                   train=replace(config.train, metric_for_best="loss"))


def check_maskable(data: PreparedData, config: Config, samples_per_frame: int, rate: int) -> None:
    """Every clip has more frames than a masked span, or an error naming the shortest one."""
    span = config.pretrain.mask_time_length
    for name in ("train", "eval"):
        for utt in data.split(name):
            frames = int((utt.duration_s or 0.0) * rate) // samples_per_frame
            if frames <= span:
                raise PretrainError(
                    f"data.{name}: clip {utt.id!r} ({utt.duration_s:.3f} s) gives {frames} frames, "
                    f"not more than pretrain.mask_time_length={span}: too short to mask. Set "
                    f"data.min_duration_s={(span + 2) * samples_per_frame / rate:.2f} with "
                    f"data.on_error=skip to drop such clips, or lower pretrain.mask_time_length")


class PretrainTrainer(Trainer):
    """The training loop with a pre-training model, unlabelled data and the contrastive loss."""

    command = "pretrain"
    objective: ContrastiveObjective | HubertObjective

    def __init__(self, config: Config, resume: bool = False, progress: bool = True) -> None:
        from accelerate.utils import set_seed

        config = pretraining_config(config)
        self.config, self.progress = config, progress
        t = config.train
        # DDP must allow parameters that get no gradient in a step: not every parameter of a
        # pre-training model takes part in every step's loss, and without it two processes
        # stop at the second step (tests/test_pretrain_distributed.py)
        self.accelerator = make_accelerator(config, True)
        self.is_main = self.accelerator.is_main_process
        set_seed(t.seed)
        self.run = open_run(config, self.accelerator, resume)
        self.built = build_pretraining_model(config.model, config.pretrain)
        geometry = geometry_of(self.built.model.config)
        self.data = check_for_model(read_unlabelled(config), geometry, self.built.sample_rate,
                                    config, self.run if self.is_main else None, progress=False)
        check_maskable(self.data, config, geometry.samples_per_frame, self.built.sample_rate)
        if self.is_main:
            self.built.feature_extractor.save_pretrained(str(self.run.root))
        self._start_engine(config, resume, progress and self.is_main, with_test=False)
        self.objective = self._objective(config, geometry)
        self.monitor = DiagnosticMonitor(DiagnosticSettings.from_config(config), ())
        self.meter = TrainMeter()
        log.info("pre-training %s (%.2fM parameters) on %d clips (%d eval); %d steps",
                 type(self.built.model).__name__,
                 sum(p.numel() for p in self.built.model.parameters()) / 1e6,
                 len(self.train_set), len(self.eval_set or []), self.total_steps)
        self.trackers = start_trackers(self.accelerator, config, self.run.root)

    def _objective(self, config: Config, geometry: FrameGeometry
                   ) -> ContrastiveObjective | HubertObjective:
        """The objective ``pretrain.objective`` names; hubert's codebook is read back or fitted
        on the training audio now, before the first step."""
        uses_mask = self.built.uses_attention_mask
        if config.pretrain.objective == "contrastive":
            return ContrastiveObjective(config.pretrain, uses_mask)
        codebook = run_codebook(config, self.run.root, self.train_set, geometry,
                                int(self.built.model.config.num_clusters), self.accelerator)
        return HubertObjective(codebook, config.pretrain, uses_mask)

    def evaluate(self, dataset: SpeechDataset, desc: str = "evaluate") -> Any:
        """The objective on ``dataset`` with masks and negatives seeded from the clip order (the
        same every evaluation), in eval mode; the global RNG is left as it was."""
        model, collate, size = (
            self.unwrapped,
            Collator(with_labels=False),
            self.config.train.eval_batch_size,
        )
        rng = np.random.get_state()
        np.random.seed(self.config.train.seed)
        was_training = model.training
        model.eval()
        names = self.objective.eval_parts
        totals = np.zeros(len(names) + 2)  # loss, the parts, masked frames
        try:
            with torch.no_grad():
                for start in range(0, len(dataset), size):
                    batch = collate(
                        [dataset[i] for i in range(start, min(start + size, len(dataset)))]
                    )
                    step = self.objective(model, batch.to(self.accelerator.device))
                    masked = float(step.parts["masked_share"]) * batch_frames(model, batch)
                    totals += [float(step.total) * masked,
                               *(float(step.parts[k]) * masked for k in names), masked]
        finally:
            np.random.set_state(rng)
            model.train(was_training)
        n = max(totals[-1], 1.0)
        return PretrainEvaluation(totals[0] / n, {k: totals[1 + i] / n for i, k in
                                                  enumerate(names)}, len(dataset))

    def _log(self, record: dict[str, Any]) -> None:
        super()._log(record)
        predicted, used = record.get("cluster_perplexity"), record.get("target_perplexity")
        if predicted is not None and used is not None and record["step"] > 0 and \
                predicted < COLLAPSED_PERPLEXITY < used:
            log.warning(
                "step %d: the model predicts ~%.1f clusters while the targets use ~%.1f: it has "
                "collapsed onto the most frequent ones (masked accuracy %.3f). Lower "
                "train.learning_rate with a longer train.warmup_steps; keep the gradient norm in "
                "0.5-2", record["step"], predicted, used, record.get("masked_accuracy", math.nan))
        perplexity = record.get("codevector_perplexity")
        if perplexity is not None and perplexity < COLLAPSED_PERPLEXITY and record["step"] > 0:
            log.warning(
                "step %d: codevector perplexity %.2f: the codebook has collapsed to ~2 entries "
                "(contrastive loss %.3g, grad norm %.3g). Draw negatives from all real frames "
                "(pretrain.negatives_from=real), lower train.learning_rate with a longer "
                "train.warmup_steps, raise pretrain.diversity_loss_weight; keep the gradient norm "
                "in 0.5-2", record["step"], perplexity, record.get("contrastive_loss", math.nan),
                record.get("grad_norm", math.nan))

    def _publish(self, wall_s: float) -> TrainResult:
        """The best checkpoint's weights as a transformers model folder, and metrics.json."""
        published = load_best_weights(self.run, self.state, self.unwrapped)
        scored = None
        if self.is_main:
            set_fine_tuning_masks(self.unwrapped.config, self.config.model)
            save_model(self.unwrapped, self.run.root)
            if self.eval_set is not None:
                scored = self.evaluate(self.eval_set)
            self.run.write_json(self.run.metrics, {
                "task": "pretrain", "objective": self.config.pretrain.objective,
                "published_step": published, "last_step": self.state.step,
                "best_step": self.state.best_step, "best_metric": self.state.best_metric,
                "nonfinite_steps": self.state.nonfinite_steps, "train_runtime_s": round(wall_s, 1),
                "train_utterances": len(self.train_set),
                "train_hours": round(sum(self.train_set.durations()) / 3600, 4),
                "num_processes": self.accelerator.num_processes,
                "eval": None if scored is None else {**scored.scores(),
                                                     "utterances": scored.num_utterances}})
        self.accelerator.wait_for_everyone()
        return TrainResult(self.run.root, self.state.step, published, self.state.best_step,
                           "loss", self.state.best_metric, None, None, wall_s,
                           is_main=self.is_main)


def batch_frames(model: Any, batch: Any) -> float:
    from wavtune.train.pretraining import frame_mask

    return float(frame_mask(model, batch).sum())


def pretrain(config: Config, resume: bool = False, progress: bool = True) -> TrainResult:
    """Pre-train the model ``config`` describes on its unlabelled audio; publish the folder."""
    return PretrainTrainer(config, resume=resume, progress=progress).fit()


__all__ = ["PretrainTrainer", "draw_masks", "pretrain"]
