"""Compute threads for a training run: one torch intra-op thread per core that is actually free.

torch sizes its thread pool from the machine's cores, which oversubscribes in the cases a speech
engineer meets daily: a container or job limited by a CPU quota (cgroup ``cpu.max``) or an
affinity mask (taskset, Slurm), other jobs already busy on the cores, ``OMP_NUM_THREADS`` set
for a bigger machine, and DataLoader workers next to the compute threads. Oversubscribed threads
ran 1.4-5x slower than one thread per free core on 2 CPU cores (issue 20). threadpoolctl limits
pools but measures nothing, so the sizing is written here: the cores this process may use, less
those other processes kept busy over a short sample of ``/proc/stat``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("wavtune")

SAMPLE_S = 0.1  # how long the busy cores are sampled: long enough to see a running job


@dataclass(frozen=True)
class ThreadPlan:
    """How many compute threads a run gets, and why.

    ``usable``: cores this process may run on (affinity mask, cgroup quota); ``busy``: cores kept
    busy by other work while sampled (0 where that cannot be read); ``threads``: torch intra-op
    threads; ``workers``: DataLoader processes; ``source``: what set ``threads``.
    """

    usable: int
    busy: float
    threads: int
    workers: int
    source: str  # "auto", "train.num_threads" or "OMP_NUM_THREADS"

    @property
    def free(self) -> int:
        """Cores not busy with other work (at least 1)."""
        return max(1, self.usable - math.floor(self.busy + 0.5))

    def warnings(self) -> list[str]:
        """What oversubscribes the cores, each with the setting that fixes it."""
        found = []
        if self.threads > self.free:
            busy = f", {self.busy:.1f} busy with other work" if self.busy >= 0.5 else ""
            found.append(
                f"{self.source}={self.threads} compute threads on {self.usable} usable cores"
                f"{busy}: oversubscribed threads run several times slower; set "
                f"train.num_threads: 0 (one per free core) or at most {self.free}")
        if self.workers and self.threads + self.workers > self.usable:
            found.append(
                f"data.num_workers={self.workers} loader processes beside {self.threads} compute "
                f"threads on {self.usable} cores: they compete for the cores; with the audio "
                "cache (data.audio_cache: true) loading is cheap, so data.num_workers: 0 is "
                "usually faster on a small CPU")
        return found


def usable_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    quota = cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by a cgroup quota (v2 ``cpu.max``, v1 ``cfs_quota_us``); None: no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _cpu_times(stat: Path) -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per ``cpuN`` line of /proc/stat."""
    times = {}
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(f) for f in fields[:8]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            times[name] = (sum(ticks) - idle, sum(ticks))
    return times


def busy_cores(interval_s: float = SAMPLE_S, stat: Path = Path("/proc/stat")) -> float:
    """Cores of this process's affinity mask kept busy over ``interval_s`` seconds, this process
    excluded (it sleeps meanwhile); 0.0 where /proc/stat cannot be read (not Linux)."""
    try:
        mask = os.sched_getaffinity(0)
        before = _cpu_times(stat)
        time.sleep(interval_s)
        after = _cpu_times(stat)
    except (OSError, AttributeError, ValueError, IndexError):
        return 0.0
    busy = 0.0
    for name, (b1, t1) in after.items():
        if int(name[3:]) in mask and name in before and t1 > before[name][1]:
            b0, t0 = before[name]
            busy += (b1 - b0) / (t1 - t0)
    return round(busy, 2)


def plan_threads(requested: int, workers: int, env: Mapping[str, str] | None = None,
                 busy: float | None = None) -> ThreadPlan:
    """The plan for ``train.num_threads`` = ``requested`` (0: one per free core) beside
    ``workers`` DataLoader processes, shared with the job's other processes on this machine
    (``LOCAL_WORLD_SIZE``); ``OMP_NUM_THREADS``, when set, is kept as the user's choice
    (torchrun sets it to 1 for each process) unless ``requested`` overrides it."""
    env = os.environ if env is None else env
    usable = usable_cores()
    busy = busy_cores() if busy is None else busy
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if requested > 0:
        return ThreadPlan(usable, busy, requested, workers, "train.num_threads")
    if omp.isdigit() and int(omp) > 0:
        return ThreadPlan(usable, busy, int(omp), workers, "OMP_NUM_THREADS")
    # processes of one job on this machine (torchrun, accelerate launch) share its free cores;
    # they start together, so none of them sees the others busy yet
    local = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1))
    plan = ThreadPlan(usable, busy, 1, workers, "auto")
    return ThreadPlan(usable, busy, max(1, plan.free // local), workers, "auto")


def apply_threads(plan: ThreadPlan) -> None:
    """Size torch's intra-op pool by ``plan`` and warn about what still oversubscribes."""
    if torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    log.info("compute threads: %d (%s; %d usable cores, %.1f busy with other work)",
             plan.threads, plan.source, plan.usable, plan.busy)
    for warning in plan.warnings():
        log.warning("%s", warning)
