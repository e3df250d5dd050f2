"""``wavtune export``: a run's model as ONNX (every head: CTC, classification, multi-task; fp32,
optionally int8) with a parity check;
``wavtune export-ctc``: a multi-task run's CTC branch as a plain transformers model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from wavtune.deploy.int8 import DEFAULT_INT8_SCHEME, INT8_SCHEMES

if TYPE_CHECKING:
    from wavtune.deploy.export import Parity


def cmd_export(args: argparse.Namespace) -> int:
    from wavtune.deploy.export import DEFAULT_OPSET, ExportError, ExportOptions, export_onnx
    from wavtune.deploy.onnx_graph import output_names

    if not args.onnx:
        raise ExportError("choose an export format: --onnx (the only one so far)")
    result = export_onnx(args.run, ExportOptions(Path(args.out) if args.out else None,
                                                 args.int8 or bool(args.int8_scheme),
                                                 args.opset or DEFAULT_OPSET,
                                                 int8_scheme=args.int8_scheme or ""))
    for p in result.meta.parity:
        print(parity_line(p))
    outputs = ", ".join(output_names(any(p.max_abs_diff is not None for p in result.meta.parity),
                                     [h.column for h in result.meta.heads]))
    command = "classify" if result.meta.kind == "classify" else "transcribe"
    print(f"-> {result.folder} (outputs: {outputs}; try: wavtune {command} {args.run} AUDIO.wav "
          f"--backend onnx{' --int8' if args.int8 else ''})")
    return 0


def parity_line(p: Parity) -> str:
    """One export file's parity figures against PyTorch, for each head the model has."""
    parts = []
    if p.max_abs_diff is not None:
        parts.append(f"max |logit diff| vs PyTorch {p.max_abs_diff:.2e}, same best id on "
                     f"{p.frame_agreement or 0.0:.2%} of frames, transcripts "
                     f"{'equal' if p.same_transcripts else 'DIFFER'}")
    if p.label_max_abs_diff is not None:
        parts.append(f"max |class logit diff| {p.label_max_abs_diff:.2e}, same label on "
                     f"{p.label_agreement or 0.0:.2%} of clip-heads")
    return f"{p.file}: {'; '.join(parts)} ({p.clips} generated clips)"


def cmd_export_ctc(args: argparse.Namespace) -> int:
    from wavtune.train.checkpoint import export_ctc

    out = export_ctc(args.run, args.out)
    print(f"CTC branch of {args.run} -> {out} (load it with "
          f"pipeline('automatic-speech-recognition', model='{out}'))")
    return 0


def _add_export_ctc(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export-ctc", help="write a multi-task run's CTC branch as a plain model",
                       description="Write the encoder and CTC head of a multitask run to OUT as "
                                   "the stock transformers *ForCTC model with its tokenizer and "
                                   "feature extractor, loadable without wavtune.")
    p.add_argument("run", help="run directory (task multitask)")
    p.add_argument("out", help="new folder for the CTC model")
    p.set_defaults(func=cmd_export_ctc)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_export_ctc(sub)
    p = sub.add_parser("export", help="export a run's model to ONNX (optionally int8)",
                       description="Write RUN/onnx/model.onnx (and model.int8.onnx with --int8, "
                                   "ONNX Runtime dynamic quantisation) with the vocabulary, "
                                   "label heads and settings, after checking logits, "
                                   "transcripts and labels against PyTorch on generated audio. "
                                   "Outputs: 'logits' and 'frames' for a CTC head, "
                                   "'class_logits.COLUMN' for each label head (a multi-task "
                                   "run has both).")
    p.add_argument("run", help="run directory (task ctc, classify or multitask)")
    p.add_argument("--onnx", action="store_true", help="export to ONNX")
    p.add_argument("--int8", action="store_true", help="also write a dynamic int8 model")
    p.add_argument("--int8-scheme", choices=sorted(INT8_SCHEMES),
                   help=f"how --int8 quantises (implies --int8; default {DEFAULT_INT8_SCHEME}: "
                        "fused transformer; matmul: MatMuls of the unfused graph, faster at "
                        "base size)")
    p.add_argument("--out", help="export folder (default: RUN/onnx)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export)
