"""Clips that fail to decode mid-run: skipped and recorded (``data.on_error=skip``) or fatal.

The data checks decode every row before training, so this only catches what changed or broke
since (a file truncated or replaced on a network disk, a codec error in a part the check did not
read). A skipped clip travels to the training loop as ``Batch.dropped`` (id, reason), so it is
counted and logged in the main process even when DataLoader workers did the decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch.utils.data import Dataset

from wavtune.data.audio import AudioError
from wavtune.data.collate import Batch, Collator
from wavtune.data.dataset import Example, SpeechDataset


@dataclass(frozen=True)
class Failed:
    """An item that could not be decoded: its utterance id and why."""

    id: str
    reason: str


class SkippingDataset(Dataset[Example | Failed]):
    """``dataset[i]``, or a :class:`Failed` for a clip whose audio cannot be decoded (``skip``);
    with ``on_error='fail'`` an AudioError naming the row and the fix."""

    def __init__(self, dataset: SpeechDataset, on_error: Literal["fail", "skip"],
                 split: str = "training") -> None:
        self.dataset, self.on_error, self.split = dataset, on_error, split

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Example | Failed:
        try:
            return self.dataset[index]
        except AudioError as e:
            utt_id = self.dataset.utterances[index].id
            if self.on_error == "skip":
                return Failed(utt_id, str(e))
            raise AudioError(
                f"{self.split} row {index + 1} (id {utt_id!r}) failed to decode mid-run: {e}. The "
                "file "
                f"changed or broke after the data checks; fix or remove it and resume with "
                f"--resume, or set data.on_error=skip to skip such clips"
            ) from None


@dataclass(frozen=True)
class SkippingCollator:
    """Collates the decoded examples and records the failed ones in ``Batch.dropped``."""

    collator: Collator = field(default_factory=Collator)

    def __call__(self, items: Sequence[Example | Failed]) -> Batch:
        good = [x for x in items if isinstance(x, Example)]
        dropped = tuple((x.id, x.reason) for x in items if isinstance(x, Failed))
        if not good:  # nothing to train on in this batch; the loop skips it
            empty = torch.zeros(0, 0)
            return Batch((), empty, empty.long(), None, None, dropped)
        return replace(self.collator(good), dropped=dropped)
