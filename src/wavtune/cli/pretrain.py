"""``wavtune pretrain``: self-supervised pre-training on unlabelled audio (same YAML as train)."""

from __future__ import annotations

import argparse
import os

from wavtune.cli.train import add_run_options, resume_of, run_config


def cmd_pretrain(args: argparse.Namespace) -> int:
    from wavtune.train.pretrain_run import pretrain

    config = run_config(args)
    result = pretrain(config, resume=resume_of(args, config), progress=not args.quiet)
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
    add_run_options(p, "pretrain.mask_time_prob=0.5")
    p.set_defaults(func=cmd_pretrain)
