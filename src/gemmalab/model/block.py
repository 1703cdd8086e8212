"""One decoder layer: attention and MLP sub-layers, each wrapped by the norm placement.

This is the only place that reads `norm`. For a sub-layer f and residual stream x:
  pre    x + f(norm(x))                 Gemma 1
  post   x + norm(f(x))                 norm on the sub-layer output only
  dual   x + norm_out(f(norm_in(x)))    Gemma 2
  postln norm(x + f(x))                 the original transformer: norm after the residual add
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .attention import Attention
from .config import ModelConfig
from .mlp import MLP
from .norm import RMSNorm

if TYPE_CHECKING:
    from .kv_cache import LayerCache

_NORMS_BY_PLACEMENT = {  # (norm before the sub-layer, norm after it)
    "pre": (True, False),
    "post": (False, True),
    "dual": (True, True),
    "postln": (False, True),
}


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, local: bool) -> None:
        super().__init__()
        self.placement = cfg.norm
        self.attn = Attention(cfg, local)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.activation, cfg.handwritten_kernels)
        norm_in, norm_out = _NORMS_BY_PLACEMENT[cfg.norm]

        def make_norm(present: bool) -> nn.Module | None:
            return RMSNorm(cfg.d_model, cfg.norm_eps, cfg.handwritten_kernels) if present else None

        self.attn_in_norm, self.attn_out_norm = make_norm(norm_in), make_norm(norm_out)
        self.mlp_in_norm, self.mlp_out_norm = make_norm(norm_in), make_norm(norm_out)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        stats: list[dict[str, torch.Tensor]] | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        attend = lambda h: self.attn(h, cos, sin, stats, cache)  # noqa: E731
        x = self._residual(x, attend, self.attn_in_norm, self.attn_out_norm)
        return self._residual(x, self.mlp, self.mlp_in_norm, self.mlp_out_norm)

    def _residual(
        self,
        x: torch.Tensor,
        sublayer: Callable[[torch.Tensor], torch.Tensor],
        norm_in: nn.Module | None,
        norm_out: nn.Module | None,
    ) -> torch.Tensor:
        if self.placement == "postln":
            return norm_out(x + sublayer(x))
        h = sublayer(norm_in(x) if norm_in is not None else x)
        return x + (norm_out(h) if norm_out is not None else h)
