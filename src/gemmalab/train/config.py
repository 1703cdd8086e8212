"""Optimisation and trainer settings; validated before any work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gemmalab.errors import ConfigError, is_number, refuse, require_choice, require_int, require_positive, require_range

ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true")
PROFILERS = ("simple", "advanced", "pytorch")  # Lightning's names; the report goes to the run directory


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
    # Lightning's own Trainer arguments, under their names and meanings (train/fit.py passes them through)
    accumulate_grad_batches: int = 1  # micro-batches of data.batch_size summed into one optimizer step
    log_every_n_steps: int = 1  # what every logger records, metrics.jsonl too (the stability figures read it)
    limit_val_batches: Any = 1.0  # an int: that many batches; a float: that fraction; 0: no validation
    fast_dev_run: Any = False  # true or N: N steps and N validation batches, run afresh each time, nothing kept
    overfit_batches: Any = 0.0  # N (or a fraction): train and validate on the same first N batches, in order
    deterministic: Any = None  # true | false | warn | null: torch.use_deterministic_algorithms
    profiler: str | None = None  # simple | advanced | pytorch (Lightning's profilers)

    def __post_init__(self) -> None:
        for key in (
            "max_steps",
            "val_every",
            "ckpt_every",
            "num_nodes",
            "accumulate_grad_batches",
            "log_every_n_steps",
        ):
            require_int(f"trainer.{key}", getattr(self, key))
        for key in ("limit_val_batches", "overfit_batches"):
            limit = getattr(self, key)
            if not is_number(limit) or limit < 0 or (isinstance(limit, float) and limit > 1):
                refuse(f"trainer.{key}", limit, "an integer >= 0 (batches) or a fraction from 0.0 to 1.0")
        if not isinstance(self.fast_dev_run, bool):
            require_int("trainer.fast_dev_run", self.fast_dev_run, allowed="false, true, or an integer >= 1 (steps)")
        if self.deterministic not in (True, False, "warn", None):
            refuse("trainer.deterministic", self.deterministic, "true, false, warn or null")
        if self.profiler is not None:
            require_choice("trainer.profiler", self.profiler, PROFILERS)
        require_int("trainer.stats_every", self.stats_every, minimum=0, allowed="0 for off, or >= 1")
        require_choice("trainer.accelerator", self.accelerator, ACCELERATORS)
        require_choice("trainer.precision", self.precision, PRECISIONS)
