"""A job's resolved config (a plain dict) built into the config objects training uses, every value checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from gemmalab.data import DataConfig
from gemmalab.data.cache import check_budget, check_data
from gemmalab.errors import ConfigError, refuse
from gemmalab.model import ModelConfig, model_config
from gemmalab.schema import JobConfig, LoggerConfig, check_known_keys
from gemmalab.train import OptimConfig, StabilityConfig, TrainerConfig
from gemmalab.train.cluster import check_machine, check_world
from gemmalab.train.distill import ALIAS_PREFIX, DistillConfig, check_teacher_compatible

from .aliases import teacher_config
from .store import cache_dir

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Callback


@dataclass
class JobSpec:
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    trainer: TrainerConfig
    stability: StabilityConfig
    distill: DistillConfig
    seed: int

    @classmethod
    def from_config(cls, config: dict[str, Any], here: bool = True) -> JobSpec:
        """Every config object built, each checking its own keys (its __post_init__), then the checks that span
        sections or read the machine: the teacher against the student, the world size and devices, the data
        against its cache and the steps, the callbacks. Raises ConfigError naming the first bad key. `here`: the
        job runs on this machine, which must have the devices it asks for (not so for a cluster's jobs)."""
        check_known_keys(config)
        JobConfig(seed=config.get("seed"), group=config.get("group"), alias=config.get("alias"))
        model = model_config(config)
        LoggerConfig(**config["logger"])
        distill = DistillConfig(**{k: v for k, v in config["distill"].items() if k != "teacher_run"})
        if distill.enabled and not distill.teacher.startswith(ALIAS_PREFIX):  # an alias may not exist yet
            check_teacher_compatible(teacher_config(distill.teacher), config)
        trainer = TrainerConfig(**config["trainer"])
        check_world(trainer)
        if here:
            check_machine(trainer)
        data = DataConfig(**config["data"])
        check_data(data, data_cache(config))
        check_budget(data, train_sequences(data, trainer), data_cache(config))
        callbacks(config)
        return cls(
            model=model,
            data=data,
            optim=OptimConfig(**config["optim"]),
            trainer=trainer,
            stability=StabilityConfig(**config["stability"]),
            distill=distill,
            seed=config["seed"],
        )


def train_sequences(data: DataConfig, trainer: TrainerConfig) -> int | None:
    """The training sequences a run reads; None for a fast_dev_run or overfit_batches run (a few batches)."""
    if trainer.fast_dev_run or trainer.overfit_batches:
        return None
    return trainer.max_steps * data.batch_size * trainer.accumulate_grad_batches


def data_cache(config: dict[str, Any]) -> Path:
    """Where the job's token cache lies: data.cache_dir, else the run store's own."""
    return Path(config["data"].get("cache_dir") or cache_dir(config["run_root"]))


def callbacks(config: dict[str, Any]) -> list[Callback]:
    """The job's extra Lightning callbacks, `callbacks.<name>: {_target_: ..., <args>}` (e.g. a fault
    injected by a test); each one that cannot be built is refused in one line."""
    from lightning.pytorch.callbacks import Callback  # Lightning: not on the path of a refused override

    built = []
    for name, spec in (config.get("callbacks") or {}).items():
        try:
            callback = instantiate(spec)
        except (InstantiationException, TypeError, ValueError) as err:
            cause = " ".join(str(err.__cause__ or err).split())
            raise ConfigError(f"callbacks.{name} cannot be built ({cause}) (allowed: _target_ naming a "
                              "Lightning Callback, and its arguments)") from None  # fmt: skip
        if not isinstance(callback, Callback):
            refuse(f"callbacks.{name}._target_", (spec or {}).get("_target_"), "a Lightning Callback class")
        built.append(callback)
    return built
