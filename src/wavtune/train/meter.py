"""Throughput, padding and data-wait figures of a training run, summed over all processes.

Each process counts its own batches; ``reduce`` sums the counts over the processes (every process
must call it at the same step: it is a collective under DDP) so the logged figures describe the
whole job, not rank 0's share of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from wavtune.data.collate import Batch

Reducer = Callable[[torch.Tensor], torch.Tensor]  # sums a 1-D tensor over processes


@dataclass(frozen=True)
class WindowFigures:
    """Figures of one logging window, all processes together."""

    loss: float | None  # mean training loss (None: no finite loss in the window)
    audio_s: float  # seconds of real (unpadded) audio trained
    padding_ratio: float  # padded samples / all samples in the batches
    data_share: float  # share of the window's wall time spent waiting for batches (rank mean)


@dataclass
class TrainMeter:
    """Running sums between logging windows, plus per-epoch padding."""

    loss_sum: float = 0.0
    loss_n: int = 0
    real_samples: int = 0  # real input positions (samples, or fbank frames)
    padded_samples: int = 0
    audio_samples: int = 0  # real audio samples at the model's rate (throughput)
    data_wait_s: float = 0.0
    window_start: float = field(default_factory=time.perf_counter)
    epoch_samples: dict[int, list[int]] = field(default_factory=dict)  # epoch -> [real, total]

    def batch(self, epoch: int, real: int, total: int, audio: int | None = None) -> None:
        """Count one micro-batch: ``real`` unpadded input positions of ``total`` (= batch x
        longest), and its ``audio`` samples at the model's rate (None: ``real`` are samples;
        fbank inputs count frames as positions but audio as samples)."""
        self.real_samples += real
        self.audio_samples += real if audio is None else audio
        self.padded_samples += total
        sums = self.epoch_samples.setdefault(epoch, [0, 0])
        sums[0] += real
        sums[1] += total

    def count(self, epoch: int, batch: Batch) -> None:
        """Count one collated micro-batch of ``epoch`` (its mask's positions, its audio)."""
        self.batch(epoch, batch.num_samples, batch.attention_mask.numel(),
                   batch.num_audio_samples)

    def loss(self, value: float) -> None:
        self.loss_sum += value
        self.loss_n += 1

    def waited(self, seconds: float) -> None:
        """Time this process spent blocked on the DataLoader for the next batch."""
        self.data_wait_s += seconds

    def reduce(self, sum_over_processes: Reducer, sample_rate: int) -> WindowFigures:
        """The window's figures summed over processes; starts a new window."""
        now = time.perf_counter()
        wall = max(now - self.window_start, 1e-9)
        local = torch.tensor([self.loss_sum, self.loss_n, self.real_samples, self.padded_samples,
                              self.audio_samples, self.data_wait_s / wall, 1.0],
                             dtype=torch.float64)
        loss_sum, loss_n, real, total, audio, share, processes = sum_over_processes(local).tolist()
        self.loss_sum, self.loss_n, self.real_samples, self.padded_samples = 0.0, 0, 0, 0
        self.audio_samples, self.data_wait_s, self.window_start = 0, 0.0, now
        return WindowFigures(loss_sum / loss_n if loss_n else None, audio / sample_rate,
                             1.0 - real / total if total else 0.0, share / processes)

    def epoch_padding(self, sum_over_processes: Reducer) -> dict[int, float]:
        """Padding ratio of each epoch trained in this session, all processes together."""
        epochs = sorted(self.epoch_samples)
        local = torch.tensor([self.epoch_samples[e] for e in epochs] or [[0, 0]],
                             dtype=torch.float64)
        summed = sum_over_processes(local.flatten()).reshape(-1, 2).tolist()
        return {e: round(1.0 - real / total, 4) if total else 0.0
                for e, (real, total) in zip(epochs, summed)}
