"""Optimisation and trainer settings; validated before any work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gemmalab.errors import ConfigError, require_choice, require_int, require_positive, require_range

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
            require_positive(f"optim.{key}", getattr(self, key))
        if self.grad_clip is not None:
            require_positive("optim.grad_clip", self.grad_clip)
        require_range("optim.z_loss", self.z_loss, 0, math.inf, "a number >= 0")
        require_range("optim.weight_decay", self.weight_decay, 0, math.inf, "a number >= 0")
        require_int("optim.warmup_steps", self.warmup_steps, minimum=0)
        require_range("optim.min_lr_ratio", self.min_lr_ratio, 0, 1, "0 to 1")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas={list(self.betas)} is not allowed (allowed: two numbers in [0, 1))")


@dataclass
class TrainerConfig:
    max_steps: int = 200
    val_every: int = 50
    ckpt_every: int = 50
    stats_every: int = 10  # logit-growth signals every k steps: one extra q.k^T pass per layer on those steps
    accelerator: str = "cpu"
    devices: int | str = 1  # per node
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    compile: bool = False
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for key in ("max_steps", "val_every", "ckpt_every", "num_nodes"):
            require_int(f"trainer.{key}", getattr(self, key))
        require_int("trainer.stats_every", self.stats_every, minimum=0, allowed="0 for off, or >= 1")
        require_choice("trainer.accelerator", self.accelerator, ACCELERATORS)
        require_choice("trainer.precision", self.precision, PRECISIONS)
