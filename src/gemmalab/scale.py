"""Model size as a study varies it: a ladder of sizes (`+scale=cpu | gpu`), a deeper shape at equal
parameters (`+shape=deep`), parameter matching (`scale.match_params=true`) and the tokens a run trains on.

Everything here is derived into the keys a run is known by (model.*, trainer.max_steps), before the run's
identity is taken: the `scale` section itself is not part of it (runs/identity.py).

    rung sizes   model.d_model, n_layers, n_heads, head_dim, d_ff = 4 d_model   (model/presets.py LADDERS)
    depth        n_layers <- round(n_layers * scale.depth)
    match        d_ff <- the multiple of 8 that brings the non-embedding parameters closest to the reference's:
                 the same size at its base depth and d_ff with GQA (kv_heads = n_heads / 2)
    tokens       trainer.max_steps <- ceil(scale.tokens_per_param * non-embedding parameters / tokens per step)
    compute      trainer.max_steps <- floor(scale.flops_per_run / training FLOPs per step): arms that differ in
                 cost (local vs global attention, MQA vs MHA, deep vs wide) at equal training compute
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from gemmalab.errors import ConfigError, require_choice
from gemmalab.model import Decoder, count_parameters, model_config, training_flops_per_token
from gemmalab.model.presets import LADDERS


@dataclass
class ScaleConfig:
    ladder: str | None = None  # cpu | gpu: the sizes of model/presets.py LADDERS; null: the model group's size
    rung: int = 0  # which of the ladder's sizes (0: the smallest); a ladder sweeps them all
    tokens_per_param: float | None = None  # null: trainer.max_steps as given; else tokens per non-embedding param
    depth: float = 1.0  # layers times this (shape=deep: 1.5)
    match_params: bool = False  # d_ff chosen to equal the reference's non-embedding parameters (above)
    flops_per_run: float | None = None  # null: steps as given; else each run's training FLOPs (model/accounting.py)

    def __post_init__(self) -> None:
        if self.ladder is not None:
            require_choice("scale.ladder", self.ladder, tuple(LADDERS))
            if not 0 <= self.rung < len(LADDERS[self.ladder]):
                raise ConfigError(f"scale.rung={self.rung} is not allowed with scale.ladder={self.ladder} "
                                  f"(allowed: 0 to {len(LADDERS[self.ladder]) - 1})")  # fmt: skip
        if self.tokens_per_param is not None and not self.tokens_per_param > 0:
            raise ConfigError(f"scale.tokens_per_param={self.tokens_per_param} is not allowed (allowed: > 0, or null)")
        if self.flops_per_run is not None and not self.flops_per_run > 0:
            raise ConfigError(f"scale.flops_per_run={self.flops_per_run} is not allowed (allowed: > 0, or null)")
        if self.flops_per_run is not None and self.tokens_per_param is not None:
            raise ConfigError("scale.flops_per_run and scale.tokens_per_param are both set (allowed: one budget)")
        if not self.depth > 0:
            raise ConfigError(f"scale.depth={self.depth} is not allowed (allowed: a number > 0)")


def apply_rung(cfg: DictConfig) -> None:
    """The ladder rung's sizes into model.*, before interpolations (kv_heads follows n_heads) are resolved."""
    scale = ScaleConfig(**cfg.scale)
    if scale.ladder is None:
        return
    d_model, n_layers, n_heads = LADDERS[scale.ladder][scale.rung]
    with open_dict(cfg):
        cfg.model.update(d_model=d_model, n_layers=n_layers, n_heads=n_heads, head_dim=d_model // n_heads,
                         d_ff=4 * d_model)  # fmt: skip


def non_embedding_parameters(config: dict[str, Any]) -> int:
    with torch.device("meta"):
        return count_parameters(Decoder(model_config(config)), include_embedding=False)


def tokens_per_step(batch_size: int, seq_len: int, accumulate_grad_batches: int = 1) -> int:
    """Tokens per optimizer step: the global batch of data.batch_size sequences, times the micro-batches
    Lightning accumulates into one step."""
    return batch_size * seq_len * accumulate_grad_batches


def config_tokens_per_step(config: dict[str, Any]) -> int:
    data, trainer = config["data"], config["trainer"]
    return tokens_per_step(data["batch_size"], data["seq_len"], trainer.get("accumulate_grad_batches", 1))


def training_flops_per_step(config: dict[str, Any]) -> float:
    """The run's training FLOPs per optimizer step: per token at its context, times the step's tokens."""
    with torch.device("meta"):
        per_token = training_flops_per_token(Decoder(model_config(config)), config["data"]["seq_len"])
    return per_token * config_tokens_per_step(config)


def apply_shape_and_budget(config: dict[str, Any]) -> dict[str, Any]:
    """Depth, parameter matching and the token budget, on the resolved config (a new dict)."""
    scale = ScaleConfig(**config["scale"])
    config = copy.deepcopy(config)
    model = config["model"]
    base_layers = model["n_layers"]
    model["n_layers"] = max(1, round(base_layers * scale.depth))
    if scale.match_params:
        reference = copy.deepcopy(config)
        reference["model"]["n_layers"] = base_layers
        reference["attn"]["kv_heads"] = max(1, model["n_heads"] // 2)
        target = non_embedding_parameters(reference)
        at = {}
        for d_ff in (8, 16):  # the count is affine in d_ff
            model["d_ff"] = d_ff
            at[d_ff] = non_embedding_parameters(config)
        per_unit = (at[16] - at[8]) / 8
        model["d_ff"] = max(8, 8 * round((8 + (target - at[8]) / per_unit) / 8))
    steps = None
    if scale.tokens_per_param is not None:
        steps = math.ceil(scale.tokens_per_param * non_embedding_parameters(config) / config_tokens_per_step(config))
    if scale.flops_per_run is not None:
        steps = math.floor(scale.flops_per_run / training_flops_per_step(config))
    if steps is not None:
        config["trainer"]["max_steps"] = max(steps, config["optim"]["warmup_steps"] + 1)
    return config
