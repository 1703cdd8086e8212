"""One decoder layer: attention and MLP sub-layers, each wrapped by the norm placement.

This is the only place that reads `norm`. For a sub-layer f and residual stream x, every placement is
    x <- norm_res(x + norm_out(f(norm_in(x))))
with the norms it has not set to the identity:
  pre    x + f(norm(x))                 Gemma 1
  post   x + norm(f(x))                 norm on the sub-layer output only
  dual   x + norm_out(f(norm_in(x)))    Gemma 2
  postln norm(x + f(x))                 the original transformer: norm after the residual add
A post-norm (norm_out) starts at gain model.post_norm_init_gain (decoder.py reset_parameters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from gemmalab.migrations import older_block_keys

from .attention import Attention
from .config import ModelConfig
from .diagnostics import Recorder
from .mlp import MLP
from .norm import RMSNorm

if TYPE_CHECKING:
    from .kv_cache import LayerCache

NORMS_BY_PLACEMENT = {  # which of (norm_in, norm_out, norm_res) the placement has
    "pre": (True, False, False),
    "post": (False, True, False),
    "dual": (True, True, False),
    "postln": (False, False, True),
}


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, local: bool, layer: int, recorder: Recorder) -> None:
        super().__init__()
        self.attn = Attention(cfg, local, layer, recorder)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.activation, cfg.handwritten_kernels)

        def norm(present: bool) -> nn.Module:
            return RMSNorm(cfg.d_model, cfg.norm_eps, cfg.handwritten_kernels) if present else nn.Identity()

        has_in, has_out, has_res = NORMS_BY_PLACEMENT[cfg.norm]
        self.attn_in_norm, self.attn_out_norm, self.attn_res_norm = norm(has_in), norm(has_out), norm(has_res)
        self.mlp_in_norm, self.mlp_out_norm, self.mlp_res_norm = norm(has_in), norm(has_out), norm(has_res)
        if cfg.norm == "postln":
            self._register_load_state_dict_pre_hook(older_block_keys)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model)."""
        x = self.attn_res_norm(x + self.attn_out_norm(self.attn(self.attn_in_norm(x), cos, sin, cache)))
        return self.mlp_res_norm(x + self.mlp_out_norm(self.mlp(self.mlp_in_norm(x))))
