"""Utterance label sets for classification heads: built from the training split only.

A head is named by its manifest column (``speaker``, ``digit``, ``language``, ...). Its classes
are the values that column takes in the training rows, integer-looking labels first in numeric
order (``0, 1, ..., 10``), then the rest sorted. Rows without a value are kept and masked out of
that head's loss and scores (their target is :data:`NO_LABEL`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from wavtune.data.manifest import ManifestError, Utterance

NO_LABEL = -100  # the target of a row without a label: ignored by the loss (= collate.IGNORE_INDEX)
_SHOWN = 12  # labels named in an error message


class LabelError(ManifestError):
    """A label column is missing, degenerate, or holds a value the training split never had."""


def _order(label: str) -> tuple[int, int, str]:
    try:
        number = int(label)
    except ValueError:
        return (1, 0, label)
    return (0, number, "") if str(number) == label else (1, 0, label)


def _shown(labels: Sequence[str]) -> str:
    more = f", ... ({len(labels)} in all)" if len(labels) > _SHOWN else ""
    return ", ".join(map(repr, labels[:_SHOWN])) + more


@dataclass(frozen=True)
class LabelSet:
    """The classes of one head and how often each occurs in the training split."""

    column: str
    labels: tuple[str, ...]
    counts: tuple[int, ...]  # training rows per label, same order
    unlabelled: int = 0  # training rows without a value in ``column``

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def encode(self, value: str | None, where: str = "") -> int:
        """The class id of ``value``; :data:`NO_LABEL` when the row has none.

        ``where`` names the row for the error message (e.g. ``"eval row 7 (id 'x')"``).
        """
        if value is None or value == "":
            return NO_LABEL
        try:
            return self.labels.index(value)
        except ValueError:
            raise LabelError(
                f"{where or 'a row'}: {self.column} label {value!r} never occurs in the training "
                f"split, whose {len(self.labels)} labels are {_shown(self.labels)}. Relabel or "
                f"drop the row, or add training rows with that label."
            ) from None

    def balanced_weights(self) -> tuple[float, ...]:
        """Class weights ``n / (k * count)`` (inverse frequency, mean 1 over training rows)."""
        total, k = sum(self.counts), len(self.counts)
        return tuple(total / (k * c) for c in self.counts)


def build_label_set(train: Sequence[Utterance], column: str) -> LabelSet:
    """The label set of ``column`` over the training rows; at least two classes are required."""
    counts = Counter(u.label(column) for u in train)
    unlabelled = counts.pop(None, 0) + counts.pop("", 0)
    if not counts:
        raise LabelError(
            f"data.label_columns: no training row has a {column!r} value; check the column name "
            f"(manifest columns other than id, audio, offset, duration and text are labels)"
        )
    labels = tuple(sorted((str(k) for k in counts), key=_order))
    if len(labels) < 2:
        raise LabelError(
            f"data.label_columns: column {column!r} has a single label ({labels[0]!r}) in the "
            f"training split; a classifier needs at least two"
        )
    return LabelSet(column, labels, tuple(counts[label] for label in labels), unlabelled)


def check_labels(utts: Sequence[Utterance], label_sets: Sequence[LabelSet], split: str) -> None:
    """Raise :class:`LabelError` for the first row of ``split`` whose label the training split
    lacks."""
    for i, utt in enumerate(utts):
        for label_set in label_sets:
            label_set.encode(
                utt.label(label_set.column), f"{split} set row {i + 1} (id {utt.id!r})"
            )


def label_counts(utts: Sequence[Utterance], column: str) -> dict[str, int]:
    """Rows per label of ``column`` (rows without one under ``""``), for summaries."""
    counts = Counter(u.label(column) or "" for u in utts)
    return {k: counts[k] for k in sorted(counts, key=_order)}
