"""Smoke test of benchmarks/pretraining.py: pre-train, then fine-tune from it and from
random_init on a share of the labels, and report both test WERs and their ratio."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from factories import VARIED, WORDS, load_benchmark, write_corpus


def _benchmark() -> ModuleType:
    return load_benchmark("pretraining")


def test_benchmark_reports_both_starts_and_their_ratio(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_corpus(data, WORDS + VARIED)
    write_corpus(data, WORDS, name="test.jsonl")
    results, png = tmp_path / "results.json", tmp_path / "curve.png"
    code = _benchmark().main([
        "--manifests", str(data), "--out", str(tmp_path / "runs"), "--results", str(results),
        "--plot", str(png),
        "--pretrain-steps", "4", "--finetune-steps", "3", "--fractions", "0.5",
        "--pretrain-set", "train.eval_steps=2", "train.logging_steps=2", "train.train_batch_size=5",
        "--finetune-set", "train.logging_steps=1", "train.train_batch_size=4"])
    assert code == 0
    report = json.loads(results.read_text())
    assert report["pretrain"]["steps"] == 4 and report["pretrain"]["first_contrastive_loss"] > 0
    (point,) = report["fine_tune"]
    assert point["pretrained"]["train_utterances"] == point["random_init"]["train_utterances"] == 10
    assert point["pretrained"]["steps"] == point["random_init"]["steps"] == 3
    assert point["pretrained"]["freeze_feature_encoder"] is True
    assert point["random_init"]["freeze_feature_encoder"] is False
    assert point["random_init_frozen"]["freeze_feature_encoder"] is True
    # the baseline is the better of the two random_init runs
    best = min(point["random_init"]["test_wer"], point["random_init_frozen"]["test_wer"])
    assert point["best_random_init_wer"] == best
    assert point["wer_ratio"] == round(point["pretrained"]["test_wer"] / max(best, 1e-9), 4)
    assert (tmp_path / "runs" / "ft-0.5-random_init" / "metrics.json").is_file()
    assert png.read_bytes()[:4] == b"\x89PNG"
    # --encoder reuses a pre-trained folder instead of pre-training again
    again = tmp_path / "again.json"
    assert _benchmark().main([
        "--manifests", str(data), "--out", str(tmp_path / "runs2"), "--results", str(again),
        "--encoder", str(tmp_path / "runs" / "pretrain"), "--finetune-steps", "2",
        "--fractions", "0.5", "--finetune-set", "train.train_batch_size=4"]) == 0
    assert json.loads(again.read_text())["pretrain"] == report["pretrain"]
    assert not (tmp_path / "runs2" / "pretrain").exists()


def test_hubert_benchmark_runs_in_two_stages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_corpus(data, WORDS + VARIED)
    write_corpus(data, WORDS, name="test.jsonl")
    results = tmp_path / "results.json"
    common = ["--objective", "hubert", "--manifests", str(data), "--out", str(tmp_path / "runs"),
              "--results", str(results), "--pretrain-steps", "4", "--finetune-steps", "3",
              "--fractions", "0.5"]
    pretrain_set = ["--pretrain-set", "train.eval_steps=2", "train.logging_steps=2",
                    "train.train_batch_size=5", "pretrain.num_clusters=20"]
    assert _benchmark().main([*common, "--stage", "pretrain", *pretrain_set]) == 0
    assert not results.exists()  # written once the fine-tunes ran
    assert _benchmark().main([*common, "--stage", "finetune", "--finetune-set",
                              "train.logging_steps=1", "train.train_batch_size=4"]) == 0
    report = json.loads(results.read_text())
    assert report["objective"] == report["pretrain"]["objective"] == "hubert"
    assert report["pretrain"]["first_masked_loss"] > 0
    assert report["pretrain"]["final_target_perplexity"] > 1
    (point,) = report["fine_tune"]
    assert point["pretrained"]["steps"] == point["random_init"]["steps"] == 3
