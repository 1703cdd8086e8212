"""How many torch threads a job's process trains with. benchmarks/threads.py on this project's 2-core machine
(laptop model, 100 steps): alone, 2 threads trained in 8.2 s and 1 thread in 12.3 s; beside a second busy
process, 2 threads took 72 s (that process on 2 threads) and 182 s (on 1 thread), 1 thread 13-15 s. OpenMP's
threads spin while they wait for work, so a pool that takes every core collapses as soon as anything else
computes; waiting passively (OMP_WAIT_POLICY=PASSIVE: 15.3 s alone, 20.3 s busy) or spinning briefly
(GOMP_SPINCOUNT) never beat 1 thread under load. So a process leaves one core to the rest of the machine,
more when others keep more busy, and never goes below 1 thread."""

from __future__ import annotations

import os
import time

import torch
from omegaconf import DictConfig

from .sweep_dir import SweepDir


def jobs_at_once(launcher: DictConfig, jobs: int) -> int:
    """How many of the sweep's `jobs` train on this machine at the same time: joblib's n_jobs (-1: one per
    core); every job for submitit's local executor, which starts them all at once; else one."""
    cores = os.cpu_count() or 1
    if "n_jobs" in launcher:
        at_once = cores if launcher.n_jobs == -1 else launcher.n_jobs
    elif launcher.get("_target_", "").endswith("submitit_launcher.LocalLauncher"):
        at_once = jobs
    else:
        return 1
    return min(at_once, jobs, cores)


def busy_elsewhere(sample_s: float = 0.1) -> float:
    """Cores that other processes keep busy now: the machine's busy time over a short sleep of this process
    (/proc/stat), else the 1-minute load average; 0 where neither is known."""
    try:
        before = _cpu_times()
        time.sleep(sample_s)
        after = _cpu_times()
    except OSError:
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy, total = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / total if total > 0 else 0.0


def _cpu_times() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot; idle and iowait are not busy."""
    with open("/proc/stat") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def share_cores(launcher: DictConfig, sweep: SweepDir) -> None:
    """Set this job's torch threads: a SLURM job takes the CPUs it was given (its own, by the scheduler's
    allocation); otherwise the jobs training at once on this machine (joblib's n_jobs, submitit's local
    executor) share the cores but one, left to the rest of the machine; a job alone also leaves those that
    other processes keep busy as it starts. OMP_NUM_THREADS, when set, is the user's choice and is left alone."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    if cpus := os.environ.get("SLURM_CPUS_PER_TASK"):
        torch.set_num_threads(min(int(cpus), os.cpu_count() or 1))
        return
    at_once = jobs_at_once(launcher, sweep.info()["jobs"])
    # a job alone looks at what else runs; jobs started together would see each other
    others = max(1, round(busy_elsewhere())) if at_once == 1 else 1
    torch.set_num_threads(max(1, ((os.cpu_count() or 1) - others) // at_once))


def share_cores_among_ranks(devices: int | str) -> None:
    """A DDP rank's process: the machine's cores but one split between the `devices` ranks it runs
    (trainer.devices; each would otherwise take every core); OMP_NUM_THREADS, when set, left alone."""
    if "OMP_NUM_THREADS" not in os.environ:
        ranks = devices if isinstance(devices, int) else 1
        torch.set_num_threads(max(1, ((os.cpu_count() or 1) - 1) // ranks))
