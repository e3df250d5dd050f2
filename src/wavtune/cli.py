"""The ``wavtune`` command line: the only module that reads argv.

Each subcommand parses its arguments and calls one library function; user errors are printed as
one message naming the file, row or key, and the exit code is 2 (1 for ``check-data`` findings).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wavtune import __version__, cli_data, cli_export, cli_serve

log = logging.getLogger("wavtune")


# --- subcommands ----------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from wavtune.config import load_config
    from wavtune.training import train

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    if args.overwrite:
        overrides.append("train.overwrite_output_dir=true")
    config = load_config(args.config, overrides)
    result = train(config, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":  # torchrun / accelerate launch: rank 0 reports
        return 0
    where = (f"best {result.metric} {result.best_metric:.4f} at step {result.best_step}"
             if result.best_step is not None else "no eval set: last step")
    print(f"published step {result.published_step} of {result.steps} ({where}) -> {result.run_dir}")
    for name, res in (("eval", result.eval), ("test", result.test)):
        if res is not None:
            print(f"{name}: WER {res.wer:.4f}  CER {res.cer:.4f}  loss {res.loss:.4f}  "
                  f"({res.num_utterances} utterances)")
    for name, heads in (("eval", result.eval_heads), ("test", result.test_heads)):
        for h in heads:
            print(f"{name} {h.name}: accuracy {h.report.accuracy:.4f}  macro F1 "
                  f"{h.report.macro.f1:.4f}  loss {h.loss:.4f}  ({h.labelled} labelled)")
    print(f"wall time {result.wall_s / 60:.1f} min")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wavtune.cli_lm import settings_from_args
    from wavtune.decoder_settings import make_decoder
    from wavtune.evaluation import write_task_predictions
    from wavtune.inference import LoadedRun, evaluate_manifest
    from wavtune.rundir import RunDir

    loaded = LoadedRun(args.run, device=args.device)
    decoding = settings_from_args(args)
    decoder = make_decoder(loaded.vocab, decoding) if loaded.vocab is not None else None
    result = evaluate_manifest(loaded, args.manifest, args.text_column, args.batch_size,
                               progress=not args.quiet, decoder=decoder)
    name = args.name or Path(args.manifest).stem
    run = RunDir(Path(args.run))
    write_task_predictions(result, run.predictions(name))
    summary: dict[str, Any] = {"manifest": str(args.manifest), **result.scores(),
                               "utterances": result.num_utterances}
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
    from wavtune.inference import Classifier, TranscribeOptions, find_audio

    clf = Classifier(args.run, device=args.device)
    options = TranscribeOptions(args.chunk_s, batch_size=args.batch_size, overlap_s=0.0)
    paths = find_audio(args.audio)
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


def cmd_export_ctc(args: argparse.Namespace) -> int:
    from wavtune.checkpoint import export_ctc

    out = export_ctc(args.run, args.out)
    print(f"CTC branch of {args.run} -> {out} (load it with "
          f"pipeline('automatic-speech-recognition', model='{out}'))")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from wavtune.audio import AudioError
    from wavtune.cli_lm import settings_from_args
    from wavtune.inference import Recognizer, TranscribeOptions, find_audio
    from wavtune.transcript_output import output_paths, render

    decoding = settings_from_args(args)
    if args.backend == "onnx":
        from wavtune.onnx_backend import OnnxRecognizer

        rec: Recognizer = OnnxRecognizer(args.run, int8=args.int8, threads=args.threads,
                                         decoding=decoding)
    else:
        rec = Recognizer(args.run, device=args.device, decoding=decoding)
    options = TranscribeOptions(args.chunk_s, args.overlap_s, args.batch_size, args.max_batch_s)
    paths = find_audio(args.audio)
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


def cmd_card(args: argparse.Namespace) -> int:
    from wavtune.card import render_card, write_reports

    if args.stdout:
        print(render_card(args.run), end="")
        return 0
    for path in write_reports(args.run, plots=not args.no_plots):
        print(path)
    return 0


# --- parser -----

def _add_inference_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that run a trained model over audio."""
    p.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# --- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from wavtune.cli_lm import add_decoder_options
    from wavtune.cli_lm import add_parsers as add_lm_parsers

    parser = argparse.ArgumentParser(
        prog="wavtune",
        description="Fine-tune wav2vec2-family speech encoders for CTC speech recognition, "
                    "utterance classification and multi-task learning.",
    )
    parser.add_argument("--version", action="version", version=f"wavtune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train (fine-tune or from scratch) as the config says; the run "
                                   "directory gets the best checkpoint, logs, metrics, predictions.")
    p.add_argument("config", help="YAML config (see examples/)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set train.learning_rate=1e-4 (repeatable)")
    p.add_argument("--output-dir", help="run directory (same as --set train.output_dir=...)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run directory's latest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing, non-empty run directory first")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a run on a manifest (WER, CER, accuracy, F1)",
                       description="Greedy-decode and/or classify every row of MANIFEST with RUN's "
                                   "model (every head of a multi-task run) and write "
                                   "predictions-NAME.jsonl and metrics-NAME.json into RUN.")
    p.add_argument("run", help="run directory")
    p.add_argument("manifest", help="manifest with transcripts (JSONL/CSV/TSV)")
    p.add_argument("--name", help="name for the output files (default: the manifest's stem)")
    p.add_argument("--text-column", help="transcript column (default: the run's data.text_column)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    _add_inference_options(p)
    add_decoder_options(p)
    p.set_defaults(func=cmd_evaluate)

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
    p.add_argument("--output-dir", metavar="DIR",
                   help="write one file per input (DIR/<name>.txt|json|srt|vtt) instead of printing")
    p.add_argument("--chunk-s", type=float, default=30.0, help="window length for long audio (s)")
    p.add_argument("--overlap-s", type=float, default=5.0,
                   help="context kept on each side of a window (s)")
    p.add_argument("--max-batch-s", type=float, default=0.0,
                   help="padded audio seconds per batch of short files (default 0: --batch-size only)")
    p.add_argument("--backend", choices=("pytorch", "onnx"), default="pytorch",
                   help="onnx: ONNX Runtime on CPU with RUN's export (wavtune export RUN --onnx)")
    p.add_argument("--int8", action="store_true", help="onnx: the int8 model (export --int8)")
    p.add_argument("--threads", type=int, default=0, help="onnx: intra-op threads (0: default)")
    _add_inference_options(p)
    add_decoder_options(p)
    p.set_defaults(func=cmd_transcribe)

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
    p.add_argument("--chunk-s", type=float, default=30.0,
                   help="longer audio is scored in windows of this length and averaged (s)")
    _add_inference_options(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("export-ctc", help="write a multi-task run's CTC branch as a plain model",
                       description="Write the encoder and CTC head of a multitask run to OUT as "
                                   "the stock transformers *ForCTC model with its tokenizer and "
                                   "feature extractor, loadable without wavtune.")
    p.add_argument("run", help="run directory (task multitask)")
    p.add_argument("out", help="new folder for the CTC model")
    p.set_defaults(func=cmd_export_ctc)

    cli_data.add_parsers(sub)  # prepare, check-data, synth, demo

    p = sub.add_parser("card", help="(re)build a run's model card, plots and error analysis",
                       description="Write RUN/README.md (a Hub model card with filled model-index), "
                                   "RUN/plots/*.png, RUN/report.md and RUN/log.csv from the run's "
                                   "logs, metrics and predictions.")
    p.add_argument("run", help="run directory")
    p.add_argument("--stdout", action="store_true", help="print the card only; write nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=cmd_card)

    cli_serve.add_parsers(sub)
    add_lm_parsers(sub)
    cli_export.add_parsers(sub)
    return parser


def _user_errors() -> tuple[type[Exception], ...]:
    from wavtune.arpa import LanguageModelError
    from wavtune.audio import AudioError
    from wavtune.checks import DataError
    from wavtune.cli_serve import ServeError
    from wavtune.config import ConfigError
    from wavtune.corpora import CorpusError
    from wavtune.decoder_settings import DecodingError
    from wavtune.export import ExportError
    from wavtune.manifest import ManifestError
    from wavtune.modeling import ModelError
    from wavtune.rundir import RunError
    from wavtune.runinfo import RunInfoError
    from wavtune.speech_engine import EspeakError, EspeakNotFoundError
    from wavtune.synth import SynthError
    from wavtune.training import Interrupted, TrainingError
    from wavtune.vocab import VocabularyError

    return (AudioError, ConfigError, CorpusError, DataError, ManifestError, ModelError, RunError,
            VocabularyError, TrainingError, Interrupted, SynthError, EspeakError,
            EspeakNotFoundError, RunInfoError, ServeError, DecodingError, LanguageModelError,
            ExportError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except _user_errors() as e:
        print(f"wavtune {args.command}: error: {e}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
