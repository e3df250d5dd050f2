"""``wavtune pretrain``: self-supervised pre-training on unlabelled audio (same YAML as train)."""

from __future__ import annotations

import argparse
import os


def cmd_pretrain(args: argparse.Namespace) -> int:
    from wavtune.config import load_config
    from wavtune.train.pretrain_run import pretrain

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    if args.overwrite:
        overrides.append("train.overwrite_output_dir=true")
    config = load_config(args.config, overrides)
    result = pretrain(config, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":
        return 0
    where = (f"best eval loss {result.best_metric:.4f} at step {result.best_step}"
             if result.best_step is not None else "no eval set: last step")
    print(f"published step {result.published_step} of {result.steps} ({where}) -> {result.run_dir}")
    print(f"fine-tune it with: wavtune train CONFIG --set model.name_or_path={result.run_dir}")
    print(f"wall time {result.wall_s / 60:.1f} min")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pretrain",
        help="self-supervised pre-training on unlabelled audio",
        description="Pre-train (from scratch, or continue from model.name_or_path) a "
        "wav2vec2-style encoder with the contrastive objective on data.train's audio (a "
        "manifest whose text is ignored, or a folder of audio files). The run directory is a "
        "transformers model folder that `wavtune train` fine-tunes with "
        "model.name_or_path: RUN.",
    )
    p.add_argument("config",
                   help="YAML config, the same layout as train's (data, model, train, pretrain)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set pretrain.mask_time_prob=0.5")
    p.add_argument("--output-dir", help="run directory (same as --set train.output_dir=...)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run directory's latest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing, non-empty run directory first")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pretrain)
