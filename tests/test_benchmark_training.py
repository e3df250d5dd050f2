"""Smoke test of benchmarks/training.py: both sides train the same tiny model on the same clips."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from factories import load_benchmark

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "training.py"


def _benchmark() -> ModuleType:
    return load_benchmark("training")


def test_both_sides_train_and_report_the_same_figures(tmp_path: Path) -> None:
    bench = _benchmark()
    train, test = bench.synthetic_corpus(tmp_path / "syn", 6, 2)
    rows = [json.loads(line) for line in Path(train).read_text().splitlines()]
    assert len(rows) == 6 and all(Path(r["audio"]).is_file() for r in rows)
    figures = {}
    for side in ("stock", "wavtune"):
        spec = bench.SideSpec(side, train, test, str(tmp_path / side), bench.TINY_8K, 1, 3, 1e-3, 0)
        figures[side] = bench.run_stock(spec) if side == "stock" else bench.run_wavtune(spec)
    for got in figures.values():
        assert got["steps"] >= 1 and got["train_s"] > 0 and 0.0 <= got["test_wer"]
        assert 0.0 <= got["padding_ratio"] < 1.0
    # wavtune's bucketed batches pad less than random fixed-size ones on a 0.3-10 s spread
    assert figures["wavtune"]["padding_ratio"] < figures["stock"]["padding_ratio"]
    assert (tmp_path / "wavtune" / "cache").is_dir()  # the wavtune side trained from its cache


def test_the_padding_collator_pads_like_the_stock_recipe() -> None:
    import numpy as np
    from transformers import Wav2Vec2FeatureExtractor

    bench = _benchmark()
    fe = Wav2Vec2FeatureExtractor(sampling_rate=8000, return_attention_mask=True)
    collate = bench.PaddingCollator(fe)
    batch = collate([{"input_values": np.ones(3, np.float32), "labels": [1, 2]},
                     {"input_values": np.ones(5, np.float32), "labels": [3]}])
    assert batch["input_values"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[1, 2], [3, -100]]
    assert collate.real == 8 and collate.total == 10


def test_the_long_tailed_corpus_stays_within_1_to_15_s(tmp_path: Path) -> None:
    import soundfile as sf

    bench = _benchmark()
    train, _ = bench.synthetic_corpus(tmp_path / "tail", 40, 0, seed=3, spread="long-tail")
    seconds = [sf.info(json.loads(line)["audio"]).duration
               for line in Path(train).read_text().splitlines()]
    assert min(seconds) >= 0.9 and max(seconds) <= 16.0  # 1-15 s targets, whole words
    assert sorted(seconds)[len(seconds) // 2] < sum(seconds) / len(seconds)  # a long tail


def test_gpu_script_dry_run_trains_both_sides_for_the_same_steps(tmp_path: Path) -> None:
    import os
    import subprocess

    out = tmp_path / "gpu.json"
    script = BENCHMARK.parent / "gpu.sh"
    env = {**os.environ, "GPU_DRY_RUN_OUT": str(out), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", str(script), "--dry-run"], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    base = results["corpora"]["base"]
    assert base["max_steps"] == 5 and base["device"] == "cpu"
    for side in ("stock", "wavtune"):
        assert base[side]["steps"] == 5 and base[side]["audio_trained_s"] > 0
        assert base[side]["audio_s_per_s"] > 0 and base[side]["peak_rss_mb"] > 0
    assert base["speedup"] > 0 and base["peak_rss_ratio"] > 0
    assert results["machine"]["cpu"] and "vector_extensions" in results["machine"]
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_time_to_target_stops_each_side_when_the_dev_wer_is_reached(tmp_path: Path) -> None:
    bench = _benchmark()
    train, dev = bench.synthetic_corpus(tmp_path / "syn", 6, 2)
    for side, grouped in (("stock", False), ("stock", True), ("wavtune", False)):
        spec = bench.SideSpec(side, train, "", str(tmp_path / f"{side}{grouped}"), bench.TINY_8K,
                              5, 2, 1e-3, 0, dev=dev, target_wer=10.0, eval_every=2,
                              grouped=grouped,
                              extra=list(bench.WAVTUNE_RECIPE) if side == "wavtune" else [])
        got = bench.run_stock(spec) if side == "stock" else bench.run_wavtune(spec)
        ttt = got["time_to_target"]  # any WER is <= 10: reached at the first scoring
        assert got["steps"] == 2 and ttt["reached"]["step"] == 2 and got["threads"] >= 1
        assert [p["step"] for p in ttt["curve"]] == [2]
        assert 0 < ttt["reached"]["wall_s_without_scoring"] <= ttt["reached"]["wall_s"]
