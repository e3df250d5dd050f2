"""Inference speed (and, on a trained run, accuracy): PyTorch fp32 vs ONNX Runtime fp32 vs ONNX
Runtime int8 variants.

    python benchmarks/inference.py RUN MANIFEST [--threads 1] [--repeats 3] [--limit N]
        [--int8-schemes fused,matmul] [--json benchmarks/results/inference-fsdd.json]
    python benchmarks/inference.py --preset base [--clips 16] [--variants fp32,fused,...]
        [--json benchmarks/results/inference-base.json]

With RUN and MANIFEST, the run is copied to a temporary folder and exported there (fp32 and
each int8 scheme of ``--int8-schemes``, parity-checked), so RUN is never written; the clips are
the manifest's, and WER and CER of greedy transcripts against its references (normalised as in
training) are reported. With ``--preset NAME``, a random-init CTC model of that preset (a
layer-norm feature encoder, so batches need no one-clip-at-a-time fallback) is built in a
temporary folder and run on ``--clips`` generated clips of ``--shortest-s`` to ``--longest-s``;
there is no accuracy to report, and ``--variants`` chooses the ONNX backends (fp32 or an int8
scheme of ``wavtune.deploy.int8.INT8_SCHEMES``, ``@`` an ORT graph optimisation level).

Every backend transcribes the same clips one per forward pass (latency-style), in batches of
``--batch-size`` clips in input order ("batched"), and in length-sorted batches within
``--max-batch-s`` padded seconds ("bucketed"; on FSDD's short clips: sorted batches of 16).
Real-time factor = compute seconds / audio seconds (lower is faster); each clip's (batch's)
time is the best of ``--repeats`` runs after a warm-up (the minimum: other processes only ever
add time). Backends are loaded one at a time and freed after, so run it on an idle machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform, load_audio, normalize_waveform
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.windows import plan_batches

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/ (after packages)
from machine import machine_info  # noqa: E402
from onnx_variants import generated_clips, onnx_recognizers, parse_variants, random_run  # noqa: E402

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
BASE_VARIANTS = ("fp32,fp32@basic,fused,fused-per-channel,fused-conv,matmul,matmul@basic,"
                 "matmul-per-channel")


@dataclass(frozen=True)
class BackendResult:
    backend: str
    rtf: dict[str, float]  # compute s / audio s, per mode (single, batched, bucketed)
    vs_pytorch: dict[str, float] = field(default_factory=dict)  # rtf / PyTorch fp32's, per mode
    changed_when_batched: dict[str, int] = field(default_factory=dict)  # transcripts, per mode
    wer: float | None = None  # None: generated clips, nothing to score
    cer: float | None = None


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


def measure(loaders: dict[str, Callable[[], Recognizer]], waves: Sequence[Waveform],
            plans: dict[str, list[list[int]]], repeats: int
            ) -> Iterator[tuple[str, dict[str, float], list[str], dict[str, int]]]:
    """Per backend, loaded one at a time (and freed after): its seconds over every plan of
    batches (``single`` first: one clip per pass, whose transcripts are kept), the transcripts,
    and per batched plan how many transcripts batching changed."""
    for name, load in loaders.items():
        rec = load()
        for w in waves[:3]:  # warm-up: first-call allocations and kernel choices
            rec.forward_batch([w])
        seconds = dict.fromkeys(plans, 0.0)
        changed = dict.fromkeys(list(plans)[1:], 0)
        texts = [""] * len(waves)
        for mode, plan in plans.items():
            for batch in plan:
                took, outputs = best_time(rec, [waves[i] for i in batch], repeats)
                seconds[mode] += took
                for i, out in zip(batch, outputs):
                    text = rec.decoder.decode(out).text
                    if mode == "single":
                        texts[i] = text
                    else:  # padding must not change a transcript
                        changed[mode] += int(text != texts[i])
        del rec
        gc.collect()
        yield name, seconds, texts, changed


def feature_encoder_s(run: Path, waves: Sequence[Waveform], repeats: int) -> float | None:
    """PyTorch fp32 seconds of the conv feature encoder alone over ``waves``, one clip per pass
    (best of ``repeats`` each); None for a family without one (fbank input). Its share of the
    whole model's time is an approximate floor for any int8 scheme that leaves the convs in fp32
    (they then run in ONNX Runtime, whose fp32 convs may be a little faster)."""
    import torch

    conv = getattr(Recognizer(run).model.base_model, "feature_extractor", None)
    if not isinstance(conv, torch.nn.Module):
        return None
    total = 0.0
    with torch.inference_mode():
        for i, wave in enumerate(waves):
            batch = torch.from_numpy(np.asarray(wave, dtype=np.float32))[None]
            times = []
            for _ in range(repeats + (i < 3)):  # the first clips also warm up
                start = time.perf_counter()
                conv(batch)
                times.append(time.perf_counter() - start)
            total += min(times)
    return total


def results_of(seconds: dict[str, dict[str, float]], changed: dict[str, dict[str, int]],
               audio_s: float, scores: dict[str, tuple[float, float]] | None
               ) -> list[BackendResult]:
    """RTFs per backend and mode, each against the first backend's (PyTorch fp32)."""
    base = next(iter(seconds.values()))
    out = []
    for name, modes in seconds.items():
        wer, cer = scores[name] if scores else (None, None)
        out.append(BackendResult(
            name, {m: round(s / audio_s, 6) for m, s in modes.items()},
            {m: round(s / base[m], 3) for m, s in modes.items()}, changed[name], wer, cer))
    return out


def fsdd_inputs(args: argparse.Namespace, tmp: Path) -> tuple[Path, list[Waveform],
                                                                list[float], list[str]]:
    """The copied run, its export, and the manifest's normalised clips, durations, references."""
    from wavtune.data.manifest import read_manifest
    from wavtune.deploy.export import ExportOptions, export_onnx
    from wavtune.run.directory import load_run_config

    config = load_run_config(args.run)
    normalizer = config.text.normalizer()
    utts = read_manifest(args.manifest)[: args.limit or None]
    run = copy_run(args.run, tmp / "run")
    export = export_onnx(run, ExportOptions())
    sr = export.meta.sample_rate
    raw = [load_audio(u.audio, sr) for u in utts]
    waves = [normalize_waveform(w) if export.meta.do_normalize else w for w in raw]
    refs = [normalizer(u.label(config.data.text_column) or "") for u in utts]
    return run, waves, [len(w) / sr for w in raw], refs


def preset_inputs(args: argparse.Namespace, tmp: Path) -> tuple[Path, list[Waveform],
                                                                  list[float]]:
    """A random-init run of ``--preset``, its fp32 export, and the generated clips."""
    from wavtune.deploy.export import ExportOptions, export_onnx

    run = random_run(tmp / "run", args.preset)
    export = export_onnx(run, ExportOptions())
    sr = export.meta.sample_rate
    waves = generated_clips(args.clips, args.shortest_s, args.longest_s, sr)
    return run, waves, [len(w) / sr for w in waves]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="?", help="a trained CTC run (not with --preset)")
    parser.add_argument("manifest", type=Path, nargs="?", help="its clips and references")
    parser.add_argument("--preset", default="", help="a random-init model of this size instead "
                                                     "(e.g. base), on generated clips")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, every backend")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-batch-s", type=float, default=60.0,
                        help="padded seconds per bucketed batch")
    parser.add_argument("--limit", type=int, default=0, help="first N clips only (0: all)")
    parser.add_argument("--int8-schemes", default="fused",
                        help="int8 schemes to compare on RUN (keys of INT8_SCHEMES)")
    parser.add_argument("--variants", default=BASE_VARIANTS,
                        help="ONNX backends with --preset: fp32 or an int8 scheme, @ a graph "
                             "level (disable, basic, extended, all)")
    parser.add_argument("--clips", type=int, default=16, help="generated clips (--preset)")
    parser.add_argument("--shortest-s", type=float, default=2.0)
    parser.add_argument("--longest-s", type=float, default=12.0)
    parser.add_argument("--json", type=Path, default=None,
                        help="results file (default benchmarks/results/inference-fsdd.json, "
                             "or inference-PRESET.json)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.preset) == bool(args.run and args.manifest):
        parser.error("give RUN and MANIFEST, or --preset (not both)")
    import torch
    from transformers import AutoConfig

    from wavtune.deploy.export import OnnxMeta
    from wavtune.model.families import encoder_config
    from wavtune.scoring import metrics

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out = args.json or Path(f"benchmarks/results/inference-{args.preset or 'fsdd'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wavtune-bench-") as tmp:
        scored = not args.preset
        if scored:
            run, waves, durations, refs = fsdd_inputs(args, Path(tmp))
            variants = parse_variants("fp32," + args.int8_schemes)
        else:
            run, waves, durations = preset_inputs(args, Path(tmp))
            variants = parse_variants(args.variants)
        encoder = encoder_config(AutoConfig.from_pretrained(str(run)))
        loaders: dict[str, Callable[[], Recognizer]] = {
            "pytorch-fp32": lambda: Recognizer(run), **onnx_recognizers(
                run / "onnx", variants, args.threads, int(encoder.num_attention_heads),
                int(encoder.hidden_size))}
        plans = {"single": [[i] for i in range(len(waves))],
                 "batched": [list(range(i, min(i + args.batch_size, len(waves))))
                             for i in range(0, len(waves), args.batch_size)],
                 "bucketed": plan_batches(durations, args.batch_size, args.max_batch_s)}
        parity = [asdict(p) for p in OnnxMeta.load(run / "onnx").parity]
        seconds, texts, changed = {}, {}, {}
        for name, took, said, flips in measure(loaders, waves, plans, args.repeats):
            seconds[name], texts[name], changed[name] = took, said, flips
            print(f"{name}: {took}", flush=True)  # a run cut short keeps what it measured
            scores = {n: (metrics.wer(refs, t).rate, metrics.cer(refs, t).rate)
                      for n, t in texts.items()} if scored else None
            results = results_of(seconds, changed, float(sum(durations)), scores)
            payload = payload_of(args, argv, durations, plans, parity, results, started)
            payload["complete"] = len(seconds) == len(loaders)
            out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        conv_s = feature_encoder_s(run, waves, args.repeats)
        if conv_s is not None:
            payload["pytorch_feature_encoder"] = {
                "rtf_single": round(conv_s / float(sum(durations)), 6),
                "share_of_pytorch_single": round(conv_s / seconds["pytorch-fp32"]["single"], 3)}
            out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(table(payload, results))
    if conv_s is not None:
        share = payload["pytorch_feature_encoder"]["share_of_pytorch_single"]
        print(f"conv feature encoder: {share:.0%} of PyTorch fp32's one-clip time (an approximate "
              "floor for int8 that keeps the convs fp32)")
    print(f"-> {out}")
    return 0


def payload_of(args: argparse.Namespace, argv: Sequence[str] | None, durations: Sequence[float],
               plans: dict[str, list[list[int]]], parity: list[dict[str, Any]],
               results: list[BackendResult], started: float) -> dict[str, Any]:
    padded = {m: round(float(sum(len(b) * max(durations[i] for i in b) for b in plan)), 2)
              for m, plan in plans.items()}
    return {
        "run": str(args.run) if args.run else None, "manifest": str(args.manifest or ""),
        "preset": args.preset or None, "clips": len(durations),
        "audio_s": round(float(sum(durations)), 2), "padded_audio_s": padded,
        "threads": args.threads, "repeats": args.repeats, "batch_size": args.batch_size,
        "max_batch_s": args.max_batch_s,
        "batches": {m: len(p) for m, p in plans.items()}, "machine": machine_info(),
        "parity_fp32": parity, "results": [asdict(r) for r in results],
        "wall_s": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/inference.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv),
    }


def table(payload: dict[str, Any], results: list[BackendResult]) -> str:
    modes = list(results[0].rtf)
    lines = [f"{payload['clips']} clips, {payload['audio_s']:.1f} s of audio, "
             f"{payload['threads']} thread(s), best of {payload['repeats']}; padded audio s "
             f"per mode {payload['padded_audio_s']}",
             "| backend | " + " | ".join(f"RTF {m} | vs PyTorch" for m in modes)
             + " | changed when batched | WER | CER |",
             "|---|" + "---|---|" * len(modes) + "---|---|---|"]
    for r in results:
        cells = " | ".join(f"{r.rtf[m]:.5f} | {r.vs_pytorch[m]:.2f}x" for m in modes)
        wer = "-" if r.wer is None else f"{r.wer:.4f}"
        cer = "-" if r.cer is None else f"{r.cer:.4f}"
        lines.append(f"| {r.backend} | {cells} | {sum(r.changed_when_batched.values())} | "
                     f"{wer} | {cer} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
