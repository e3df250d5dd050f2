"""``wavtune pretrain``: self-supervised pre-training on unlabelled audio (same YAML as train)."""

from __future__ import annotations

import argparse
import os

from wavtune.cli.train import add_run_options, resume_of, run_config


def cmd_pretrain(args: argparse.Namespace) -> int:
    from wavtune.card.pretrain_card import write_pretrain_reports
    from wavtune.train.pretrain_run import pretrain

    config = run_config(args)
    result = pretrain(config, resume=resume_of(args, config), progress=not args.quiet)
    if result.is_main:  # the card, plots and log.csv: once training has returned
        write_pretrain_reports(result.run_dir)
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
        "wav2vec2-style encoder on data.train's audio (a manifest whose text is ignored, or a "
        "folder of audio files) with pretrain.objective: contrastive (wav2vec 2.0; wav2vec2, "
        "wav2vec2-conformer, unispeech, unispeech-sat) or hubert (masked prediction of k-means "
        "clusters of MFCC frames, fitted before the first step and kept as mfcc_clusters.json; "
        "every waveform family). The run directory is a "
        "transformers model folder with a model card that `wavtune train` fine-tunes with "
        "model.name_or_path: RUN. Example: examples/fsdd-pretrain.yaml, then "
        "examples/fsdd-low-resource.yaml (or examples/fsdd-pretrain-hubert.yaml).",
    )
    p.add_argument("config",
                   help="YAML config, the same layout as train's (data, model, train, pretrain)")
    add_run_options(p, "pretrain.mask_time_prob=0.5")
    p.set_defaults(func=cmd_pretrain)
