"""``wavtune evaluate``, ``transcribe`` and ``classify``: running a finished run over audio.

Inputs are checked before the model loads (the run directory has a model, every audio file
exists and has a readable header), so a typo costs no model load.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wavtune.cli.lm import add_decoder_options
from wavtune.constants import DEFAULT_CHUNK_OVERLAP_S, DEFAULT_CHUNK_S, DEFAULT_INFER_BATCH_SIZE

if TYPE_CHECKING:
    from wavtune.infer.loaded import LoadedRun


def _inputs(run: str, audio: Sequence[str]) -> list[Path]:
    """The audio files named (folders searched), checked with the run directory before any
    model loads: the run first, then every file's existence and audio header."""
    from wavtune.data.audio import find_audio, require_audio
    from wavtune.infer.loaded import require_model_folder

    require_model_folder(run)
    paths = find_audio(audio)
    require_audio(paths)
    return paths


def _loaded(args: argparse.Namespace) -> LoadedRun:
    """The run's PyTorch model, or (--backend onnx) its ONNX export behind the same interface."""
    if args.backend == "onnx":
        from wavtune.deploy.onnx_runtime import OnnxRun

        return OnnxRun(args.run, int8=args.int8, threads=args.threads)
    from wavtune.infer.loaded import LoadedRun

    return LoadedRun(args.run, device=args.device)


def _backend_name(args: argparse.Namespace) -> str:
    """pytorch, onnx or onnx-int8: which forward pass made the scores."""
    if args.backend != "onnx":
        return "pytorch"
    return "onnx-int8" if args.int8 else "onnx"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wavtune.cli.lm import settings_from_args
    from wavtune.data.manifest import read_manifest, with_durations
    from wavtune.decode.registry import make_decoder
    from wavtune.infer.evaluation import evaluate_run
    from wavtune.infer.loaded import require_model_folder
    from wavtune.run.directory import RunDir
    from wavtune.scoring.evaluation import write_task_predictions

    require_model_folder(args.run)
    utts = with_durations(read_manifest(args.manifest))  # rows and headers before the model
    decoding = settings_from_args(args)
    loaded = _loaded(args)
    decoder = make_decoder(loaded.vocab, decoding) if loaded.vocab is not None else None
    result = evaluate_run(loaded, utts, args.text_column, args.batch_size,
                          progress=not args.quiet, decoder=decoder)
    name = args.name or Path(args.manifest).stem
    run = RunDir(Path(args.run))
    write_task_predictions(result, run.predictions(name))
    summary: dict[str, Any] = {"manifest": str(args.manifest), **result.scores(),
                               "utterances": result.num_utterances,
                               "backend": _backend_name(args)}
    if result.ctc is not None:
        summary["decoder"] = decoding.name
    if result.heads:
        summary["heads"] = {h.name: h.details() for h in result.heads}
    run.write_json(run.root / f"metrics-{name}.json", summary)
    if args.json:
        print(json.dumps(summary))
    else:
        scores = [f"WER {result.ctc.wer:.4f}  CER {result.ctc.cer:.4f} ({decoding.name})"
                  ] if result.ctc else []
        scores += [f"{h.name}: accuracy {h.report.accuracy:.4f} macro F1 {h.report.macro.f1:.4f}"
                   for h in result.heads]
        print(f"{name}: {'  '.join(scores)}  loss {result.loss:.4f}  "
              f"({result.num_utterances} utterances) -> {run.predictions(name)}")
        for h in result.heads:
            print(f"{h.name} confusion (rows: true, columns: predicted): "
                  f"{h.report.confusion_as_seed_rows()}")
    return 0


def _labels_text(labels: Sequence[Any]) -> str:
    """``speaker=george (0.97)`` per head; with --top-k, ``george 0.970, jackson 0.020``."""
    return "  ".join(
        f"{h.column}=" + ", ".join(f"{label} ({p:.3f})" for label, p in h.top) for h in labels)


def _labels_json(labels: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    return {h.column: [{"label": label, "probability": round(p, 4)} for label, p in h.top]
            for h in labels}


def cmd_classify(args: argparse.Namespace) -> int:
    from wavtune.infer.classifier import Classifier
    from wavtune.infer.types import TranscribeOptions

    paths = _inputs(args.run, args.audio)
    if args.backend == "onnx":
        from wavtune.deploy.onnx_runtime import OnnxClassifier

        clf: Classifier = OnnxClassifier(args.run, int8=args.int8, threads=args.threads)
    else:
        clf = Classifier(args.run, device=args.device)
    options = TranscribeOptions(args.chunk_s, batch_size=args.batch_size, overlap_s=0.0)
    for c in clf.classify_files(paths, args.top_k, options,
                                progress=not args.quiet and len(paths) > 8):
        if args.format == "json":
            print(json.dumps({"audio": c.source, "duration_s": round(c.duration_s, 3),
                              "labels": _labels_json(c.heads)}, ensure_ascii=False))
        elif len(paths) == 1:
            print(_labels_text(c.heads))
        else:
            print(f"{c.source}\t{_labels_text(c.heads)}")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from wavtune.cli.lm import settings_from_args
    from wavtune.data.audio import AudioError
    from wavtune.infer.output import output_paths, render
    from wavtune.infer.recognizer import Recognizer
    from wavtune.infer.types import TranscribeOptions

    paths = _inputs(args.run, args.audio)
    decoding = settings_from_args(args)
    if args.backend == "onnx":
        from wavtune.deploy.onnx_runtime import OnnxRecognizer
        from wavtune.run.directory import RunError

        if args.adapter:
            raise RunError("--adapter works with --backend pytorch (the ONNX export holds the "
                           "adapter the run published)")

        rec: Recognizer = OnnxRecognizer(args.run, int8=args.int8, threads=args.threads,
                                         decoding=decoding)
    else:
        rec = Recognizer(args.run, device=args.device, decoding=decoding, adapter=args.adapter)
    options = TranscribeOptions(args.chunk_s, args.overlap_s, args.batch_size, args.max_batch_s)
    if args.format in ("srt", "vtt") and len(paths) > 1 and not args.output_dir:
        raise AudioError(f"--format {args.format} with {len(paths)} files: give --output-dir DIR "
                         f"to write one subtitle file per input")
    targets = output_paths([str(p) for p in paths], Path(args.output_dir or "."), args.format)
    if args.output_dir:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    for target, t in zip(targets, rec.transcribe_files(paths, options,
                                                       progress=not args.quiet and len(paths) > 8)):
        if args.output_dir:
            target.write_text(render(t, args.format, args.char_timestamps, indent=1),
                              encoding="utf-8")
            print(f"{t.source} -> {target}")
        elif args.format != "text":
            print(render(t, args.format, args.char_timestamps), end="")
        else:
            line = f"{t.text}\t{_labels_text(t.labels)}" if t.labels else t.text
            print(line if len(paths) == 1 else f"{t.source}\t{line}")
    return 0


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that run a trained model over audio."""
    p.add_argument("--batch-size", type=int, default=DEFAULT_INFER_BATCH_SIZE,
                   help=f"utterances per forward pass (default {DEFAULT_INFER_BATCH_SIZE})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    """--backend pytorch|onnx and the ONNX Runtime options (the same forward pass choice for
    evaluate, transcribe and classify)."""
    p.add_argument("--backend", choices=("pytorch", "onnx"), default="pytorch",
                   help="pytorch (default): the run's model; onnx: ONNX Runtime on CPU with "
                        "RUN's export (wavtune export RUN --onnx)")
    p.add_argument("--int8", action="store_true", help="onnx: the int8 model (export --int8)")
    p.add_argument("--threads", type=int, default=0, help="onnx: intra-op threads (0: default)")


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="score a run on a manifest (WER, CER, accuracy, F1)",
                       description="Greedy-decode and/or classify every row of MANIFEST with RUN's "
                                   "model (every head of a multi-task run) and write "
                                   "predictions-NAME.jsonl and metrics-NAME.json into RUN. "
                                   "--backend onnx runs RUN's ONNX export (wavtune export RUN "
                                   "--onnx [--int8]) instead: the same files, scored by the same "
                                   "code; only the forward pass differs.")
    p.add_argument("run", help="run directory")
    p.add_argument("manifest", help="manifest with transcripts (JSONL/CSV/TSV)")
    p.add_argument("--name", help="name for the output files (default: the manifest's stem)")
    p.add_argument("--text-column", help="transcript column (default: the run's data.text_column)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    _add_backend_options(p)
    _add_inference_options(p)
    add_decoder_options(p)
    p.set_defaults(func=cmd_evaluate)


def _add_transcribe(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files or folders with a run",
                       description="Print the transcript of each audio file (folders are searched "
                                   "recursively). Audio longer than --chunk-s is decoded in "
                                   "overlapping chunks.")
    p.add_argument("run", help="run directory")
    p.add_argument("audio", nargs="+", help="audio files or folders")
    p.add_argument("--format", choices=("text", "json", "srt", "vtt"), default="text",
                   help="text: the transcript (with the path when several files); json: one "
                        "object per line with timed words (and labels of a multi-task run); "
                        "srt, vtt: subtitles")
    p.add_argument("--char-timestamps", action="store_true",
                   help="json: also list each character with its start and end (s)")
    p.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write one file per input (DIR/<name>.txt|json|srt|vtt) instead of printing",
    )
    p.add_argument("--chunk-s", type=float, default=DEFAULT_CHUNK_S,
                   help=f"window length for long audio (s, default {DEFAULT_CHUNK_S:g})")
    p.add_argument("--overlap-s", type=float, default=DEFAULT_CHUNK_OVERLAP_S,
                   help=f"context kept on each side of a window (s, default "
                        f"{DEFAULT_CHUNK_OVERLAP_S:g})")
    p.add_argument(
        "--max-batch-s",
        type=float,
        default=0.0,
        help="padded audio seconds per batch of short files (default 0: --batch-size only)",
    )
    _add_backend_options(p)
    p.add_argument("--adapter", metavar="NAME",
                   help="an adapter run (model.peft.method: adapter): load "
                        "RUN/adapter.NAME.safetensors, e.g. a language code, into the model")
    _add_inference_options(p)
    add_decoder_options(p)
    p.set_defaults(func=cmd_transcribe)


def _add_classify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("classify", help="label audio files or folders with a classification run",
                       description="Print each label head's most probable labels and their "
                                   "probabilities for every audio file (folders are searched "
                                   "recursively); works on classify and multitask runs.")
    p.add_argument("run", help="run directory (task classify or multitask)")
    p.add_argument("audio", nargs="+", help="audio files or folders")
    p.add_argument("--top-k", type=int, default=1, help="labels shown per head (default 1)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: 'column=label (probability)' (with the path when several files); "
                        "json: one object per line")
    p.add_argument("--chunk-s", type=float, default=DEFAULT_CHUNK_S,
                   help="longer audio is scored in windows of this length and averaged (s)")
    _add_backend_options(p)
    _add_inference_options(p)
    p.set_defaults(func=cmd_classify)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_evaluate(sub)
    _add_transcribe(sub)
    _add_classify(sub)
