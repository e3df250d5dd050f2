"""Training figures summed over processes (wavtune.train.meter)."""

from __future__ import annotations

import torch

from wavtune.train.meter import TrainMeter


def test_window_figures_cover_every_process() -> None:
    a, b = TrainMeter(), TrainMeter()
    a.batch(0, real=300, total=400)
    a.loss(2.0)
    b.batch(0, real=100, total=100)
    b.loss(4.0)
    b.loss(6.0)
    from_b: list[torch.Tensor] = []  # process b's contribution to the all-reduce

    def capture(t: torch.Tensor) -> torch.Tensor:
        from_b.append(t)
        return t

    b.reduce(capture, 100)
    figures = a.reduce(lambda t: t + from_b[0], sample_rate=100)  # a sum over both processes
    assert figures.loss == 4.0  # (2 + 4 + 6) / 3 losses, not rank 0's 2.0
    assert figures.audio_s == 4.0  # 400 real samples at 100 Hz
    assert abs(figures.padding_ratio - 0.2) < 1e-9  # 100 padded of 500
    assert a.real_samples == 0 and a.loss_n == 0  # a new window starts


def test_padding_by_epoch_and_an_empty_window() -> None:
    meter = TrainMeter()
    meter.batch(0, 50, 100)
    meter.batch(1, 90, 100)
    assert meter.epoch_padding(lambda t: t) == {0: 0.5, 1: 0.1}
    assert TrainMeter().epoch_padding(lambda t: t) == {}
    empty = TrainMeter().reduce(lambda t: t, 16000)
    assert empty.loss is None and empty.padding_ratio == 0.0 and empty.audio_s == 0.0


def test_audio_seconds_come_from_audio_samples_not_input_positions() -> None:
    """fbank inputs: the mask counts frames (padding), throughput counts the audio behind them."""
    meter = TrainMeter()
    meter.batch(0, real=150, total=200, audio=24_000)  # 150 real frames of 1.5 s at 16 kHz
    figures = meter.reduce(lambda t: t, sample_rate=16_000)
    assert figures.audio_s == 1.5 and abs(figures.padding_ratio - 0.25) < 1e-9
    assert meter.audio_samples == 0  # a new window starts
