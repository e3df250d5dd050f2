"""Duration-bucketed batch sampling (wavtune.data.sampling)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavtune.data.sampling import DurationBatchSampler


def _spread(n: int = 200, seed: int = 0) -> list[float]:
    """Durations from 0.5 s to 20 s: a wide spread, as in real corpora."""
    return np.random.default_rng(seed).uniform(0.5, 20.0, n).round(3).tolist()


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 8}, {"batch_size": 7, "shuffle": False}, {"max_batch_seconds": 60.0},
    {"max_batch_seconds": 45.0, "pool_batches": 2}, {"batch_size": 3, "pool_batches": 1},
])
def test_every_item_exactly_once_per_epoch(kwargs: dict) -> None:
    sampler = DurationBatchSampler(_spread(101), seed=3, **kwargs)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(_flat(batches)) == list(range(101))
        assert len(batches) == len(sampler)
        assert all(batches)


def test_batch_size_mode_has_full_batches_but_one() -> None:
    sizes = Counter(len(b) for b in DurationBatchSampler(_spread(101), batch_size=8, seed=0))
    assert sizes[8] == 12 and sum(sizes.values()) == 13  # 101 = 12 x 8 + 5


def test_no_batch_over_the_seconds_budget() -> None:
    durations = _spread(300)
    sampler = DurationBatchSampler(durations, max_batch_seconds=60.0, seed=1)
    for batch in sampler:
        longest = max(durations[i] for i in batch)
        assert longest * len(batch) <= 60.0  # padded cost: longest clip x batch size


def test_a_clip_over_the_budget_forms_a_batch_alone() -> None:
    durations = [1.0] * 20 + [30.0, 45.0]
    batches = list(DurationBatchSampler(durations, max_batch_seconds=10.0, seed=0))
    assert [20] in batches and [21] in batches
    for batch in batches:
        if len(batch) > 1:
            assert max(durations[i] for i in batch) * len(batch) <= 10.0
    assert sorted(_flat(batches)) == list(range(22))


def test_deterministic_by_seed_and_epoch() -> None:
    durations = _spread()
    a = DurationBatchSampler(durations, batch_size=8, seed=5)
    b = DurationBatchSampler(durations, batch_size=8, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating twice gives the same epoch
    c = DurationBatchSampler(durations, batch_size=8, seed=6)
    c.set_epoch(2)
    assert list(c) != list(a)


def test_different_epochs_give_different_batches() -> None:
    sampler = DurationBatchSampler(_spread(), max_batch_seconds=60.0, seed=5)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
    # with pools smaller than the dataset, batch membership changes too, not only the order
    sampler = DurationBatchSampler(_spread(), max_batch_seconds=60.0, seed=5, pool_batches=2)
    members = set()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        members.add(frozenset(tuple(sorted(b)) for b in sampler))
    assert len(members) == 3


def test_no_shuffle_is_the_same_every_epoch() -> None:
    sampler = DurationBatchSampler(_spread(50), batch_size=4, shuffle=False)
    first = list(sampler)
    sampler.set_epoch(7)
    assert list(sampler) == first


@pytest.mark.parametrize("kwargs", [{"batch_size": 8}, {"max_batch_seconds": 50.0}])
def test_start_batch_yields_the_tail_of_the_same_epoch(kwargs: dict) -> None:
    sampler = DurationBatchSampler(_spread(), seed=2, **kwargs)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start_batch=5)
    rest = list(sampler)
    assert rest == full[5:]
    assert len(sampler) == len(full) - 5
    sampler.set_epoch(4, start_batch=len(full) + 3)
    assert list(sampler) == [] and len(sampler) == 0
    sampler.set_epoch(5)  # a new epoch starts from its first batch again
    assert len(list(sampler)) == len(sampler) > len(full) - 5


@pytest.mark.parametrize("kwargs", [{"batch_size": 8}, {"max_batch_seconds": 50.0}])
@pytest.mark.parametrize("n", [7, 99, 100, 201])
def test_two_ranks_get_equal_counts_and_cover_everything(kwargs: dict, n: int) -> None:
    durations = _spread(n)
    ranks = [
        DurationBatchSampler(durations, seed=9, num_replicas=2, rank=r, **kwargs) for r in (0, 1)
    ]
    for sampler in ranks:
        sampler.set_epoch(1)
    got = [list(s) for s in ranks]
    assert len(got[0]) == len(got[1]) == len(ranks[0]) == len(ranks[1])
    assert set(_flat(got[0])) | set(_flat(got[1])) == set(range(n))
    # an odd batch count is evened out by splitting a batch, not by repeating one: disjoint
    assert not set(_flat(got[0])) & set(_flat(got[1]))
    assert len(_flat(got[0])) + len(_flat(got[1])) == n


def test_ranks_at_one_step_carry_batches_of_similar_cost() -> None:
    durations = np.array(_spread(400, seed=2))
    ranks = [DurationBatchSampler(durations.tolist(), max_batch_seconds=40.0, seed=1,
                                  num_replicas=2, rank=r) for r in (0, 1)]
    cost = [[durations[b].max() * len(b) for b in s] for s in ranks]  # padded seconds per step
    spread = np.mean([abs(a - b) / max(a, b) for a, b in zip(*cost)])
    # pairing random batches of a 0.5-20 s corpus would differ by ~25%; neighbours in cost order
    # differ by a few percent, so the faster rank hardly waits at the all-reduce
    assert spread < 0.08
    mixed = np.mean([abs(a - b) / max(a, b) for a, b in zip(cost[0], cost[0][1:])])
    assert mixed > 2 * spread  # consecutive steps of one rank are still in shuffled order


def test_max_batch_size_caps_a_seconds_batch() -> None:
    durations = [0.5] * 100
    sampler = DurationBatchSampler(durations, max_batch_seconds=20.0, max_batch_size=8, seed=0)
    sizes = [len(b) for b in sampler]
    assert max(sizes) == 8 and sum(sizes) == 100
    uncapped = DurationBatchSampler(durations, max_batch_seconds=20.0, seed=0)
    assert max(len(b) for b in uncapped) == 40


def test_a_rank_outside_the_replicas_is_refused() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        DurationBatchSampler([1.0], num_replicas=2, rank=2)


@pytest.mark.parametrize("replicas", [3, 4, 8])
def test_more_ranks_than_batches_still_gives_every_rank_a_batch(replicas: int) -> None:
    # 2 batches of 4 clips; every rank must take part in each step (else distributed training hangs)
    samplers = [DurationBatchSampler([1.0] * 8, batch_size=4, num_replicas=replicas, rank=r)
                for r in range(replicas)]
    counts = [len(list(s)) for s in samplers]
    assert counts == [1] * replicas
    assert set(_flat([b for s in samplers for b in s])) == set(range(8))


def test_padding_ratio_lower_than_shuffled_fixed_batches() -> None:
    durations = np.array(_spread(400, seed=4))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(durations))
    fixed = [order[i : i + 8] for i in range(0, len(order), 8)]
    baseline = 1 - durations.sum() / sum(durations[b].max() * len(b) for b in fixed)
    by_count = DurationBatchSampler(durations.tolist(), batch_size=8, seed=0).padding_ratio()
    by_seconds = DurationBatchSampler(
        durations.tolist(), max_batch_seconds=120.0, seed=0
    ).padding_ratio()
    assert baseline > 0.3
    assert by_count < baseline / 3
    assert by_seconds < baseline / 3
    assert 0.0 <= by_count and 0.0 <= by_seconds


def test_padding_ratio_is_zero_for_equal_durations() -> None:
    assert DurationBatchSampler([2.0] * 10, batch_size=3).padding_ratio() == 0.0


@pytest.mark.parametrize("kwargs", [{"batch_size": 4}, {"max_batch_seconds": 10.0}])
def test_empty_dataset_gives_no_batches(kwargs: dict) -> None:
    sampler = DurationBatchSampler([], **kwargs)
    assert list(sampler) == [] and len(sampler) == 0
    assert sampler.padding_ratio() == 0.0


def test_needs_a_batch_size_or_a_seconds_budget() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        DurationBatchSampler([1.0], batch_size=0, max_batch_seconds=0.0)


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.floats(0.1, 30.0), min_size=1, max_size=60),
    budget=st.floats(5.0, 80.0),
    replicas=st.integers(1, 3),
    epoch=st.integers(0, 5),
)
def test_budget_and_coverage_hold_for_random_durations(
    durations: list[float], budget: float, replicas: int, epoch: int
) -> None:
    samplers = [DurationBatchSampler(durations, max_batch_seconds=budget, seed=epoch,
                                     num_replicas=replicas, rank=r) for r in range(replicas)]
    seen: list[int] = []
    counts = set()
    for s in samplers:
        s.set_epoch(epoch)
        batches = list(s)
        counts.add(len(batches))
        for b in batches:
            assert len(b) == 1 or max(durations[i] for i in b) * len(b) <= budget
        seen.extend(_flat(batches))
    assert len(counts) == 1
    assert set(seen) == set(range(len(durations)))
    # batches are split to even out the count; only when every batch is one clip and their
    # count is still uneven is a clip repeated, at most ranks - 1 of them
    assert len(seen) - len(durations) <= replicas - 1


@settings(max_examples=40, deadline=None)
@given(
    durations=st.lists(st.floats(0.1, 30.0), min_size=1, max_size=80),
    budget=st.floats(5.0, 80.0),
    replicas=st.integers(1, 4),
    start=st.integers(0, 10),
)
def test_resume_mid_epoch_yields_the_remainder_on_every_rank(
    durations: list[float], budget: float, replicas: int, start: int
) -> None:
    for rank in range(replicas):
        sampler = DurationBatchSampler(durations, max_batch_seconds=budget, seed=3,
                                       num_replicas=replicas, rank=rank)
        sampler.set_epoch(2)
        full = list(sampler)
        resumed = DurationBatchSampler(durations, max_batch_seconds=budget, seed=3,
                                       num_replicas=replicas, rank=rank)
        resumed.set_epoch(2, start_batch=start)  # a fresh process, as after a restart
        assert list(resumed) == full[start:]


def test_batches_are_planned_once_per_epoch() -> None:
    from wavtune.data.sampling import DurationBatchSampler

    sampler = DurationBatchSampler([0.5, 1.0, 2.0, 0.7] * 50, batch_size=4, seed=1)
    first = sampler.all_batches()
    assert sampler.all_batches() is first  # len() at every training step must not re-plan
    sampler.set_epoch(1)
    assert sampler.all_batches() != first  # a new epoch is planned anew
    sampler.set_epoch(0)
    assert sampler.all_batches() == first  # same epoch, same plan
