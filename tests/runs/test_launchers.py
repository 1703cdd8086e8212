"""A job's torch threads: one core left to the rest of the machine, fewer where other processes are busy, the
cores shared by jobs that run at once, the user's OMP_NUM_THREADS left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from gemmalab.runs.launchers import busy_elsewhere, share_cores, share_cores_among_ranks
from gemmalab.runs.sweep_dir import SweepDir

BASIC = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
JOBLIB = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                           "n_jobs": 2})  # fmt: skip


@pytest.fixture(autouse=True)
def threads_restored(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def burners():
    """Start n processes that each keep a core busy; the machine's load is real."""
    started = []

    def start(n: int) -> None:
        started.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n))
        time.sleep(0.5)  # running, not starting

    yield start
    for process in started:
        process.kill()
        process.wait()


def sweep(tmp_path, jobs: int) -> SweepDir:
    planned = SweepDir(tmp_path, "g")
    planned.plan(jobs, None)
    return planned


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not os.path.exists("/proc/stat"), reason="needs 2 cores, Linux")
def test_a_job_alone_leaves_the_cores_other_processes_keep_busy(tmp_path, burners):
    burners(2)
    assert busy_elsewhere() >= 1.5  # two spinning processes, measured over 0.1 s (more: another test's work)
    share_cores(BASIC, sweep(tmp_path, jobs=1))
    assert torch.get_num_threads() <= max(1, os.cpu_count() - 2)


def test_a_job_alone_on_an_idle_machine_leaves_one_core(tmp_path, monkeypatch):
    monkeypatch.setattr("gemmalab.runs.launchers.busy_elsewhere", lambda: 0.0)  # an idle machine, whatever runs
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    share_cores(BASIC, sweep(tmp_path, jobs=3))
    assert torch.get_num_threads() == 7


def test_jobs_at_once_share_the_cores_but_one(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    share_cores(JOBLIB, sweep(tmp_path, jobs=4))  # 2 at once
    assert torch.get_num_threads() == 3
    share_cores_among_ranks(devices=2)
    assert torch.get_num_threads() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    share_cores(JOBLIB, sweep(tmp_path, jobs=4))
    assert torch.get_num_threads() == 1  # never fewer than one


def test_the_users_omp_num_threads_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    torch.set_num_threads(2)
    share_cores(JOBLIB, sweep(tmp_path, jobs=4))
    share_cores_among_ranks(devices=4)
    assert torch.get_num_threads() == 2
