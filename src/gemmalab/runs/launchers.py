"""What the Hydra launcher means for a job's process: how many of the sweep's jobs share this machine."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig

from .store import SweepDir


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


def share_cores(launcher: DictConfig, sweep: SweepDir) -> None:
    """Jobs training at once on one machine share its cores (like joblib's n_jobs), not each take all; a
    SLURM job takes the CPUs it was given (torch would take every core of the node, which other jobs share)."""
    if cpus := os.environ.get("SLURM_CPUS_PER_TASK"):
        torch.set_num_threads(min(int(cpus), os.cpu_count() or 1))
    elif (at_once := jobs_at_once(launcher, sweep.info()["jobs"])) > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // at_once))
