"""``wavtune align`` and ``segment``: forced alignment of known transcripts with a finished CTC
run, and long recordings cut into utterance clips.

Inputs are checked before the model loads (the run has a model, the audio exists and has a
readable header, the manifest's rows are valid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wavtune.constants import (
    DEFAULT_ALIGN_SILENCE_PENALTY,
    DEFAULT_ALIGN_SNAP_S,
    DEFAULT_CHUNK_OVERLAP_S,
    DEFAULT_CHUNK_S,
    DEFAULT_SEGMENT_WINDOW_S,
)

ALIGN_FORMATS = ("json", "ctm", "srt", "textgrid")  # as wavtune.infer.alignformats


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "align", help="word and character timings of a known transcript (forced alignment)",
        description="Align TRANSCRIPT (the text, or a text file) to AUDIO through RUN's CTC "
                    "posteriors (Viterbi), or every row of --manifest to its transcript, and "
                    "print word and character spans in seconds with each one's score (mean "
                    "log-posterior; 0 is certain) and the utterance's score. Audio longer than "
                    "--chunk-s runs through the model in overlapping windows.")
    p.add_argument("run", help="run directory (a CTC or multi-task run)")
    p.add_argument("audio", nargs="?", help="audio file")
    p.add_argument("transcript", nargs="?", help="its transcript, or a text file holding it")
    p.add_argument("--manifest", metavar="M", help="align every row of this manifest instead")
    p.add_argument("--text-column", help="manifest transcript column (default: the run's)")
    p.add_argument("--format", choices=ALIGN_FORMATS, default="json",
                   help="json: {words, chars, score} (one line per row with --manifest); ctm: "
                        "NIST CTM word lines; srt: subtitles; textgrid: Praat TextGrid with a "
                        "words and a chars tier")
    p.add_argument("--output-dir", metavar="DIR",
                   help="write one file per input (DIR/<name>.json|ctm|srt|TextGrid)")
    p.add_argument("--snap-s", type=float, default=DEFAULT_ALIGN_SNAP_S,
                   help="furthest a word edge moves out from the characters the model hears to "
                        f"the end of its sound (s, default {DEFAULT_ALIGN_SNAP_S:g}; 0: off)")
    p.add_argument("--pad-s", type=float, default=0.0,
                   help="silence added on each side for the model's forward pass (s, default "
                        "0); helps models that emit a spurious character on the first frame")
    _add_window_options(p)
    p.set_defaults(func=cmd_align)
    _add_segment(sub)


def _add_window_options(p: argparse.ArgumentParser) -> None:
    """The model's windows over long audio (as ``transcribe`` has them), the silence prior and
    the device."""
    p.add_argument("--silence-penalty", type=float, default=DEFAULT_ALIGN_SILENCE_PENALTY,
                   help="nats charged to a character on a frame at the recording's noise floor, "
                        "which keeps words off pauses (default "
                        f"{DEFAULT_ALIGN_SILENCE_PENALTY:g}; 0: off)")
    p.add_argument("--chunk-s", type=float, default=DEFAULT_CHUNK_S,
                   help=f"window length for long audio (s, default {DEFAULT_CHUNK_S:g})")
    p.add_argument("--overlap-s", type=float, default=DEFAULT_CHUNK_OVERLAP_S,
                   help=f"context on each side of a window (s, default "
                        f"{DEFAULT_CHUNK_OVERLAP_S:g})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def _add_segment(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "segment", help="cut a long recording with its full transcript into utterance clips",
        description="Force-align TRANSCRIPT (a text file: one utterance per line, or free text "
                    "split into sentences) to LONG_AUDIO with RUN's CTC model and write "
                    "OUT/clips/*.wav and OUT/segments.jsonl (text, start, end, score), keeping "
                    "the utterances scoring at least --min-score. The recording is read block by "
                    "block, its posteriors spilled to a temporary file, and, past the one-pass "
                    "bound, aligned exactly by checkpoints (--window-s), so it may be longer "
                    "than memory could hold.")
    p.add_argument("run", help="run directory (a CTC or multi-task run)")
    p.add_argument("audio", help="the long recording")
    p.add_argument("transcript", help="its transcript (a text file)")
    p.add_argument("out", help="output folder")
    p.add_argument("--min-score", type=float, default=float("-inf"),
                   help="leave out utterances whose mean log-posterior per character is lower "
                        "(e.g. -1.5; default: keep all)")
    p.add_argument("--window-s", type=float, default=DEFAULT_SEGMENT_WINDOW_S,
                   help="a recording too large to align in one pass (over about an hour of "
                        "speech) holds this many seconds of back-pointers at a time (default "
                        f"{DEFAULT_SEGMENT_WINDOW_S:g}; the path is the one-pass path, found by "
                        "checkpoints): memory follows the window, not the recording")
    _add_window_options(p)
    p.set_defaults(func=cmd_segment)


def cmd_segment(args: argparse.Namespace) -> int:
    from wavtune.data.audio import require_audio
    from wavtune.infer.aligner import Aligner, AlignOptions
    from wavtune.infer.alignment import AlignmentError
    from wavtune.infer.loaded import require_model_folder
    from wavtune.infer.segment import segment_recording, split_utterances, write_segments
    from wavtune.infer.types import TranscribeOptions

    require_model_folder(args.run)
    audio = Path(args.audio)
    require_audio([audio])
    if not Path(args.transcript).is_file():
        raise AlignmentError(f"{args.transcript}: transcript file not found")
    utterances = split_utterances(Path(args.transcript).read_text(encoding="utf-8"))
    if not utterances:
        raise AlignmentError(f"{args.transcript}: no utterance in the transcript")
    options = AlignOptions(TranscribeOptions(args.chunk_s, args.overlap_s),
                           silence_penalty=args.silence_penalty)
    aligner = Aligner(args.run, device=args.device, options=options)
    if args.window_s <= 0:
        raise AlignmentError(f"--window-s: must be > 0 seconds, got {args.window_s:g}")
    segments = segment_recording(aligner, audio, utterances, args.min_score, args.window_s)
    manifest = write_segments(audio, segments, Path(args.out))
    for s in segments:
        if not s.kept:
            print(f"dropped: {s.id} ({s.start_s:.2f}-{s.end_s:.2f} s, score {s.score:.3f} < "
                  f"{args.min_score:g}): {s.text}", file=sys.stderr)
    kept = sum(s.kept for s in segments)
    print(f"{kept} of {len(segments)} utterances -> {manifest}")
    return 0


def _transcript(value: str) -> str:
    """The text itself, or the contents of the text file it names (lines joined)."""
    path = Path(value)
    if path.suffix in (".txt", ".lab") or path.is_file():
        from wavtune.infer.alignment import AlignmentError

        if not path.is_file():
            raise AlignmentError(f"{path}: transcript file not found")
        return " ".join(path.read_text(encoding="utf-8").split())
    return value


def _emit(text: str, target: Path | None) -> None:
    if target is None:
        print(text, end="")
    else:
        target.write_text(text, encoding="utf-8")
        print(f"-> {target}")


def cmd_align(args: argparse.Namespace) -> int:
    from wavtune.data.audio import AudioError, audio_info, require_audio
    from wavtune.data.manifest import read_manifest, with_durations
    from wavtune.infer.aligner import Aligner, AlignOptions
    from wavtune.infer.alignformats import ALIGN_SUFFIXES, render_alignment
    from wavtune.infer.loaded import require_model_folder
    from wavtune.infer.types import TranscribeOptions

    require_model_folder(args.run)
    if bool(args.manifest) == bool(args.audio):
        raise AudioError("give either AUDIO TRANSCRIPT or --manifest M (not both, not neither)")
    if args.audio and args.transcript is None:
        raise AudioError(f"{args.audio}: no TRANSCRIPT given; wavtune align RUN AUDIO TEXT")
    many = bool(args.manifest)
    if many and args.format in ("srt", "textgrid") and not args.output_dir:
        raise AudioError(f"--format {args.format} with --manifest writes one file per row: give "
                         f"--output-dir DIR")
    if many:
        utts = with_durations(read_manifest(args.manifest))
    else:
        require_audio([Path(args.audio)])
        text = _transcript(args.transcript)
    out = Path(args.output_dir) if args.output_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    options = AlignOptions(TranscribeOptions(args.chunk_s, args.overlap_s), args.snap_s,
                           args.silence_penalty, pad_s=args.pad_s)
    aligner = Aligner(args.run, device=args.device, options=options)
    suffix = ALIGN_SUFFIXES[args.format]
    if not many:
        timed = aligner.align_file(args.audio, text)
        _warn_unknown(str(args.audio), timed.unknown)
        stem = Path(args.audio).stem
        _emit(render_alignment(timed, args.format, audio_info(args.audio).duration_s, stem),
              out / f"{stem}{suffix}" if out else None)
        return 0
    failed = 0
    for utt, row in zip(utts, aligner.align_rows(utts, args.text_column)):
        if row.alignment is None:
            print(f"error: {row.error}", file=sys.stderr)
            failed += 1
            continue
        _warn_unknown(row.where, row.alignment.unknown)
        _emit(render_alignment(row.alignment, args.format, utt.duration_s or 0.0, row.id),
              out / f"{_file_name(row.id)}{suffix}" if out else None)
    if failed:
        print(f"{failed} of {len(utts)} rows could not be aligned", file=sys.stderr)
    return 1 if failed else 0


def _file_name(utt_id: str) -> str:
    """A row id as a file name (path separators replaced)."""
    return utt_id.replace("/", "_").replace("\\", "_") or "row"


def _warn_unknown(where: str, unknown: tuple[str, ...]) -> None:
    if unknown:
        print(f"warning: {where}: not in the model's vocabulary, left unaligned: "
              f"{' '.join(sorted(set(unknown)))}", file=sys.stderr)
