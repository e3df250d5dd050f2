"""The README's main job, reduced in size: synthesise, train from scratch, evaluate, transcribe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wavtune.cli import main

# A broken pipeline (no learning, blank collapse, vocab/blank mix-up) stays near WER 1.0.
QUICK_DEMO_MAX_WER = 0.35


@pytest.mark.slow
def test_quick_demo_learns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("espeakng_loader")
    assert main(["demo", str(tmp_path / "demo"), "--quick", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "held-out test clips:" in out and "test WER" in out
    metrics = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())
    assert metrics["test"]["wer"] < QUICK_DEMO_MAX_WER, metrics
    assert metrics["published_step"] == metrics["best_step"]
