"""Inference speed and accuracy of one run: PyTorch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8.

    python benchmarks/inference.py RUN MANIFEST [--threads 1] [--repeats 3] [--limit N]
        [--json benchmarks/results/inference-fsdd.json]

The run is copied to a temporary folder and exported there (fp32 and dynamic int8, with the
parity check), so RUN is never written. Every backend transcribes the same clips, decoded and
normalised beforehand, one clip per forward pass (latency-style) and, separately, in
length-sorted batches. Real-time factor = compute seconds / audio seconds (lower is faster); each
clip's (batch's) time is the best of ``--repeats`` runs, backends interleaved clip by clip, after a
warm-up, so a busy machine disturbs the figures, and their ratios, as little as it can. WER and CER
are of greedy transcripts
against the manifest's references, normalised as in training.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform, load_audio, normalize_waveform
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.windows import plan_batches

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/machine.py (after packages)
from machine import machine_info  # noqa: E402

RUN_FILES = (
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "vocab.json",
    "tokenizer_config.json",
    "wavtune_vocab.json",
    "wavtune.yaml",
    "special_tokens_map.json",
)


@dataclass(frozen=True)
class BackendResult:
    backend: str
    rtf: float  # compute s / audio s, one clip per forward pass
    rtf_batched: float  # the same, length-sorted batches of --batch-size clips
    wer: float
    cer: float
    rtf_vs_pytorch: float = 1.0
    batched_vs_pytorch: float = 1.0
    rtf_vs_onnx_fp32: float = 1.0


def copy_run(run: Path, dest: Path) -> Path:
    """The files a run needs to load, copied (the export then writes into the copy)."""
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        if (run / name).is_file():
            shutil.copy(run / name, dest / name)
    return dest


def best_time(rec: Recognizer, waves: Sequence[Waveform], repeats: int
              ) -> tuple[float, list[npt.NDArray[np.float32]]]:
    """Fastest of ``repeats`` forward passes of one batch (the minimum: other processes on a
    shared machine only ever add time), and its frame scores."""
    best, scores = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = rec.forward_batch(waves)
        best = min(best, time.perf_counter() - start)
    return best, scores


def measure(recognizers: dict[str, Recognizer], waves: Sequence[Waveform],
            durations: Sequence[float], refs: Sequence[str], repeats: int, batch_size: int
            ) -> list[BackendResult]:
    """Every backend on every clip alone and on length-sorted batches, interleaved clip by clip
    so a change in machine load hits all backends alike."""
    from wavtune.scoring import metrics

    audio_s = float(sum(durations))
    for rec in recognizers.values():  # warm-up: first-call allocations and kernel choices
        for w in waves[:10]:
            rec.forward_batch([w])
    single = dict.fromkeys(recognizers, 0.0)
    batched = dict.fromkeys(recognizers, 0.0)
    texts: dict[str, list[str]] = {name: [""] * len(waves) for name in recognizers}
    for i, wave in enumerate(waves):
        for name, rec in recognizers.items():
            seconds, (scores,) = best_time(rec, [wave], repeats)
            single[name] += seconds
            texts[name][i] = rec.decoder.decode(scores).text
    for batch in plan_batches(durations, batch_size):
        for name, rec in recognizers.items():
            seconds, outputs = best_time(rec, [waves[i] for i in batch], repeats)
            batched[name] += seconds
            changed = sum(rec.decoder.decode(o).text != texts[name][i]
                          for i, o in zip(batch, outputs))
            if changed:  # padding must not change a transcript
                print(f"warning: {name}: {changed} transcripts differ when batched",
                      file=sys.stderr)
    return [BackendResult(name, single[name] / audio_s, batched[name] / audio_s,
                          metrics.wer(refs, texts[name]).rate, metrics.cer(refs, texts[name]).rate)
            for name in recognizers]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, every backend")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="first N clips only (0: all)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/inference-fsdd.json"))
    args = parser.parse_args(argv)

    import torch

    from wavtune.data.manifest import read_manifest
    from wavtune.deploy.export import ExportOptions, export_onnx
    from wavtune.deploy.onnx_runtime import OnnxRecognizer
    from wavtune.run.directory import load_run_config

    torch.set_num_threads(args.threads)
    config = load_run_config(args.run)
    normalizer = config.text.normalizer()
    utts = read_manifest(args.manifest)[: args.limit or None]
    with tempfile.TemporaryDirectory(prefix="wavtune-bench-") as tmp:
        run = copy_run(args.run, Path(tmp) / "run")
        export = export_onnx(run, ExportOptions(int8=True))
        sr = export.meta.sample_rate
        raw = [load_audio(u.audio, sr) for u in utts]
        waves = [normalize_waveform(w) if export.meta.do_normalize else w for w in raw]
        durations = [len(w) / sr for w in raw]
        refs = [normalizer(u.label(config.data.text_column) or "") for u in utts]
        recognizers: dict[str, Recognizer] = {
            "pytorch-fp32": Recognizer(run),
            "onnx-fp32": OnnxRecognizer(run, threads=args.threads),
            "onnx-int8": OnnxRecognizer(run, int8=True, threads=args.threads),
        }
        results = measure(recognizers, waves, durations, refs, args.repeats, args.batch_size)
    base = results[0]
    onnx_fp32 = results[1]
    results = [BackendResult(**{**asdict(r), "rtf_vs_pytorch": r.rtf / base.rtf,
                                "batched_vs_pytorch": r.rtf_batched / base.rtf_batched,
                                "rtf_vs_onnx_fp32": r.rtf / onnx_fp32.rtf})
               for r in results]
    payload: dict[str, Any] = {
        "run": str(args.run), "manifest": str(args.manifest), "clips": len(utts),
        "audio_s": round(sum(durations), 2), "threads": args.threads, "repeats": args.repeats,
        "batch_size": args.batch_size, "machine": machine_info(),
        "parity": [asdict(p) for p in export.meta.parity],
        "results": [asdict(r) for r in results],
        "command": "python benchmarks/inference.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"{len(utts)} clips, {sum(durations):.1f} s of audio, {args.threads} thread(s), best of "
          f"{args.repeats}")
    print("| backend | RTF, 1 clip/pass | vs PyTorch | vs ONNX fp32 | RTF, batched | vs PyTorch "
          "| WER | CER |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.backend} | {r.rtf:.5f} | {r.rtf_vs_pytorch:.2f}x | {r.rtf_vs_onnx_fp32:.2f}x "
              f"| {r.rtf_batched:.5f} | {r.batched_vs_pytorch:.2f}x | {r.wer:.4f} | {r.cer:.4f} |")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
