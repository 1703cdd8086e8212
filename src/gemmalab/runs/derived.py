"""A composed job config as it trains: what other settings derive, written into the keys a run is known by."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from gemmalab.scale import apply_rung, apply_shape_and_budget
from gemmalab.tune import tuned_lr


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config of one job: a ladder rung's sizes, the depth, parameter matching and token budget
    (gemmalab/scale.py), and a tuned comparison's LR (gemmalab/tune.py). Raises ConfigError."""
    apply_rung(cfg)  # before resolving: attn.kv_heads and other interpolations follow the rung's sizes
    return tuned_lr(apply_shape_and_budget(OmegaConf.to_container(cfg, resolve=True)))
