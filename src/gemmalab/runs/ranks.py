"""Which job a DDP rank > 0 trains: its rank 0 decides (claim, skip or resume, all bookkeeping) and tells it.

Ranks start in one of two ways.
- Lightning's own launcher (trainer=ddp trainer.devices=N in one process you started, or in a
  one-task SLURM job) re-runs sweep.py for ranks 1..N-1 when rank 0 starts a fit; they read the
  job from the environment rank 0 set (DDP_JOB).
- Started all at once, outside (torchrun; SLURM with several tasks: srun, or hydra/launcher=slurm
  with nodes or tasks_per_node > 1): each rank runs sweep.py, or the submitit job, itself. Rank 0
  broadcasts one message per job over the process group: the job, or None when it trains nothing
  (skipped, refused, failed before training, not started); sweep.py's rank 0 ends with END.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from gemmalab.train.cluster import ranks_started_outside

DDP_JOB = "GEMMALAB_DDP_JOB"
END = "end of sweep"
_told: list[bool] = [False]  # rank 0 (started outside): whether the current job was told


def follows_rank_zero() -> bool:
    """Whether this process is a DDP rank > 0, started by Lightning's launcher for a job or outside."""
    if (environment := ranks_started_outside()) is not None:
        return environment.global_rank() > 0
    return bool(os.environ.get(DDP_JOB)) and os.environ.get("LOCAL_RANK", "0") != "0"


def _broadcast(message: Any) -> Any:
    """rank 0's message, on every rank; joins the process group the first time (kept for Lightning's fit)."""
    if not dist.is_initialized():
        environment = ranks_started_outside()
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = environment.main_address, str(environment.main_port)
        if torch.cuda.is_available():
            torch.cuda.set_device(environment.local_rank())
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"  # the jobs over gloo
        dist.init_process_group(backend, rank=environment.global_rank(), world_size=environment.world_size())
    box = [message]
    dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


@contextlib.contextmanager
def handed_over(job: dict[str, Any]) -> Iterator[None]:
    """Rank 0, around its fit: the job (resolved config, run id, checkpoint to resume from) to the others."""
    if ranks_started_outside() is not None:
        _broadcast(job)
        _told[0] = True
        yield
        return
    os.environ[DDP_JOB] = json.dumps(job)  # for the ranks Lightning's launcher is about to start
    try:
        yield
    finally:
        os.environ.pop(DDP_JOB)


def job_ended() -> None:
    """Rank 0, after each job: when the others were not told a job to train, they are told there is none."""
    if ranks_started_outside() is not None and not _told[0]:
        _broadcast(None)
    _told[0] = False


def sweep_ended() -> None:
    """sweep.py's rank 0, however it ends: the others stop waiting."""
    if ranks_started_outside() is not None:
        _broadcast(END)


def job_from_rank_zero() -> dict[str, Any] | str | None:
    """A rank > 0: the next job its rank 0 trains (None: none this time; END: no more)."""
    if ranks_started_outside() is None:  # Lightning's launcher started this rank for one job
        return json.loads(os.environ[DDP_JOB])
    return _broadcast(None)
