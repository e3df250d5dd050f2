"""The contract every corpus importer follows: its options, its result, its error, its checks.

An importer is a function ``(src, out, options) -> ImportedCorpus``: it reads a corpus in place
(never copying audio unless the corpus stores audio inside tables) and returns the utterances of
each split. :func:`wavtune.corpora.prepare` writes them as manifests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from wavtune.constants import DEFAULT_SEED
from wavtune.data.audio import AudioError, audio_info
from wavtune.data.manifest import Utterance
from wavtune.errors import WavtuneError

T = TypeVar("T")

SINGLE_SPLIT = "all"  # the split of a corpus that has none of its own
MAX_LISTED = 5  # problem files named in one error message; the rest are counted


class CorpusError(WavtuneError, ValueError):
    """A corpus tree is not what its importer expects; the message names the path and the layout."""


@dataclass(frozen=True)
class PrepareOptions:
    """How a corpus is imported. Fields that a corpus does not use are ignored by its importer."""

    # Import only these splits, e.g. ("train", "dev"); () = the corpus's default.
    splits: tuple[str, ...] = ()
    # Name of the one manifest of a corpus without splits (default "all").
    split_name: str | None = None
    # Re-split speaker-disjointly into these fractions, e.g. {"train": 0.9, "dev": 0.1}.
    speaker_split: Mapping[str, float] | None = None
    seed: int = DEFAULT_SEED  # for speaker_split
    skip_missing: bool = False  # rows whose audio is missing: skip and report, instead of failing
    include_sa: bool = False  # timit: keep the dialect sentences SA1/SA2 (excluded as is standard)
    # hf: the transcript column (default: the first of text, sentence, transcription, ...).
    text_column: str | None = None
    audio_column: str = "audio"  # hf: the audio column
    progress: bool | None = None  # tqdm bars; None = only when stderr is a terminal


@dataclass(frozen=True)
class ImportedCorpus:
    """What an importer returns: utterances per split, and notes on what it skipped."""

    splits: Mapping[str, Sequence[Utterance]]
    warnings: tuple[str, ...] = ()


class Importer(Protocol):
    def __call__(self, src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus: ...


def layout_error(corpus: str, path: Path, problem: str, layout: str) -> CorpusError:
    """A CorpusError that names ``path``, what is wrong, and the layout the importer expects."""
    return CorpusError(
        f"{path}: {problem}.\nThe '{corpus}' importer expects this layout:\n{layout.rstrip()}"
    )


def find_child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` called ``name``, compared case-insensitively; None when absent."""
    exact = folder / name
    if exact.exists():
        return exact
    if not folder.is_dir():
        return None
    wanted = name.lower()
    for child in sorted(folder.iterdir()):
        if child.name.lower() == wanted:
            return child
    return None


def select_splits(
    available: Sequence[str],
    options: PrepareOptions,
    where: Path,
    default: Sequence[str] | None = None,
) -> list[str]:
    """The splits to import: ``options.splits`` (each must exist), else ``default``, else all."""
    if options.splits:
        unknown = [s for s in options.splits if s not in available]
        if unknown:
            raise CorpusError(
                f"{where}: split(s) {', '.join(unknown)} not found; this corpus has "
                f"{', '.join(available) or 'no splits'}"
            )
        return list(options.splits)
    if default is not None:
        return [s for s in default if s in available]
    return list(available)


def describe_paths(paths: Sequence[Path], what: str) -> str:
    """'3 {what}: a, b, c' with at most MAX_LISTED paths named and the rest counted."""
    listed = ", ".join(str(p) for p in paths[:MAX_LISTED])
    more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return f"{len(paths)} {what}: {listed}{more}"


def check_missing(
    utterances: Sequence[Utterance], options: PrepareOptions, where: Path
) -> tuple[list[Utterance], list[str]]:
    """Drop rows whose audio file is absent when ``options.skip_missing``, else raise
    CorpusError."""
    present = [u for u in utterances if u.audio.is_file()]
    if len(present) == len(utterances):
        return present, []
    missing = [u.audio for u in utterances if not u.audio.is_file()]
    message = describe_paths(missing, "audio files listed in the corpus are missing")
    if not options.skip_missing:
        raise CorpusError(
            f"{where}: {message}. Download or extract the complete corpus, or pass skip_missing "
            f"(CLI: --skip-missing) to import the rest"
        )
    return present, [f"{where}: skipped rows: {message}"]


def header_duration(path: Path) -> float:
    """Duration in seconds from the audio header; CorpusError naming the file when unreadable."""
    try:
        return audio_info(path).duration_s
    except AudioError as e:
        raise CorpusError(
            f"{e}; remove or replace the file, or fix its entry in the corpus"
        ) from None


def progress(
    items: Iterable[T], options: PrepareOptions, desc: str, total: int | None = None
) -> Iterator[T]:
    """``items`` wrapped in a tqdm bar on stderr (shown only on a terminal unless options say)."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if options.progress is None else options.progress
    yield from tqdm(items, desc=desc, total=total, disable=not show, unit="file", leave=False)
