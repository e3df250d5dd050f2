"""Smoke test of benchmarks/inference.py --preset: a random-init model on generated clips, every
backend in every batching mode, and the machine it ran on in the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from factories import load_benchmark

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark() -> ModuleType:
    return load_benchmark("inference")


def test_preset_run_measures_every_variant_and_mode(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    bench = _benchmark()
    out = tmp_path / "inference-tiny.json"
    assert bench.main(["--preset", "tiny", "--clips", "4", "--shortest-s", "1", "--longest-s",
                       "3", "--repeats", "1", "--batch-size", "4", "--max-batch-s", "5",
                       "--variants", "fp32,matmul@basic", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    names = [r["backend"] for r in got["results"]]
    assert names == ["pytorch-fp32", "onnx-fp32", "onnx-int8-matmul@basic"]
    assert got["clips"] == 4 and got["audio_s"] == pytest.approx(8.0, abs=0.01)
    assert got["batches"] == {"single": 4, "batched": 1, "bucketed": 3}
    # length-sorted batches within 5 padded seconds pad less than one batch of all four
    assert got["padded_audio_s"]["bucketed"] < got["padded_audio_s"]["batched"]
    for r in got["results"]:
        assert set(r["rtf"]) == {"single", "batched", "bucketed"} and r["wer"] is None
        assert all(v > 0 for v in r["rtf"].values())
    assert got["results"][0]["vs_pytorch"] == {"single": 1.0, "batched": 1.0, "bucketed": 1.0}
    assert got["results"][1]["changed_when_batched"] == {"batched": 0, "bucketed": 0}
    assert got["parity_fp32"][0]["max_abs_diff"] < 1e-3
    conv = got["pytorch_feature_encoder"]  # the conv encoder's share of PyTorch's one-clip time
    assert conv["rtf_single"] > 0 and conv["share_of_pytorch_single"] > 0
    assert got["machine"]["cpu"] and isinstance(got["machine"]["vector_extensions"], list)
    assert "| onnx-int8-matmul@basic |" in capsys.readouterr().out


def test_run_and_manifest_or_a_preset() -> None:
    bench = _benchmark()
    with pytest.raises(SystemExit):
        bench.main([])
    with pytest.raises(SystemExit):
        bench.main(["run", "manifest.jsonl", "--preset", "base"])


def test_variants_parse_into_schemes_and_levels() -> None:
    bench = _benchmark()
    from onnx_variants import Variant, parse_variants

    assert parse_variants("fp32, fused,matmul@basic") == [
        Variant("onnx-fp32"), Variant("onnx-int8-fused", "fused"),
        Variant("onnx-int8-matmul@basic", "matmul", "basic")]
    assert bench.BASE_VARIANTS.startswith("fp32,")


def test_every_benchmark_that_writes_results_records_the_machine() -> None:
    # figures from an AVX2-only CPU and an AVX-512/AMX one differ by whole factors
    helpers = {"machine.py", "onnx_variants.py"}
    writers = [p for p in sorted(BENCHMARKS.glob("*.py")) if p.name not in helpers
               and "json.dumps" in p.read_text(encoding="utf-8")]
    assert len(writers) >= 10
    missing = [p.name for p in writers if "machine_info()" not in p.read_text(encoding="utf-8")]
    assert not missing, f"these benchmarks' JSON lacks the CPU model: {missing}"
