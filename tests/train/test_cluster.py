"""Which environment a fit's ranks live in, read from the variables torchrun and SLURM set."""

from __future__ import annotations

import pytest
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

from gemmalab.errors import ConfigError
from gemmalab.train.cluster import check_world, ranks_started_outside, slurm_environment
from gemmalab.train.config import TrainerConfig

TORCHRUN_RANK_1 = {"TORCHELASTIC_RUN_ID": "r", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "GROUP_RANK": "0",
                   "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip
SLURM_TASK_1_OF_2 = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "gemmalab", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
                     "SLURM_LOCALID": "1", "SLURM_NODEID": "0", "SLURM_NTASKS_PER_NODE": "2",
                     "SLURM_NODELIST": "localhost"}  # fmt: skip


def ddp(devices: int, num_nodes: int = 1) -> TrainerConfig:
    return TrainerConfig(accelerator="cpu", devices=devices, num_nodes=num_nodes, strategy="ddp")


def test_torchrun_ranks_are_started_outside_and_a_job_must_ask_for_all_of_them(monkeypatch):
    assert ranks_started_outside() is None and slurm_environment() == []  # one process
    check_world(ddp(1))
    for key, value in TORCHRUN_RANK_1.items():
        monkeypatch.setenv(key, value)
    assert ranks_started_outside().global_rank() == 1
    check_world(ddp(2))
    check_world(ddp(1, num_nodes=2))
    with pytest.raises(ConfigError, match=r"^TorchElasticEnvironment started 2 ranks, but trainer.strategy=ddp "
                                          r"trainer.devices=1 trainer.num_nodes=1 \(allowed: "):  # fmt: skip
        check_world(ddp(1))
    with pytest.raises(ConfigError, match="trainer.strategy=auto"):
        check_world(TrainerConfig(accelerator="cpu", devices=2))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert ranks_started_outside() is None  # a single rank: nothing to hand over


def test_slurm_tasks_are_ranks_unless_there_is_one_task(monkeypatch):
    for key, value in SLURM_TASK_1_OF_2.items():
        monkeypatch.setenv(key, value)
    environment = ranks_started_outside()
    assert isinstance(environment, SLURMEnvironment) and environment.global_rank() == 1
    (plugin,) = slurm_environment()
    assert isinstance(plugin, SLURMEnvironment) and not plugin.auto_requeue  # submitit requeues
    monkeypatch.setenv("SLURM_NTASKS", "1")  # hydra/launcher=slurm's default: Lightning starts the ranks
    assert ranks_started_outside() is None
    assert [type(p) for p in slurm_environment()] == [LightningEnvironment]


def test_a_gpu_this_machine_lacks_is_refused_in_one_line():
    import torch

    from gemmalab.train.cluster import check_machine

    check_machine(TrainerConfig(accelerator="cpu", devices=64))  # CPU processes: any number a machine can start
    check_machine(TrainerConfig(accelerator="auto"))  # Lightning takes what there is
    if not torch.cuda.is_available():
        for accelerator in ("gpu", "cuda"):
            with pytest.raises(ConfigError, match=rf"^trainer.accelerator={accelerator} is not available: this "
                                                  r"machine has no GPU \(allowed: trainer=cpu, "):  # fmt: skip
                check_machine(TrainerConfig(accelerator=accelerator, precision="bf16-mixed"))
    else:
        count = torch.cuda.device_count()
        check_machine(TrainerConfig(accelerator="gpu", devices=count, precision="bf16-mixed"))
        with pytest.raises(ConfigError, match=rf"trainer.devices={count + 1} is more than this machine has: {count} "):
            check_machine(TrainerConfig(accelerator="gpu", devices=count + 1, precision="bf16-mixed"))
