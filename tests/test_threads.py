"""Compute threads sized to the free cores: quota, affinity, busy cores, OMP threads, workers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch

from wavtune.config import load_config
from wavtune.errors import WavtuneError
from wavtune.train import threads
from wavtune.train.threads import ThreadPlan, busy_cores, cgroup_quota, plan_threads


def test_cgroup_v2_and_v1_quotas_are_read(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(v1) is None
    assert cgroup_quota(tmp_path / "absent") is None


def test_a_quota_below_the_affinity_mask_caps_the_usable_cores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 2.5)
    assert threads.usable_cores() == 3  # 2.5 CPUs of quota: 3 threads share it, 16 would thrash
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    assert threads.usable_cores() == 16


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc/stat")
def test_a_core_kept_busy_by_another_process_is_seen(tmp_path: Path) -> None:
    mask = os.sched_getaffinity(0)
    worker = multiprocessing.get_context("spawn").Process(target=_spin, args=(3.0,))
    worker.start()
    try:
        time.sleep(0.5)  # the child is spinning by now
        seen = busy_cores(interval_s=0.5)
    finally:
        worker.join()
    assert 0.6 <= seen <= len(mask)
    stat = tmp_path / "stat"
    stat.write_text("garbage\n")
    assert busy_cores(0.0, stat) == 0.0  # unreadable: nothing is assumed busy


def test_auto_takes_the_free_cores_and_keeps_omp_num_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    auto = plan_threads(0, 0, env={}, busy=1.2)
    assert (auto.threads, auto.source, auto.warnings()) == (3, "auto", [])
    assert plan_threads(0, 0, env={}, busy=3.9).threads == 1  # never 0
    omp = plan_threads(0, 0, env={"OMP_NUM_THREADS": "1"}, busy=0.0)
    assert (omp.threads, omp.source) == (1, "OMP_NUM_THREADS")
    assert plan_threads(2, 0, env={"OMP_NUM_THREADS": "1"}, busy=0.0).threads == 2
    # two processes of one job on these 4 cores: 2 threads each, not 4
    assert plan_threads(0, 0, env={"LOCAL_WORLD_SIZE": "2"}, busy=0.0).threads == 2


def test_oversubscription_warns_with_the_setting_to_change() -> None:
    too_many = ThreadPlan(usable=2, busy=1.0, threads=2, workers=0, source="OMP_NUM_THREADS")
    (warning,) = too_many.warnings()
    assert "OMP_NUM_THREADS=2" in warning and "at most 1" in warning
    assert "train.num_threads" in warning
    crowded = ThreadPlan(usable=2, busy=0.0, threads=2, workers=2, source="auto")
    (warning,) = crowded.warnings()
    assert "data.num_workers=2" in warning and "data.num_workers: 0" in warning


def test_apply_sets_torch_threads_and_logs_warnings(caplog: pytest.LogCaptureFixture) -> None:
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="wavtune"):
            threads.apply_threads(ThreadPlan(1, 0.0, 1, 3, "train.num_threads"))
        assert torch.get_num_threads() == 1
        assert any("data.num_workers=3" in r.message for r in caplog.records
                   if r.levelno == logging.WARNING)
    finally:
        torch.set_num_threads(before)


def test_negative_num_threads_is_refused_naming_the_key() -> None:
    with pytest.raises(WavtuneError, match="train.num_threads"):
        load_config(None, ["model.preset=tiny", "train.num_threads=-1"])


def test_the_training_engine_applies_the_plan(tmp_path: Path) -> None:
    from wavtune.train.engine import make_accelerator

    config = load_config(None, ["model.preset=tiny", "train.num_threads=1",
                                f"train.output_dir={tmp_path}",
                                "train.device=cpu"])
    before = torch.get_num_threads()
    try:
        make_accelerator(config, False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
