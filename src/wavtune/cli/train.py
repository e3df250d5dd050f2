"""``wavtune train`` and ``wavtune card``: training a run and (re)building its model card."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wavtune.config import Config


def run_config(args: argparse.Namespace) -> Config:
    """The config of a ``train``/``pretrain`` call: the YAML, then ``--set``, ``--output-dir``
    and ``--overwrite`` as overrides (so they are checked like any key)."""
    from wavtune.config import load_config

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    if args.overwrite:
        overrides.append("train.overwrite_output_dir=true")
    return load_config(args.config, overrides)


def resume_of(args: argparse.Namespace, config: Config) -> bool:
    """Whether this ``train``/``pretrain`` call continues from a checkpoint (``--resume``,
    ``--resume auto``: see :func:`wavtune.run.directory.resume_wanted`)."""
    from wavtune.run.directory import RunError, resume_wanted

    if args.resume and args.overwrite:
        raise RunError("--resume and --overwrite contradict each other: --overwrite deletes "
                         "the run that --resume would continue; pass one of them")
    return resume_wanted(config.train.output_dir, args.resume,
                         is_main=os.environ.get("RANK", "0") == "0")


def add_run_options(p: argparse.ArgumentParser, example_set: str) -> None:
    """The options every command that writes a run directory shares."""
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help=f"override a config value, e.g. --set {example_set} (repeatable)")
    p.add_argument("--output-dir", help="run directory (same as --set train.output_dir=...)")
    p.add_argument("--resume", nargs="?", const="latest", choices=("latest", "auto"),
                   help="continue from the run directory's latest valid checkpoint; "
                   "'--resume auto': continue when the run has a checkpoint, start from step 0 "
                   "otherwise (for schedulers that re-run the command, e.g. Slurm --requeue)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing, non-empty run directory first")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_train(args: argparse.Namespace) -> int:
    from wavtune.cli.reports import write_run_reports
    from wavtune.train.trainer import train

    config = run_config(args)
    result = train(config, resume=resume_of(args, config), progress=not args.quiet)
    if result.is_main:  # one writer: the other processes of a torchrun job skip the reports
        write_run_reports(result.run_dir)
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


def cmd_card(args: argparse.Namespace) -> int:
    from wavtune.card.model_card import render_card, write_reports

    if args.stdout:
        print(render_card(args.run), end="")
        return 0
    for path in write_reports(args.run, plots=not args.no_plots):
        print(path)
    return 0


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train (fine-tune or from scratch) as the config says; the run "
        "directory gets the best checkpoint, logs, metrics, predictions.",
    )
    p.add_argument("config", help="YAML config (see examples/)")
    add_run_options(p, "train.learning_rate=1e-4")
    p.set_defaults(func=cmd_train)


def _add_card(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "card",
        help="(re)build a run's model card, plots and error analysis",
        description="Write RUN/README.md (a Hub model card with filled model-index), "
        "RUN/plots/*.png, RUN/report.md and RUN/log.csv from the run's "
        "logs, metrics and predictions.",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--stdout", action="store_true", help="print the card only; write nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=cmd_card)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_train(sub)
    _add_card(sub)
