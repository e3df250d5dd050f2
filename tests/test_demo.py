"""The README's main job, reduced in size: synthesise, train from scratch, evaluate, transcribe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import load_benchmark

# A broken pipeline (no learning, blank collapse, vocab/blank mix-up) stays at CER 1.0; the quick
# budget (600 steps) leaves the all-blank plateau but does not yet spell every word right.
QUICK_DEMO_MAX_CER = 0.5


@pytest.mark.slow
def test_quick_demo_learns(tmp_path: Path) -> None:
    """Run as a new user runs it (a fresh process, through benchmarks/demo_time.py, which times
    the README's main job)."""
    pytest.importorskip("espeakng_loader")
    bench = load_benchmark("demo_time")
    report = tmp_path / "demo.json"
    assert bench.main(["--out", str(tmp_path / "demo"), "--quick", "--json", str(report),
                       "--timeout-s", "1200"]) == 0
    result = json.loads(report.read_text())
    assert result["closing_lines"][0] == "held-out test clips:"
    assert result["closing_lines"][-1].startswith("test WER"), result["closing_lines"]
    assert result["wall_s"] > 0 and result["peak_rss_mb"] > 100 and result["machine"]["cpus"]
    metrics = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())
    assert metrics["test"]["cer"] < QUICK_DEMO_MAX_CER, metrics
    assert result["test_wer"] == metrics["test"]["wer"]
    assert metrics["published_step"] == metrics["best_step"] == result["published_step"]
