"""The job config's schema: the config dataclasses, registered with Hydra's ConfigStore.

Every key's type and default is written once, in its dataclass; the YAML files under conf/
state only group choices and what differs. A key no dataclass has (`+attn.bogus=1`, `+foo=1`)
or a value of the wrong type is refused by Hydra while composing, before any job starts.
The laptop model sizes are registered from model/presets.py, so `model=laptop` on the
command line and `preset("laptop")` in Python are one definition.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from gemmalab.data.config import DataConfig
from gemmalab.data.tokenizer import ByteTokenizer, vocab_size_of
from gemmalab.errors import ConfigError, refuse, require_choice, require_name
from gemmalab.model.config import OWN_SECTIONS, AttnConfig, ModelConfig, SoftcapConfig
from gemmalab.model.presets import LAPTOP_SIZES, LAPTOP_WINDOW, preset
from gemmalab.scale import ScaleConfig
from gemmalab.train.config import OptimConfig, TrainerConfig
from gemmalab.train.distill import DistillConfig
from gemmalab.train.stability import StabilityConfig
from gemmalab.tune import TuneConfig

_MODEL_HINTS = typing.get_type_hints(ModelConfig)
MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in OWN_SECTIONS)
ModelSize = dataclasses.make_dataclass(
    "ModelSize",
    [(f.name, _MODEL_HINTS[f.name], field(default=f.default)) for f in dataclasses.fields(ModelConfig)
     if f.name in MODEL_KEYS],
)  # fmt: skip


LOGGER_KINDS = ("wandb", "csv", "none")
WANDB_MODES = ("offline", "online", "disabled")  # offline: `wandb sync runs/*/wandb/offline-run-*` uploads later


@dataclass
class LoggerConfig:
    kind: str = "wandb"
    mode: str = "offline"
    project: str = "gemmalab"
    entity: str | None = None

    def __post_init__(self) -> None:
        require_choice("logger.kind", self.kind, LOGGER_KINDS)
        if self.kind == "wandb":
            require_choice("logger.mode", self.mode, WANDB_MODES)


@dataclass
class CascadeConfig:
    size: str = "teacher"
    training: str = "scratch"


@dataclass
class JobConfig:
    model: Any = field(default_factory=ModelSize)
    attn: AttnConfig = field(default_factory=lambda: AttnConfig(window=LAPTOP_WINDOW))
    norm: str = "dual"
    softcap: SoftcapConfig = field(default_factory=SoftcapConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # +scale=cpu | gpu, +shape=deep (gemmalab/scale.py)
    tune: TuneConfig = field(default_factory=TuneConfig)  # +tune=lr (gemmalab/tune.py)
    seed: int = 0
    run_root: str = "runs"  # the local run store (see gemmalab/runs/store.py)
    group: str | None = None  # W&B group and sweep name; null: the Hydra sweep directory's name
    alias: str | None = None  # a name for this run once finished: distill.teacher=alias:NAME finds it
    callbacks: dict[str, Any] = field(default_factory=dict)  # name: {_target_: a Lightning Callback, args}
    ablation: str | None = None  # set by +ablation=NAME
    cascade: CascadeConfig | None = None  # set by +cascade=...

    def __post_init__(self) -> None:  # the top level's own keys; each section checks itself
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            refuse("seed", self.seed, "an integer from 0 to 2**32 - 1")  # numpy's seed range
        for key in ("group", "alias"):  # names that become paths in the run store
            if getattr(self, key) is not None:
                require_name(key, getattr(self, key))


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


# The keys each section of a composed config may hold. Hydra's `+key=value` adds a key even to a
# structured config, so `+attn.bogus=1` or `+foo=1` (a typo that would train a duplicate run under a
# new identity) is refused here.
SECTIONS: dict[str, tuple[str, ...]] = {
    "model": MODEL_KEYS,
    "attn": _names(AttnConfig),
    "softcap": _names(SoftcapConfig),
    "optim": _names(OptimConfig),
    "trainer": _names(TrainerConfig),
    "data": _names(DataConfig),
    "logger": _names(LoggerConfig),
    "distill": (*_names(DistillConfig), "teacher_run"),  # teacher_run: pinned by the job (runs/job.py)
    "stability": _names(StabilityConfig),
    "cascade": _names(CascadeConfig),
    "scale": _names(ScaleConfig),
    "tune": _names(TuneConfig),
}


TOP_LEVEL_KEYS = _names(JobConfig)


def check_known_keys(config: dict[str, Any]) -> None:
    if unknown := sorted(set(config) - set(TOP_LEVEL_KEYS)):
        raise ConfigError(f"{unknown[0]} is not a known setting (allowed top-level keys: {', '.join(TOP_LEVEL_KEYS)})")
    for section, allowed in SECTIONS.items():
        if unknown := sorted(set(config.get(section) or {}) - set(allowed)):
            raise ConfigError(f"{section}.{unknown[0]} is not a known setting (allowed: {', '.join(allowed)})")


def model_size(cfg: ModelConfig) -> dict[str, Any]:
    return {key: getattr(cfg, key) for key in MODEL_KEYS}


def precision_for(accelerator: str) -> str:
    """bf16-mixed on an accelerator, 32-true on the CPU (bf16 autocast there is slow and not what a
    CPU study measures)."""
    return "32-true" if accelerator == "cpu" else "bf16-mixed"


def vocab_of(tokenizer: str) -> int:
    """The model's vocabulary for data.tokenizer; a bad value is refused later, by DataConfig, in one line."""
    try:
        return vocab_size_of(tokenizer)
    except ConfigError:
        return ByteTokenizer.vocab_size


def register() -> None:
    """The schema (`job_schema`, first in conf/config.yaml's defaults), the laptop model sizes as the
    `model` group's choices, and the resolvers the YAML files use."""
    store = ConfigStore.instance()
    store.store(name="job_schema", node=JobConfig)
    for name in LAPTOP_SIZES:  # their vocabulary is the tokenizer's: 256 bytes, N for bpe:N, a directory's own
        size = {**model_size(preset(name)), "vocab_size": "${vocab_of:${data.tokenizer}}"}
        store.store(group="model", name=name, node=ModelSize(**size))
    OmegaConf.register_new_resolver("floor_div", lambda a, b: max(1, int(a) // int(b)), replace=True)
    OmegaConf.register_new_resolver("precision_for", precision_for, replace=True)
    OmegaConf.register_new_resolver("vocab_of", vocab_of, replace=True)
