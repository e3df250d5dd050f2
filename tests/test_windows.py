"""Inference input plans: length-sorted batches within a budget, and windows streamed from
blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from factories import tone_speech
from hypothesis import given, settings
from hypothesis import strategies as st

from wavtune.data.audio import load_audio, normalize_waveform
from wavtune.infer.windows import (
    Window,
    iter_file_blocks,
    iter_windows,
    normalized,
    pad_batch,
    plan_batches,
    stream_stats,
    trim,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.1, 20.0), max_size=40),
    st.integers(1, 6),
    st.sampled_from([0.0, 5.0, 12.0]),
)
def test_batches_cover_every_clip_once_within_budget(
    durations: list[float], batch_size: int, budget: float
) -> None:
    batches = plan_batches(durations, batch_size, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(durations)))
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if budget and len(b) > 1:  # only a clip over the budget may exceed it, alone
            assert max(durations[i] for i in b) * len(b) <= budget
    flat = [durations[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)  # length-sorted: little padding


def test_batches_without_seconds_budget_are_full() -> None:
    assert plan_batches([1.0, 3.0, 2.0, 4.0, 0.5], 2) == [[3, 1], [2, 0], [4]]
    assert plan_batches([1.0, 3.0, 2.0, 4.0, 0.5], 8, max_batch_s=6.0) == [[3], [1, 2], [0, 4]]


def test_pad_batch_masks_real_samples() -> None:
    audio, mask = pad_batch([np.ones(3, np.float32), np.ones(1, np.float32)])
    assert audio.tolist() == [[1, 1, 1], [1, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def _stitched_positions(n: int, block: int, chunk: int, context: int) -> list[int]:
    """Windows over 0..n-1 (as blocks), each 'frame' a sample (one sample per frame)."""
    data = np.arange(n, dtype=np.float32)
    blocks = [data[i : i + block] for i in range(0, n, block)]
    pieces = [trim(w.samples, w, context) for w in iter_windows(blocks, chunk, context)]
    return [int(x) for x in np.concatenate(pieces)]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 400), st.integers(1, 90), st.integers(10, 60), st.integers(0, 4))
def test_stitched_windows_keep_every_sample_once_in_order(n: int, block: int, chunk: int,
                                                          context: int) -> None:
    # a seam that dropped or repeated frames would break the sequence
    assert _stitched_positions(n, block, chunk, context) == list(range(n))


def test_windows_advance_by_chunk_minus_contexts_and_mark_edges() -> None:
    data = np.arange(25, dtype=np.float32)
    windows = list(iter_windows([data[:7], data[7:]], chunk=10, context=2))
    assert [(int(w.samples[0]), len(w.samples)) for w in windows] == [(0, 10), (6, 10), (12, 10),
                                                                      (18, 7)]
    assert [(w.first, w.last) for w in windows] == [(True, False), (False, False),
                                                   (False, False), (False, True)]
    (single,) = iter_windows([data[:10]], chunk=10, context=2)  # fits: one window, both edges
    assert single.first and single.last
    with pytest.raises(ValueError, match="twice the overlap"):
        list(iter_windows([data], chunk=4, context=2))
    assert trim(np.arange(10), Window(data[:10], False, False), 3).tolist() == [3, 4, 5, 6]


@pytest.mark.parametrize("file_rate", [16_000, 8_000, 22_050])
def test_file_blocks_match_whole_file_decoding(tmp_path: Path, file_rate: int) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, tone_speech("abc dab cab", file_rate), file_rate, subtype="FLOAT")
    whole = load_audio(path, 16_000)
    streamed = np.concatenate(list(iter_file_blocks(path, 16_000, block_s=0.3)))
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(whole), len(streamed))
    if file_rate == 16_000:
        assert np.array_equal(streamed, whole)
    else:  # the streaming resampler and the one-shot one agree closely
        assert np.abs(streamed[:n] - whole[:n]).max() < 1e-2


def test_stream_stats_normalise_as_the_whole_waveform() -> None:
    wave = tone_speech("abcd", seed=1) * 0.3 + 0.01
    blocks = [wave[i : i + 999] for i in range(0, len(wave), 999)]
    mean, std = stream_stats(blocks)
    streamed = np.concatenate(list(normalized(blocks, mean, std)))
    assert np.abs(streamed - normalize_waveform(wave)).max() < 1e-4
