"""DDP ranks that torchrun or SLURM (several tasks) started all at once, each running sweep.py or a submitit
job: rank 0 runs the sweep; before it trains a run it names the run's directory to the others, which train
that run from it beside rank 0 (runs/train_run.py); when rank 0's process ends they are told so (END).
Ranks Lightning's launcher starts need none of this: they re-run the command that names the run."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from gemmalab.train.cluster import ranks_started_outside

END = ""


def follows_rank_zero() -> bool:
    return (environment := ranks_started_outside()) is not None and environment.global_rank() > 0


def lead() -> None:
    """Rank 0, at the start of each job: joins the process group (once; Lightning's fits use it), and
    however rank 0's process ends, the others are told (END) and stop waiting."""
    if (environment := ranks_started_outside()) is None or dist.is_initialized():
        return
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = environment.main_address, str(environment.main_port)
    if torch.cuda.is_available():
        torch.cuda.set_device(environment.local_rank())
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=environment.global_rank(), world_size=environment.world_size())
    if environment.global_rank() == 0:
        atexit.register(_broadcast, END)


def _broadcast(run_dir: str) -> str:
    box = [run_dir]
    dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


def announce(run_dir: str) -> None:
    """Rank 0, before it trains the run in `run_dir`."""
    if ranks_started_outside() is not None:
        _broadcast(run_dir)


def followed() -> Iterator[str]:
    """A rank > 0: each run directory rank 0 trains, until END."""
    lead()
    while (run_dir := _broadcast(END)) != END:
        yield run_dir
