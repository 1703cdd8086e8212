"""Optimisation and trainer settings; validated before any work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gemmalab.errors import ConfigError

ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true")


@dataclass
class OptimConfig:
    lr: float = 3e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    # Wortsman et al. 2023: decay by weight_decay * (lr_t / lr) per step, i.e. not scaled by the peak LR,
    # so that sweeping the LR does not also sweep the effective decay.
    independent_wd: bool = False
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float | None = 1.0  # null: no clipping (the norm is still logged)
    z_loss: float = 0.0  # coefficient of log^2 Z (1e-4 in Wortsman et al.); 0: off

    def __post_init__(self) -> None:
        for key in ("lr", "eps"):
            _positive(f"optim.{key}", getattr(self, key))
        if self.grad_clip is not None:
            _positive("optim.grad_clip", self.grad_clip)
        if not isinstance(self.z_loss, (int, float)) or not 0 <= self.z_loss < math.inf:
            raise ConfigError(f"optim.z_loss={self.z_loss!r} is not allowed (allowed: a number >= 0)")
        if not isinstance(self.weight_decay, (int, float)) or not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"optim.weight_decay={self.weight_decay!r} is not allowed (allowed: a number >= 0)")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps={self.warmup_steps!r} is not allowed (allowed: an integer >= 0)")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio={self.min_lr_ratio!r} is not allowed (allowed: 0 to 1)")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas={list(self.betas)} is not allowed (allowed: two numbers in [0, 1))")


@dataclass
class TrainerConfig:
    max_steps: int = 200
    val_every: int = 50
    ckpt_every: int = 50
    stats_every: int = 10  # logit-growth signals every k steps: one extra q.k^T pass per layer on those steps
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    compile: bool = False
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for key in ("max_steps", "val_every", "ckpt_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"trainer.{key}={value!r} is not allowed (allowed: an integer >= 1)")
        if not isinstance(self.stats_every, int) or self.stats_every < 0:
            raise ConfigError(f"trainer.stats_every={self.stats_every!r} is not allowed (allowed: 0 for off, or >= 1)")
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(
                f"trainer.accelerator={self.accelerator!r} is not allowed (allowed: {', '.join(ACCELERATORS)})"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision={self.precision!r} is not allowed (allowed: {', '.join(PRECISIONS)})")


def _positive(key: str, value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ConfigError(f"{key}={value!r} is not allowed (allowed: a finite number > 0)")
