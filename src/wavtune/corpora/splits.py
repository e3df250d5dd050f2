"""Seeded, speaker-disjoint splits for corpora that come without a split of their own."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from wavtune.constants import DEFAULT_SEED
from wavtune.data.manifest import Utterance

DEFAULT_SPLIT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions:
        raise ValueError("speaker_split: no split fractions given; e.g. {'train': 0.9, 'dev': 0.1}")
    for name, share in fractions.items():
        if not math.isfinite(share) or share <= 0:
            raise ValueError(
                f"speaker_split: fraction of split '{name}' is {share}; it must be > 0"
            )
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"speaker_split: fractions {dict(fractions)} add up to {total:g}; they must add up to 1"
        )


def speaker_split(
    utts: Sequence[Utterance],
    fractions: Mapping[str, float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = DEFAULT_SEED,
) -> dict[str, list[Utterance]]:
    """Split ``utts`` so that no speaker is in two splits, with utterance counts near ``fractions``.

    Speakers are shuffled with ``seed``; each split first gets one speaker (when there are enough),
    then each next speaker goes to the split furthest below its target count. Utterances without a
    speaker count as a speaker of their own. The same input and seed always give the same split.
    Utterances keep their input order within a split.

    >>> from pathlib import Path
    >>> utts = [Utterance(f"u{i}", Path(f"/u{i}.wav"), speaker=f"s{i % 4}") for i in range(8)]
    >>> parts = speaker_split(utts, {"train": 0.5, "test": 0.5}, seed=1)
    >>> sorted(len(v) for v in parts.values())
    [4, 4]
    """
    _check_fractions(fractions)
    groups: dict[str, list[int]] = {}
    for index, utt in enumerate(utts):
        key = f"speaker:{utt.speaker}" if utt.speaker is not None else f"utterance:{utt.id}"
        groups.setdefault(key, []).append(index)
    order = sorted(groups)
    random.Random(seed).shuffle(order)

    names = list(fractions)
    target = {name: fractions[name] * len(utts) for name in names}
    assigned: dict[str, list[int]] = {name: [] for name in names}
    # Smallest splits get their first speaker first, so a 10% test set is never left empty.
    seeding = sorted(names, key=lambda n: fractions[n]) if len(order) >= len(names) else []
    for name, key in zip(seeding, order):
        assigned[name].extend(groups[key])
    for key in order[len(seeding) :]:
        name = max(names, key=lambda n: (target[n] - len(assigned[n]), fractions[n]))
        assigned[name].extend(groups[key])
    return {name: [utts[i] for i in sorted(assigned[name])] for name in names}


def labelled_subset(utts: Sequence[Utterance], fraction: float, seed: int = DEFAULT_SEED
                    ) -> list[Utterance]:
    """A seeded ``fraction`` of ``utts`` (at least one row), stratified by speaker: each speaker
    keeps about ``fraction`` of its rows (largest remainders round the total to
    ``round(fraction * len(utts))``). Rows keep their input order; the same seed, the same rows.

    >>> from pathlib import Path
    >>> utts = [Utterance(f"u{i}", Path(f"/u{i}.wav"), speaker=f"s{i % 2}") for i in range(20)]
    >>> [u.speaker for u in labelled_subset(utts, 0.2, seed=3)].count("s0")
    2
    """
    if fraction >= 1.0:
        return list(utts)
    groups: dict[str, list[int]] = {}
    for index, utt in enumerate(utts):
        groups.setdefault(utt.speaker if utt.speaker is not None else "", []).append(index)
    total = max(1, round(fraction * len(utts)))
    shares = {key: fraction * len(rows) for key, rows in groups.items()}
    counts = {key: math.floor(share) for key, share in shares.items()}
    by_remainder = sorted(groups, key=lambda k: (counts[k] - shares[k], k))
    for key in by_remainder[: max(0, total - sum(counts.values()))]:
        counts[key] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for key in sorted(groups):
        chosen.extend(rng.sample(groups[key], counts[key]))
    return [utts[i] for i in sorted(chosen)]
