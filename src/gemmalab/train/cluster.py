"""Where a fit's DDP ranks come from: Lightning's own launcher (one process, or a one-task SLURM job),
or started outside it, all at once, by torchrun or by SLURM with several tasks."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from gemmalab.errors import ConfigError

from .config import TrainerConfig

if TYPE_CHECKING:
    from lightning.fabric.plugins.environments import ClusterEnvironment

# what Lightning's TorchElastic and SLURM environments detect ranks by: a process without them was started by
# no one else, and says so without importing Lightning (seconds, on every command)
STARTED_BY = ("LOCAL_WORLD_SIZE", "SLURM_NTASKS")


def ranks_started_outside() -> ClusterEnvironment | None:
    """The environment of DDP ranks that were all started outside Lightning, each running this script:
    by torchrun, or by SLURM with several tasks (srun; submitit with nodes or tasks_per_node > 1)."""
    if not any(name in os.environ for name in STARTED_BY):
        return None
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        environment: ClusterEnvironment = TorchElasticEnvironment()
    elif os.environ.get("SLURM_NTASKS", "1") != "1" and SLURMEnvironment.detect():
        environment = SLURMEnvironment()
    else:
        return None
    return environment if environment.world_size() > 1 else None


def follows_rank_zero() -> bool:
    """Whether this process is a rank > 0 that torchrun or SLURM started: rank 0 runs the sweep."""
    return (environment := ranks_started_outside()) is not None and environment.global_rank() > 0


def join_process_group(at_exit: Callable[[], object]) -> None:
    """Ranks started outside, once: join their process group (Lightning's fits use it as they find it);
    rank 0 calls `at_exit` when its process ends, however it ends."""
    if (env := ranks_started_outside()) is None or dist.is_initialized():
        return
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = env.main_address, str(env.main_port)  # env:// rendezvous
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank())
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=env.global_rank(), world_size=env.world_size())
    if env.global_rank() == 0:
        atexit.register(at_exit)


def check_world(cfg: TrainerConfig) -> None:
    """Ranks started outside: the job must ask for exactly the ranks that were started."""
    if (environment := ranks_started_outside()) is None:
        return
    ranks = environment.world_size()
    if not isinstance(cfg.devices, int) or cfg.devices * cfg.num_nodes != ranks or cfg.strategy != "ddp":
        raise ConfigError(
            f"{type(environment).__name__} started {ranks} ranks, but trainer.strategy={cfg.strategy} "
            f"trainer.devices={cfg.devices} trainer.num_nodes={cfg.num_nodes} (allowed: trainer=ddp with "
            f"devices x num_nodes = {ranks}, e.g. trainer.devices={ranks // cfg.num_nodes})"
        )


def slurm_environment() -> list[ClusterEnvironment]:
    """Inside a SLURM job of one task (hydra/launcher=slurm's tasks_per_node=1), Lightning's own launcher
    starts one rank per device, as outside SLURM: Lightning's SLURM environment would insist on one task
    per device and refuse trainer.devices > 1. With several tasks each task is a rank, and submitit
    requeues the job (runs/requeue.py): Lightning's own requeue on SIGUSR1 stays off."""
    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

    if os.environ.get("SLURM_NTASKS") == "1":
        return [LightningEnvironment()]
    return [SLURMEnvironment(auto_requeue=False)] if isinstance(ranks_started_outside(), SLURMEnvironment) else []


def check_machine(cfg: TrainerConfig) -> None:
    """A local job asks for no GPU this machine lacks (none at all, or fewer than trainer.devices): refused
    before any tokenizer, cache or run is made, not by each job in turn. A job a cluster runs is checked where
    it runs (preflight leaves SLURM jobs out); CPU processes are not devices a machine runs out of."""
    if cfg.accelerator not in ("gpu", "cuda") or ranks_started_outside() is not None:
        return
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    found = CUDAAccelerator.auto_device_count() if CUDAAccelerator.is_available() else 0
    if cfg.accelerator == "gpu" and not found and MPSAccelerator.is_available():
        found = 1  # Apple's GPU: Lightning's gpu means cuda or mps
    if found == 0:
        raise ConfigError(f"trainer.accelerator={cfg.accelerator} is not available: this machine has no GPU "
                          "(allowed: trainer=cpu, or a launcher that runs the jobs where a GPU is, e.g. "
                          "hydra/launcher=slurm)")  # fmt: skip
    if isinstance(cfg.devices, int) and cfg.devices * cfg.num_nodes > found:
        raise ConfigError(f"trainer.devices={cfg.devices} is more than this machine has: {found} GPU(s) (allowed: "
                          f"1 to {found}, trainer.devices=auto, or a cluster launcher for more)")  # fmt: skip
