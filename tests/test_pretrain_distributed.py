"""Two-process pre-training on CPU (torchrun + gloo through accelerate): the contrastive
objective runs under data parallelism, its loss falls, and the run folder is written once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import VARIED, WORDS, torchrun, write_corpus

TINY = ["model.preset=tiny", "pretrain.num_codevectors_per_group=16", "pretrain.codevector_dim=16",
        "pretrain.proj_codevector_dim=16", "pretrain.num_negatives=10",
        "pretrain.mask_time_length=4", "train.logging_steps=10", "train.learning_rate=3e-3",
        "train.warmup_steps=5", "train.train_batch_size=5", "train.seed=0"]


@pytest.mark.slow
def test_two_process_pretraining_learns_and_writes_the_run_once(tmp_path: Path) -> None:
    from transformers import Wav2Vec2ForPreTraining

    manifest = write_corpus(tmp_path / "audio", WORDS + VARIED)
    config = tmp_path / "config.yaml"
    config.write_text("{}\n", encoding="utf-8")
    torchrun("pretrain", str(config), "--output-dir", str(tmp_path / "pre"),
             settings=[*TINY, f"data.train={manifest}", "train.max_steps=40"])
    run = tmp_path / "pre"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "contrastive_loss" in r]
    assert steps == sorted(set(steps)) and steps  # one writer: each window logged once
    losses = [r["contrastive_loss"] for r in records if "contrastive_loss" in r]
    assert losses[-1] < losses[0]
    assert sorted(p.name for p in run.glob("README*")) == ["README.md"]
    Wav2Vec2ForPreTraining.from_pretrained(run)  # the published folder loads as is
