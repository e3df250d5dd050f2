"""The HuBERT-style pre-training objective (its first iteration): mask spans of real frames and
predict, for each masked frame, the k-means cluster id of its MFCC (+deltas) frame.

The targets come from a :class:`~wavtune.data.clusters.Codebook` fitted on a seeded sample of
the training audio before the first step (:func:`run_codebook`) and saved in the run folder: a
resumed run reads it back, a continued pre-training from a published folder reuses that
folder's. Each batch's targets are cut from its own waveforms at the encoder's frame rate.
Masks are :func:`~wavtune.train.pretraining.span_masks` (transformers' ``_compute_mask_indices``
on real frames only, from numpy's global RNG, which checkpoints restore), the loss is the
cross-entropy on masked real frames (plus ``pretrain.unmasked_loss_weight`` times that on the
unmasked real ones), never on padding. Logged: masked/unmasked loss and accuracy, the
perplexity of the predicted clusters and of the targets over masked frames.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wavtune.config import Config, PretrainConfig
from wavtune.data.audio import AudioError, normalize_waveform
from wavtune.data.clusters import CLUSTERS_FILE, ClusterError, Codebook, fit_codebook, load_codebook
from wavtune.data.collate import IGNORE_INDEX, Batch
from wavtune.data.dataset import SpeechDataset
from wavtune.data.frames import FrameGeometry
from wavtune.data.mfcc import MfccSettings
from wavtune.train.objective import StepLoss
from wavtune.train.pretraining import frame_mask, span_masks

log = logging.getLogger("wavtune")


def perplexity(probs: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a distribution [clusters]: how many clusters are in use."""
    p = probs / probs.sum().clamp(min=1e-12)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())


def frame_targets(codebook: Codebook, batch: Batch, real: np.ndarray) -> torch.Tensor:
    """Cluster ids [batch, frames] of each clip's real frames; IGNORE_INDEX on padding."""
    waves = batch.input_values.detach().cpu().numpy()
    samples = batch.attention_mask.sum(dim=1).cpu().numpy()
    targets = np.full(real.shape, IGNORE_INDEX, dtype=np.int64)
    for b, frames in enumerate(real.sum(axis=1)):
        targets[b, :frames] = codebook.targets(waves[b, :samples[b]], int(frames))
    return torch.from_numpy(targets)


@dataclass
class HubertObjective:
    """The loop's objective for ``*ForClusterPrediction`` models: cross-entropy per masked
    frame, with its parts."""

    codebook: Codebook
    pre: PretrainConfig
    use_attention_mask: bool = True
    eval_parts: tuple[str, ...] = ("masked_loss", "masked_accuracy")

    def __call__(self, model: Any, batch: Batch) -> StepLoss:
        real = frame_mask(model, batch)
        masked = span_masks(real, self.pre)
        device = batch.input_values.device
        targets = frame_targets(self.codebook, batch, real).to(device)
        m = torch.from_numpy(masked).to(device)
        kept = torch.from_numpy(real & ~masked).to(device)
        inputs = batch.model_inputs(self.use_attention_mask, with_labels=False)
        logits = model(**inputs, mask_time_indices=m)  # [batch, frames, clusters]
        ce = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX,
                             reduction="none")  # [batch, frames], 0 on padding
        masked_loss = ce[m].mean()
        unmasked_loss = ce[kept].mean() if bool(kept.any()) else ce.sum() * 0.0
        total = masked_loss + self.pre.unmasked_loss_weight * unmasked_loss
        with torch.no_grad():
            hits = logits.argmax(-1) == targets
            probs = logits[m].float().softmax(-1).mean(0)
            counts = torch.bincount(targets[m], minlength=logits.shape[-1]).float()
            parts = {"masked_loss": masked_loss.detach(),
                     "unmasked_loss": unmasked_loss.detach(),
                     "masked_accuracy": hits[m].float().mean(),
                     "unmasked_accuracy": hits[kept].float().mean() if bool(kept.any())
                     else torch.tensor(0.0),
                     "cluster_perplexity": perplexity(probs),
                     "target_perplexity": perplexity(counts),
                     "masked_share": m.sum().float() / max(int(real.sum()), 1)}
        return StepLoss(total, parts)

    def on_step(self, model: Any, step: int) -> None:
        """Nothing in this objective follows the step."""


def mfcc_settings(geometry: FrameGeometry, sample_rate: int) -> MfccSettings:
    return MfccSettings(sample_rate, geometry.samples_per_frame, geometry.receptive_field)


def sample_waves(dataset: SpeechDataset, geometry: FrameGeometry, seconds: float, seed: int
                 ) -> list[tuple[np.ndarray, int]]:
    """A seeded sample of ``seconds`` of ``dataset``'s audio as (waveform, frames) pairs, the
    waveforms normalised as the model reads them (clips that fail to decode are left out)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    durations, picked, total = dataset.durations(), [], 0.0
    for i in order:
        if total >= seconds:
            break
        try:
            wave = dataset.waveform(int(i))
        except AudioError:
            continue
        if dataset.audio.do_normalize:
            wave = normalize_waveform(wave)
        picked.append((wave, geometry.frames(len(wave))))
        total += durations[int(i)] or len(wave) / dataset.audio.sample_rate
    return picked


def _source(config: Config, root: Path) -> Path | None:
    """Where this run's codebook already is: its own folder (a resume), else the folder it
    continues from; None when it has to be fitted."""
    if (root / CLUSTERS_FILE).is_file():
        return root / CLUSTERS_FILE
    model = config.model
    start = Path(model.name_or_path) / CLUSTERS_FILE if model.name_or_path else None
    return start if start is not None and start.is_file() and not model.random_init else None


def run_codebook(config: Config, root: Path, dataset: SpeechDataset, geometry: FrameGeometry,
                 num_clusters: int, accelerator: Any) -> Codebook:
    """The run's codebook: read back (resume, continued pre-training) or fitted by the main
    process on a sample of ``dataset`` and saved in ``root``; every process must call this."""
    settings = mfcc_settings(geometry, dataset.audio.sample_rate)
    source = _source(config, root)
    if accelerator.is_main_process:
        if source is None:
            waves = sample_waves(dataset, geometry, config.pretrain.kmeans_sample_s,
                                 config.train.seed)
            log.info("fitting k-means (%d clusters) on the MFCC frames of %d clips", num_clusters,
                     len(waves))
            fit_codebook(waves, settings, num_clusters, config.train.seed).save(root)
        elif source.parent != root:
            shutil.copyfile(source, root / CLUSTERS_FILE)
    accelerator.wait_for_everyone()
    codebook = load_codebook(root / CLUSTERS_FILE)
    if codebook.settings != settings or codebook.num_clusters != num_clusters:
        raise ClusterError(
            f"{source}: its codebook ({codebook.num_clusters} clusters, MFCC frames of "
            f"{codebook.settings}) does not fit this model ({num_clusters} clusters, {settings}); "
            f"continue from a folder of the same architecture and rate, or set "
            f"model.random_init=true to pre-train anew")
    return codebook
