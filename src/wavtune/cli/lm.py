"""``wavtune lm build|tune`` and the decoder options of ``transcribe``/``evaluate``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from wavtune.constants import MANIFEST_SUFFIXES
from wavtune.decode.registry import DECODERS, decoder_names
from wavtune.decode.runfile import load_decoding, save_decoding
from wavtune.decode.settings import DecoderSettings, Hotword, with_overrides


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lm", help="build n-gram language models and tune beam search with them",
                       description="Build an ARPA n-gram LM from text, and tune its weights for a "
                                   "run on a dev set (stored in RUN/decoding.json, which "
                                   "'transcribe' and 'evaluate' then use).")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")

    b = lm_sub.add_parser(
        "build", help="estimate an ARPA n-gram LM (modified Kneser-Ney) from text",
        description="Estimate an ARPA n-gram model from TEXT (one sentence per line, or a "
                    "JSONL/CSV/TSV manifest's transcripts) or, with --run and no TEXT, from the "
                    "run's training transcripts. Text is normalised as the run's model text "
                    "(--run) or with the default normalisation (NFKC, lower case).")
    b.add_argument("paths", nargs="+", metavar="[TEXT] OUT", help="corpus and output .arpa file")
    b.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    b.add_argument("--run", help="normalise as this run's text; default corpus: its training "
                                 "transcripts")
    b.add_argument("--unit", choices=("word", "char"),
                   help="word: words; char: the vocabulary's tokens (letters and '|', CJK "
                        "characters, phones). Default: char for CJK/phone runs, else word")
    b.add_argument("--engine", choices=("python", "kenlm"), default="python",
                   help="python: built in, needs nothing; kenlm: KenLM's lmplz (on PATH)")
    b.add_argument("--text-column", help="transcript column of a manifest corpus")
    b.set_defaults(func=cmd_lm_build)

    t = lm_sub.add_parser(
        "tune", help="search the LM weight and word bonus on a dev set; store the best",
        description="Run RUN's model over MANIFEST once, then beam-decode the cached logits "
                    "with LM at every (alpha, beta) of a grid (or --random N points), print the "
                    "table and store the best values in RUN/decoding.json.")
    t.add_argument("run", help="run directory (CTC or multi-task)")
    t.add_argument("--lm", required=True, help="ARPA or KenLM binary file")
    t.add_argument("--dev", required=True, help="dev manifest with transcripts")
    t.add_argument("--alphas", type=_floats, help="LM weights, comma-separated")
    t.add_argument("--betas", type=_floats, help="word bonuses, comma-separated")
    t.add_argument("--random", type=int, metavar="N", help="N random (alpha, beta) points instead")
    t.add_argument("--seed", type=int, default=0, help="seed of --random")
    t.add_argument("--beam-width", type=int, default=DecoderSettings().beam_width)
    t.add_argument("--lm-unit", choices=("auto", "word", "char"), default="auto")
    t.add_argument("--text-column", help="transcript column (default: the run's)")
    t.add_argument("--no-save", action="store_true", help="print the table only")
    t.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass")
    t.add_argument("--device", default="cpu")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_lm_tune)


def add_decoder_options(p: argparse.ArgumentParser) -> None:
    """Options choosing the decoder (default: RUN/decoding.json, else greedy)."""
    g = p.add_argument_group("decoding (default: the run's decoding.json from 'wavtune lm tune', "
                             "else greedy)")
    g.add_argument("--decoder", choices=decoder_names(),
                   help="; ".join(f"{e.name}: {e.summary}" for e in DECODERS.values()))
    g.add_argument("--lm", help="ARPA or KenLM binary n-gram LM (implies --decoder beam)")
    g.add_argument("--lm-unit", choices=("auto", "word", "char"), help="what the LM's words are")
    g.add_argument("--alpha", type=float, help="LM weight")
    g.add_argument("--beta", type=float, help="word insertion bonus")
    g.add_argument("--beam-width", type=int, help="hypotheses kept per frame")
    g.add_argument("--hotword", action="append", type=Hotword.parse, metavar="WORD[:WEIGHT]",
                   help="boost this word or phrase (repeatable; weight in nats per letter)")


def settings_from_args(args: argparse.Namespace) -> DecoderSettings:
    """The run's stored settings (or greedy) with the command line's decoder options applied."""
    base = load_decoding(args.run) or DecoderSettings()
    return with_overrides(base, args.decoder, args.lm, args.alpha, args.beta, args.beam_width,
                          args.lm_unit, args.hotword or ())


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers") from None


def _corpus(path: Path, text_column: str) -> Iterator[str]:
    """Raw transcripts of a manifest, or the lines of a text file."""
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        from wavtune.data.manifest import read_manifest

        for utt in read_manifest(path, unique_ids=False):
            text = utt.label(text_column)
            if text:
                yield text
        return
    from wavtune.decode.arpa import LanguageModelError

    if not path.is_file():
        raise LanguageModelError(f"{path}: corpus not found")
    with path.open(encoding="utf-8") as f:
        yield from (line for line in f if line.strip())


def cmd_lm_build(args: argparse.Namespace) -> int:
    from wavtune.data.text import TextNormalizer, Unit
    from wavtune.decode.arpa import LanguageModelError, LMUnit, build_arpa, build_with_lmplz

    if len(args.paths) > 2:
        raise LanguageModelError("give TEXT OUT, or OUT with --run (the run's training text)")
    out = Path(args.paths[-1])
    normalizer, text_column = TextNormalizer(), args.text_column or "text"
    text_unit: Unit = "char"
    corpus: Path | None = Path(args.paths[0]) if len(args.paths) == 2 else None
    if args.run:
        from wavtune.run.directory import load_run_config, load_vocab

        config = load_run_config(args.run)
        normalizer, text_unit = config.text.normalizer(), load_vocab(args.run).unit
        text_column = args.text_column or config.data.text_column
        if corpus is None:
            if not config.data.train:
                raise LanguageModelError(f"{args.run}: the run names no training manifest; give "
                                         f"TEXT")
            corpus = Path(config.data.train)
            if not corpus.is_absolute():
                corpus = Path(args.run) / corpus
    if corpus is None:
        raise LanguageModelError("no corpus: give TEXT OUT, or OUT with --run RUN")
    unit: LMUnit = args.unit or ("char" if text_unit in ("cjk", "phone") else "word")
    texts = [t for t in (normalizer(raw) for raw in _corpus(corpus, text_column)) if t]
    if args.engine == "kenlm":
        build_with_lmplz(texts, out, args.order, unit, text_unit)
        print(f"{len(texts)} sentences -> {out} (lmplz, order {args.order}, {unit} units)")
        return 0
    model = build_arpa(texts, out, args.order, unit, text_unit)
    sizes = ", ".join(f"{len(t)} {n}-grams" for n, t in enumerate(model.logprob, 1))
    print(f"{len(texts)} sentences -> {out} (order {args.order}, {unit} units: {sizes})")
    return 0


def cmd_lm_tune(args: argparse.Namespace) -> int:
    from wavtune.decode.settings import TunedScores
    from wavtune.infer.tuning import (
        DEFAULT_ALPHAS,
        DEFAULT_BETAS,
        Trial,
        dev_outputs,
        grid,
        random_points,
        tune,
    )
    from wavtune.run.directory import load_vocab

    settings = DecoderSettings("beam", beam_width=args.beam_width, lm=str(args.lm),
                               lm_unit=args.lm_unit)
    if args.random:
        points = random_points(args.random, args.seed)
    else:
        points = grid(args.alphas or DEFAULT_ALPHAS, args.betas or DEFAULT_BETAS)
    dev = dev_outputs(args.run, args.dev, args.text_column, args.batch_size, args.device,
                      progress=not args.quiet)
    print(f"{len(dev.ids)} dev utterances; {len(points)} (alpha, beta) points")
    print(f"{'alpha':>7} {'beta':>7} {'WER':>7} {'CER':>7} {'utt/s':>8}")

    def show(trial: Trial) -> None:
        s = trial.scores
        print(f"{trial.alpha:7.3f} {trial.beta:7.3f} {s.wer:7.4f} {s.cer:7.4f} "
              f"{s.utterances_per_s:8.1f}", flush=True)

    result = tune(load_vocab(args.run), settings, dev, points, show)
    best = result.best.scores
    print(
        f"greedy: WER {result.greedy.wer:.4f} CER {result.greedy.cer:.4f}; beam {args.beam_width} "
        f"without LM: WER {result.beam.wer:.4f}; best with LM: alpha {result.best.alpha} beta "
        f"{result.best.beta} WER {best.wer:.4f} CER {best.cer:.4f}"
    )
    if not args.no_save:
        scores = TunedScores(str(args.dev), len(dev.ids), result.greedy.wer, result.greedy.cer,
                             best.wer, best.cer, result.beam.wer, len(points))
        path = save_decoding(args.run, result.settings, scores)
        print(f"-> {path} ('transcribe' and 'evaluate' now decode with it; --decoder greedy "
              f"overrides)")
    return 0
