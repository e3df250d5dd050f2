"""The README's main job, reduced in size: synthesise, train from scratch, evaluate, transcribe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wavtune.cli.main import main

# A broken pipeline (no learning, blank collapse, vocab/blank mix-up) stays at CER 1.0; the quick
# budget (600 steps) leaves the all-blank plateau but does not yet spell every word right.
QUICK_DEMO_MAX_CER = 0.5


@pytest.mark.slow
def test_quick_demo_learns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("espeakng_loader")
    assert main(["demo", str(tmp_path / "demo"), "--quick", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "held-out test clips:" in out and "test WER" in out
    metrics = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())
    assert metrics["test"]["cer"] < QUICK_DEMO_MAX_CER, metrics
    assert metrics["published_step"] == metrics["best_step"]
