"""Feed-forward block: GeGLU (Gemma), SwiGLU, or a plain GELU MLP. No biases."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, activation: str) -> None:
        super().__init__()
        self.activation = activation
        self.gated = activation in ("geglu", "swiglu")
        if self.gated:
            self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up_proj(x)
        if self.activation == "geglu":
            hidden = F.gelu(self.gate_proj(x), approximate="tanh") * up
        elif self.activation == "swiglu":
            hidden = F.silu(self.gate_proj(x)) * up
        else:
            hidden = F.gelu(up, approximate="tanh")
        return self.down_proj(hidden)
