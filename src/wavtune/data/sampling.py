"""Batch samplers that decide batch membership from durations alone (the dataset only loads).

Similar-length utterances are batched together so little compute goes to padding; batch order is
shuffled so training still sees lengths in random order. Deterministic by seed and epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class DurationBatchSampler(Sampler[list[int]]):
    """Length-grouped batches of ``batch_size`` items, or of at most ``max_batch_seconds`` audio.

    Indices are shuffled, cut into pools of ``pool_batches`` batches, each pool sorted by duration
    and cut into batches; the batch order is then shuffled. A clip longer than the seconds budget
    forms a batch alone; ``max_batch_size`` (> 0) also caps a seconds batch's clip count.
    ``start_batch`` skips batches already done (mid-epoch resume).

    With ``num_replicas`` > 1 the epoch is planned once for all ranks: the batch count is made a
    multiple of the ranks by splitting the largest batches in two (no clip is seen twice; only
    with fewer clips than ranks are batches repeated), batches are sorted by padded cost and
    dealt in groups of ``num_replicas`` neighbours, and the groups are shuffled. Rank r takes the
    r-th batch of each group, so the ranks at one step carry batches of similar cost and no rank
    waits long at the gradient all-reduce (or on an empty batch).
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int = 8,
        max_batch_seconds: float = 0.0,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
        max_batch_size: int = 0,
    ) -> None:
        if batch_size < 1 and max_batch_seconds <= 0:
            raise ValueError("set batch_size >= 1 or max_batch_seconds > 0")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not within 0..{num_replicas - 1} (num_replicas)")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.num_replicas = num_replicas
        self.rank = rank
        self.max_batch_size = max_batch_size  # seconds mode: at most this many clips (0: no cap)
        self.epoch = 0
        self.start_batch = 0
        self._cache: tuple[int, list[list[int]]] | None = None  # (epoch, its batches)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        if self.max_batch_seconds <= 0:
            return [order[i : i + self.batch_size].tolist()
                    for i in range(0, len(order), self.batch_size)]
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0.0
        for idx in order.tolist():
            d = float(self.durations[idx])
            # padded cost of a batch = its longest clip x its size
            full = 0 < self.max_batch_size <= len(current)
            if current and (full or max(longest, d) * (len(current) + 1) > self.max_batch_seconds):
                batches.append(current)
                current, longest = [], 0.0
            current.append(idx)
            longest = max(longest, d)
        if current:
            batches.append(current)
        return batches

    def all_batches(self) -> list[list[int]]:
        """Every batch of this epoch, for all ranks, in order (computed once per epoch: the
        training loop asks for the length at every step)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        batches = self._plan()
        self._cache = (self.epoch, batches)
        return batches

    def _plan(self) -> list[list[int]]:
        n = len(self.durations)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        per_pool = (
            self.batch_size
            if self.max_batch_seconds <= 0
            else max(1, int(self.max_batch_seconds / max(float(np.median(self.durations)), 1e-3)))
            if n
            else 1
        )
        pool = max(1, per_pool * self.pool_batches)
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(-self.durations[chunk], kind="stable")]
            batches.extend(self._cut(chunk))
        if self.num_replicas > 1 and batches:
            return self._deal(self._pad(batches), rng)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _pad(self, batches: list[list[int]]) -> list[list[int]]:
        """Make the batch count a multiple of the ranks: split the largest batches in two, and
        only when nothing is left to split (fewer clips than ranks) repeat batches."""
        batches = list(batches)
        while len(batches) % self.num_replicas:
            i = max(range(len(batches)), key=lambda j: (len(batches[j]), -j))
            if len(batches[i]) < 2:
                break
            half = len(batches[i]) // 2
            batches[i : i + 1] = [batches[i][:half], batches[i][half:]]
        total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
        # cycle: with fewer batches than ranks, one pass of repetition is not enough
        return batches + [batches[i % len(batches)] for i in range(total - len(batches))]

    def _deal(self, batches: list[list[int]], rng: np.random.Generator) -> list[list[int]]:
        """Order for ``num_replicas`` ranks: groups of similar-cost neighbours, groups shuffled."""
        cost = [float(self.durations[b].max()) * len(b) for b in batches]  # padded seconds
        ranked = [batches[i] for i in sorted(range(len(batches)), key=lambda i: (-cost[i], i))]
        r = self.num_replicas
        groups = [ranked[i : i + r] for i in range(0, len(ranked), r)]
        if self.shuffle:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        return [b for g in groups for b in g]

    def _mine(self) -> list[list[int]]:
        return self.all_batches()[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._mine()[self.start_batch :]

    def __len__(self) -> int:
        return max(0, len(self._mine()) - self.start_batch)

    def padding_ratio(self) -> float:
        """Padded share of the samples in this epoch's batches (0 = no padding)."""
        real = padded = 0.0
        for batch in self.all_batches():
            d = self.durations[batch]
            real += float(d.sum())
            padded += float(d.max()) * len(batch)
        return 1.0 - real / padded if padded else 0.0
