"""``wavtune prepare``, ``check-data``, ``join`` and ``synth``: the data tools' subcommands.

Part of the command line (only CLI modules read argv); the library calls live in corpora,
checks and synth.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from wavtune.checks.report import DataReport
    from wavtune.data.manifest import Utterance
    from wavtune.infer.mislabel import MisalignReport

T = TypeVar("T", int, float)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the data tools' subcommands on the ``wavtune`` parser."""
    _add_prepare(sub)
    _add_check_data(sub)
    _add_join(sub)
    _add_synth(sub)


def _add_prepare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prepare",
        help="write manifests for a corpus in its published layout",
        description="Import CORPUS from SRC (read in place) and write OUT/<split>.jsonl.",
    )
    p.add_argument("corpus", choices=_corpus_names(), help="corpus layout")
    p.add_argument("src", help="the corpus folder as distributed")
    p.add_argument("out", help="folder for the manifests")
    p.add_argument("--splits", help="only these splits, comma-separated")
    p.add_argument("--split-name", help="name of the single manifest of a corpus without splits")
    p.add_argument("--speaker-split", type=_fractions, metavar="NAME=FRAC,...",
                   help="re-split speaker-disjointly, e.g. train=0.8,dev=0.1,test=0.1")
    p.add_argument("--seed", type=int, default=42, help="seed of --speaker-split")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip rows whose audio is missing (reported) instead of failing")
    p.add_argument("--include-sa", action="store_true", help="timit: keep the SA1/SA2 sentences")
    p.add_argument("--text-column", help="hf: the transcript column")
    p.add_argument("--audio-column", default="audio", help="hf: the audio column")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prepare)


def _add_check_data(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-data", help="report problems in a manifest before training",
                       description="Read every row and report missing/unreadable/silent/NaN/"
                                   "clipped audio, empty or out-of-vocabulary transcripts, "
                                   "CTC-infeasible rows, duration outliers and duplicates. Exit "
                                   "code 1 when anything would break training.")
    p.add_argument("manifest")
    p.add_argument("--vocab", metavar="RUN", help="check transcripts against RUN's vocabulary")
    p.add_argument("--text-column", help="transcript column (default: text)")
    p.add_argument("--no-text", action="store_true", help="audio only (classification data)")
    p.add_argument("--header-only", action="store_true",
                   help="fast: read file headers only (no NaN/silence/clipping checks)")
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    p.add_argument("--align", metavar="RUN",
                   help="also force-align every row with RUN's CTC model and flag likely "
                        "mislabelled rows (score far below the data's own, and the model hears "
                        "something else), worst first; --json adds them as 'misaligned'")
    p.add_argument("--align-threshold", type=float, metavar="SCORE",
                   help="--align: flag rows scoring below SCORE (mean log-posterior per token) "
                        "instead of the threshold chosen on the data")
    p.add_argument("--max-rows", type=int, default=20, help="rows listed per problem (default 20)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--strict-paths", action="store_true",
                   help="reject audio paths outside the manifest's folder tree")
    p.set_defaults(func=cmd_check_data)


def _add_join(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "join", help="add connected-speech rows: random clips joined by pauses",
        description="Write OUT/<MANIFEST name>: MANIFEST's rows, then --rows new ones, each 2-3 "
                    "random clips of it joined by noise-filled pauses (audio in OUT/joined/, "
                    "transcripts joined by --separator). Models trained on one word per clip "
                    "learn word boundaries from them, which forced alignment needs.")
    p.add_argument("manifest", help="source manifest (every row needs a transcript)")
    p.add_argument("out", help="folder for the new manifest and OUT/joined/")
    p.add_argument("--rows", type=int, required=True, help="joined rows to add")
    p.add_argument("--clips", type=_int_range, default=(2, 3), metavar="LOW-HIGH",
                   help="clips per joined row (default 2-3)")
    p.add_argument("--pause-s", type=_float_range, default=(0.05, 0.6), metavar="LOW-HIGH",
                   help="pause between two clips in seconds (default 0.05-0.6)")
    p.add_argument("--edge-s", type=_float_range, default=(0.05, 0.3), metavar="LOW-HIGH",
                   help="silence before the first and after the last clip (default 0.05-0.3)")
    p.add_argument("--pause-db", type=float, default=-70.0,
                   help="RMS of the white noise in pauses, dBFS (default -70)")
    p.add_argument("--same-speaker", action="store_true",
                   help="join only clips of one speaker (rows need a speaker column)")
    p.add_argument("--separator", default=" ", help="between transcripts (default a space)")
    p.add_argument("--only-joined", action="store_true",
                   help="write only the joined rows, not the source rows before them")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_join)


def _parse_range(text: str, cast: Callable[[str], T], what: str) -> tuple[T, T]:
    """``LOW-HIGH`` (or one value for both) as a pair of ``cast`` values."""
    low, _, high = text.partition("-")
    try:
        return cast(low), cast(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW-HIGH {what}") from None


def _int_range(text: str) -> tuple[int, int]:
    return _parse_range(text, int, "integers, e.g. 2-3")


def _float_range(text: str) -> tuple[float, float]:
    return _parse_range(text, float, "seconds, e.g. 0.05-0.6")


def _add_synth(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("synth", help="synthesise a labelled spoken corpus offline (eSpeak NG)",
                       description="Write OUT/audio/*.wav and OUT/{train,dev,test}.jsonl: digit "
                                   "strings, commands, English and Mandarin sentences and "
                                   "code-switched ones, spoken by synthetic speakers; "
                                   "deterministic by seed.")
    p.add_argument("out")
    p.add_argument("--kinds", help="comma-separated: digits,commands,sentences,mandarin,codeswitch "
                                   "(default: all)")
    p.add_argument("--per-kind", type=int, default=60, help="clips of each kind")
    p.add_argument("--speakers", type=int, default=8, help="synthetic speakers")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--split", choices=("random", "speaker"), default="random",
                   help="speaker: test clips come from held-out voices")
    p.add_argument("--dev-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--noise", choices=("none", "white", "pink"), default="none")
    p.add_argument("--snr-db", type=float, default=20.0, help="speech-to-noise ratio with --noise")
    p.add_argument("--engine", choices=("auto", "library", "binary"), default="auto",
                   help="library: the pip espeakng-loader wheel; binary: espeak-ng on PATH")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=cmd_synth)


def _fractions(text: str) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--speaker-split {text!r}: expected NAME=FRACTION pairs, e.g. "
            "train=0.8,dev=0.1,test=0.1"
        ) from None


def cmd_prepare(args: argparse.Namespace) -> int:
    from wavtune.corpora import PrepareOptions, prepare

    options = PrepareOptions(
        splits=tuple(args.splits.split(",")) if args.splits else (),
        split_name=args.split_name, speaker_split=args.speaker_split, seed=args.seed,
        skip_missing=args.skip_missing, include_sa=args.include_sa,
        text_column=args.text_column, audio_column=args.audio_column,
        progress=False if args.quiet else None,
    )
    result = prepare(args.corpus, Path(args.src), Path(args.out), options)
    for s in result.splits:
        print(f"{s.name}: {s.utterances} utterances, {s.hours:.2f} h, {s.speakers} speakers "
              f"-> {s.manifest}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from wavtune.checks.checker import CheckOptions, check_utterances
    from wavtune.data.manifest import read_manifest
    from wavtune.data.text import TextNormalizer

    vocab = None
    normalizer = TextNormalizer()
    text_column = args.text_column
    if args.vocab:
        from wavtune.run.directory import load_run_config, load_vocab

        vocab = load_vocab(args.vocab)
        if (Path(args.vocab) / "wavtune.yaml").is_file():
            config = load_run_config(args.vocab)
            normalizer = config.text.normalizer()
            text_column = text_column or config.data.text_column
    utts = read_manifest(args.manifest, unique_ids=False, allow_outside=not args.strict_paths)
    options = CheckOptions(need_text=not args.no_text, normalizer=normalizer, vocab=vocab,
                           decode=not args.header_only, text_column=text_column or "text")
    report = check_utterances(utts, options, progress=not args.quiet)
    document = report.to_json()
    misaligned = _misaligned(args, utts, report) if args.align else None
    if misaligned is not None:
        document.update(misaligned.to_json())
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2, ensure_ascii=False))
    print(report.summary())
    shown: dict[str, int] = {}
    for finding in sorted(report.findings, key=lambda f: (not f.fatal, f.row)):
        key = finding.problem.value
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= args.max_rows:
            level = "error" if finding.fatal else "warning"
            print(f"{level}: {finding.where}: {key}: {finding.detail}")
    hidden = sum(max(0, n - args.max_rows) for n in shown.values())
    if hidden:
        print(f"... {hidden} more (raise --max-rows, or see --json)")
    if misaligned is not None:
        _print_misaligned(misaligned, args.max_rows)
    return 0 if report.ok and not (misaligned and misaligned.flagged) else 1


def _misaligned(args: argparse.Namespace, utts: Sequence[Utterance], report: DataReport
                ) -> MisalignReport:
    """The mislabelled-row report of the rows the data checks found no fatal problem in."""
    from wavtune.infer.aligner import Aligner
    from wavtune.infer.mislabel import SCORING_OPTIONS, MisalignOptions, find_misaligned

    broken = {f.row for f in report.findings if f.fatal}
    kept = [i for i in range(len(utts)) if i not in broken]
    aligner = Aligner(args.align, options=SCORING_OPTIONS)
    rows = list(aligner.align_rows([utts[i] for i in kept], args.text_column,
                                   numbers=[i + 1 for i in kept]))
    return find_misaligned(rows, MisalignOptions(threshold=args.align_threshold))


def _print_misaligned(found: MisalignReport, max_rows: int) -> None:
    print(f"alignment: {found.rows} rows aligned, median score {found.median_score:.3f}, "
          f"threshold {found.threshold:.3f}; {len(found.flagged)} likely mislabelled")
    for m in found.flagged[:max_rows]:
        print(f"warning: {m.where}: misaligned: score {m.score:.3f}, text {m.text!r}, "
              f"model hears {m.hypothesis!r} (CER {m.cer:.2f})")
    for r in found.unaligned[:max_rows]:
        print(f"warning: {r.where}: cannot be aligned: {r.error}")


def cmd_join(args: argparse.Namespace) -> int:
    from wavtune.data.joining import JoinOptions, join_manifest

    options = JoinOptions(rows=args.rows, clips=args.clips, pause_s=args.pause_s,
                          edge_s=args.edge_s, pause_db=args.pause_db,
                          same_speaker=args.same_speaker, separator=args.separator,
                          seed=args.seed)
    result = join_manifest(args.manifest, args.out, options, only_joined=args.only_joined,
                           overwrite=args.overwrite, progress=not args.quiet)
    print(f"{result.manifest}: {result.source_rows} source rows + {result.joined_rows} joined "
          f"rows ({result.joined_audio_s / 60:.1f} min of joined audio)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from wavtune.synth.corpus import SynthOptions, synthesize_corpus

    options = SynthOptions(
        kinds=tuple(args.kinds.split(",")) if args.kinds else SynthOptions().kinds,
        per_kind=args.per_kind, n_speakers=args.speakers, seed=args.seed, split=args.split,
        dev_fraction=args.dev_fraction, test_fraction=args.test_fraction, noise=args.noise,
        snr_db=args.snr_db, engine=args.engine, workers=args.workers,
    )
    result = synthesize_corpus(args.out, options, overwrite=args.overwrite)
    for split, path in result.manifests.items():
        print(f"{split}: {result.counts[split]} clips -> {path}")
    print(f"{result.duration_s / 60:.1f} min of audio from {len(result.speakers)} speakers "
          f"({result.engine}) in {result.elapsed_s:.1f} s")
    return 0


def _corpus_names() -> list[str]:
    from wavtune.corpora import CORPORA

    return sorted(CORPORA)
