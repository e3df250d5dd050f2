"""benchmarks/alignment.py's account of a missed segment: the signed edge errors and whether the
stretch between the found and the true edge is silence (under the recording's floor) or sound."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from factories import load_benchmark

from wavtune.infer.loudness import Loudness


def _levels() -> Loudness:
    """10 ms hops: pause noise at -60 dB, a file's own silence at -75 dB (hops 20-29), speech
    at -10 dB (hops 30-59), pause noise again."""
    db = np.full(100, -60.0)
    db[20:30] = -75.0
    db[30:60] = -10.0
    return Loudness(db, 0.01)


def test_a_start_found_late_across_the_files_own_silence_is_a_silent_miss() -> None:
    bench = load_benchmark("alignment")
    found = SimpleNamespace(text="nine", start_s=0.30, end_s=0.60)  # the file starts at 0.20
    miss = bench.miss(found, (0.20, 0.60), _levels(), 0.05)
    assert miss["start_error_ms"] == 100.0 and miss["end_error_ms"] == 0.0
    assert miss["start_stretch_median_db"] == -75.0 and "end_stretch_median_db" not in miss
    assert miss["silent_stretch"] is True and miss["floor_db"] == round(_levels().floor_db, 1)


def test_a_start_found_late_inside_speech_is_a_real_miss() -> None:
    bench = load_benchmark("alignment")
    found = SimpleNamespace(text="nine", start_s=0.45, end_s=0.60)  # 150 ms into the speech
    miss = bench.miss(found, (0.30, 0.60), _levels(), 0.05)
    assert miss["start_error_ms"] == 150.0 and miss["start_stretch_median_db"] == -10.0
    assert miss["silent_stretch"] is False
