"""``wavtune push RUN REPO_ID``: the run's model, processor files, card, plots and report to the
Hugging Face Hub in one commit (``--dry-run`` lists them)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _size(n_bytes: int) -> str:
    """``1.2 MB``-style size (powers of 1000, as the Hub shows them)."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n_bytes < scale * 1000 or unit == "GB":
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"  # pragma: no cover


def cmd_push(args: argparse.Namespace) -> int:
    from wavtune.card.upload import check_repo_id, check_run, push_run

    run = Path(args.run)
    if args.dry_run:
        check_repo_id(args.repo_id)
        plan = check_run(run)
        where = f"{args.repo_id}@{args.revision}" if args.revision else args.repo_id
        print(f"would upload {len(plan)} files ({_size(sum(f.size_bytes for f in plan))}) to "
              f"{where}{' (private)' if args.private else ''}:")
        for f in plan:
            print(f"  {f.path}  {_size(f.size_bytes)}")
        return 0
    print(push_run(run, args.repo_id, private=args.private, revision=args.revision))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "push",
        help="upload a run's model and card to the Hugging Face Hub",
        description="Check the model card's metadata, then create the model repo REPO_ID "
        "(if missing) and upload in one commit: the published model, processor files, model "
        "card, plots, report, log.csv, metrics.json, decoding.json and wavtune.yaml; never "
        "checkpoints/, audio-cache/, tracking/, log.jsonl or predictions. Log in first "
        "(`hf auth login` or HF_TOKEN).",
    )
    p.add_argument("run", help="run directory (wavtune train wrote it; wavtune card RUN "
                   "rebuilds its card)")
    p.add_argument("repo_id", help="the Hub model repo, NAMESPACE/NAME")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", metavar="BRANCH",
                   help="upload to this branch (created from main if missing)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the run and list what would be uploaded (paths and sizes); "
                   "contact nothing")
    p.set_defaults(func=cmd_push)
