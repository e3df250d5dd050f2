"""The corpus registry and :func:`prepare`: run an importer and write one manifest per split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wavtune.corpora.ascend import import_ascend
from wavtune.corpora.base import CorpusError, ImportedCorpus, Importer, PrepareOptions
from wavtune.corpora.commonvoice import import_commonvoice
from wavtune.corpora.folder import import_folder
from wavtune.corpora.fsdd import import_fsdd
from wavtune.corpora.hf import import_hf
from wavtune.corpora.librispeech import import_librispeech
from wavtune.corpora.splits import speaker_split
from wavtune.corpora.timit import import_timit
from wavtune.data.manifest import Utterance, write_manifest

MANIFEST_SUFFIX = ".jsonl"

CORPORA: dict[str, Importer] = {
    "fsdd": import_fsdd,
    "folder": import_folder,
    "timit": import_timit,
    "librispeech": import_librispeech,
    "commonvoice": import_commonvoice,
    "ascend": import_ascend,
    "hf": import_hf,
}


@dataclass(frozen=True)
class SplitSummary:
    """One manifest written by :func:`prepare`."""

    name: str
    manifest: Path
    utterances: int
    hours: float
    speakers: int  # distinct speakers; 0 when the corpus names none


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare` wrote, split by split, and what it skipped."""

    corpus: str
    out: Path
    splits: tuple[SplitSummary, ...]
    speakers: int  # distinct speakers over all splits
    warnings: tuple[str, ...] = ()

    @property
    def utterances(self) -> int:
        return sum(s.utterances for s in self.splits)

    @property
    def hours(self) -> float:
        return sum(s.hours for s in self.splits)

    def describe(self) -> str:
        """A small text table of the manifests written (for the CLI)."""
        lines = [f"{'split':<16} {'utterances':>10} {'hours':>8} {'speakers':>8}  manifest"]
        for s in self.splits:
            lines.append(
                f"{s.name:<16} {s.utterances:>10} {s.hours:>8.3f} {s.speakers:>8}  {s.manifest}"
            )
        lines.append(f"{'total':<16} {self.utterances:>10} {self.hours:>8.3f} {self.speakers:>8}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _check_split_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise CorpusError(
            f"split name {name!r} cannot be a manifest file name; use letters, digits, '-' or '_'"
        )


def _arrange(imported: ImportedCorpus, options: PrepareOptions) -> dict[str, list[Utterance]]:
    """Apply ``speaker_split`` / ``split_name`` to the importer's splits."""
    splits = {name: list(utts) for name, utts in imported.splits.items()}
    if options.speaker_split is not None:
        pooled = [u for utts in splits.values() for u in utts]
        try:
            return speaker_split(pooled, options.speaker_split, options.seed)
        except ValueError as e:
            raise CorpusError(str(e)) from None
    if options.split_name is not None:
        if len(splits) != 1:
            raise CorpusError(
                f"split_name={options.split_name!r} renames the one split of a corpus without "
                f"splits, but this import has {len(splits)}: {', '.join(splits)}; use splits=... "
                f"to choose among them"
            )
        return {options.split_name: next(iter(splits.values()))}
    return splits


def _check_unique(name: str, utts: Sequence[Utterance]) -> None:
    seen: dict[str, Path] = {}
    for utt in utts:
        if utt.id in seen:
            raise CorpusError(
                f"split '{name}': id '{utt.id}' is used by both {seen[utt.id]} and {utt.audio}; "
                f"ids must be unique, rename one of the files"
            )
        seen[utt.id] = utt.audio


def _summarise(name: str, manifest: Path, utts: Sequence[Utterance]) -> SplitSummary:
    seconds = sum(u.duration_s or 0.0 for u in utts)
    speakers = {u.speaker for u in utts if u.speaker is not None}
    return SplitSummary(name, manifest, len(utts), seconds / 3600.0, len(speakers))


def prepare(
    corpus: str, src: Path, out: Path, options: PrepareOptions | None = None
) -> PrepareResult:
    """Import the ``corpus`` at ``src`` and write ``out/<split>.jsonl`` for each split.

    Raises CorpusError naming the path and the expected layout when ``src`` is not such a corpus.
    """
    options = options or PrepareOptions()
    importer = CORPORA.get(corpus)
    if importer is None:
        raise CorpusError(f"unknown corpus '{corpus}'; choose one of {', '.join(sorted(CORPORA))}")
    src = Path(src).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if not src.exists():
        raise CorpusError(f"{src}: corpus folder not found; check the path given for '{corpus}'")
    imported = importer(src, out, options)
    splits = _arrange(imported, options)
    splits = {name: utts for name, utts in splits.items() if utts}
    if not splits:
        raise CorpusError(f"{src}: no utterances found for corpus '{corpus}' with these options")

    summaries: list[SplitSummary] = []
    for name in splits:
        _check_split_name(name)
    for name, utts in splits.items():
        utts = sorted(utts, key=lambda u: u.id)
        _check_unique(name, utts)
        manifest = write_manifest(utts, out / f"{name}{MANIFEST_SUFFIX}")
        summaries.append(_summarise(name, manifest, utts))
    speakers = {u.speaker for utts in splits.values() for u in utts if u.speaker is not None}
    return PrepareResult(corpus, out, tuple(summaries), len(speakers), tuple(imported.warnings))
