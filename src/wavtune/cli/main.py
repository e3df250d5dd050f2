"""The ``wavtune`` command line: the parser and the entry point. Each command group lives in its
own module of this package (train, infer, data, demo, lm, export, serve); only this package reads
argv. User errors (:class:`~wavtune.errors.WavtuneError`) are printed as one message naming the
file, row or key, and the exit code is 2 (1 for ``check-data`` findings).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from wavtune import __version__
from wavtune.cli import align as cli_align
from wavtune.cli import data as cli_data
from wavtune.cli import demo as cli_demo
from wavtune.cli import export as cli_export
from wavtune.cli import infer as cli_infer
from wavtune.cli import lm as cli_lm
from wavtune.cli import pretrain as cli_pretrain
from wavtune.cli import push as cli_push
from wavtune.cli import serve as cli_serve
from wavtune.cli import train as cli_train
from wavtune.errors import WavtuneError

log = logging.getLogger("wavtune")


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` on every subcommand, nested ones (``lm build``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.add_argument("--verbose", action="store_true",
                                   help="show the libraries' own progress bars and messages")
                _add_verbose(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavtune",
        description="Fine-tune self-supervised speech encoders (wav2vec2, XLS-R, HuBERT, WavLM, "
                    "...) for CTC speech recognition, utterance classification and multi-task "
                    "learning.",
    )
    parser.add_argument("--version", action="version", version=f"wavtune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (
        cli_train,
        cli_pretrain,
        cli_infer,
        cli_align,
        cli_export,
        cli_data,
        cli_demo,
        cli_serve,
        cli_lm,
        cli_push,
    ):
        group.add_parsers(sub)
    _add_verbose(parser)
    return parser


def library_progress(show: bool) -> None:
    """Show or hide transformers' and huggingface_hub's progress bars ("Loading weights",
    downloads): hidden unless --verbose, since wavtune shows its own and every transcribe call
    would print one to stderr."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as transformers_logging

    if show:
        transformers_logging.enable_progress_bar()
        hub_utils.enable_progress_bars()  # type: ignore[attr-defined]  # re-exported lazily
    else:
        transformers_logging.disable_progress_bar()
        hub_utils.disable_progress_bars()  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    library_progress(show=args.verbose)
    try:
        code: int = args.func(args)
    except WavtuneError as e:  # every user-facing error; anything else is a bug: traceback
        print(f"wavtune {args.command}: error: {e}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
