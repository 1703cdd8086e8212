"""Feed-forward block: GeGLU (Gemma), SwiGLU, or a plain GELU MLP. No biases.

GeGLU is gelu_tanh(gate) * up with gelu_tanh(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
Since 0.5 (1 + tanh(u)) = sigmoid(2u), the float32 CPU path computes x * sigmoid(2u) with a hand-written
backward, in row chunks that stay in cache (chunks.py): on CPU ~1.6x faster than torch's gelu and
product, whose tanh is twice the cost of a sigmoid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .chunks import row_chunks

_TWO_SQRT_2_OVER_PI = 2 * math.sqrt(2 / math.pi)  # 2u = _TWO_SQRT_2_OVER_PI * x * (1 + _CUBIC * x^2)
_CUBIC = 0.044715


class _GeGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        gate2, up2 = gate.reshape(-1, gate.shape[-1]), up.reshape(-1, up.shape[-1])
        sigma, out = torch.empty_like(gate2), torch.empty_like(gate2)
        k = gate.new_tensor(_TWO_SQRT_2_OVER_PI)
        for rows in row_chunks(gate2):
            g, s = gate2[rows], sigma[rows]
            torch.addcmul(k, g, g, value=_TWO_SQRT_2_OVER_PI * _CUBIC, out=s).mul_(g).sigmoid_()  # sigmoid(2u)
            torch.mul(g, s, out=out[rows]).mul_(up2[rows])
        ctx.save_for_backward(gate2, up2, sigma)
        return out.view(gate.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate2, up2, sigma = ctx.saved_tensors
        grad2 = grad.reshape(gate2.shape)
        grad_gate, grad_up = torch.empty_like(gate2), torch.empty_like(gate2)
        k = gate2.new_tensor(_TWO_SQRT_2_OVER_PI)
        for rows in row_chunks(gate2):
            g, s, dy = gate2[rows], sigma[rows], grad2[rows]
            gelu = torch.mul(g, s, out=grad_up[rows])
            # gelu'(x) = s + x s (1 - s) * d(2u)/dx, d(2u)/dx = _TWO_SQRT_2_OVER_PI (1 + 3 _CUBIC x^2), x s = gelu
            slope = torch.addcmul(gelu, gelu, s, value=-1, out=grad_gate[rows])
            slope.mul_(torch.addcmul(k, g, g, value=3 * _TWO_SQRT_2_OVER_PI * _CUBIC)).add_(s).mul_(dy).mul_(up2[rows])
            gelu.mul_(dy)
        return grad_gate.view(grad.shape), grad_up.view(grad.shape)


def geglu(gate: torch.Tensor, up: torch.Tensor, handwritten: bool = True) -> torch.Tensor:
    if handwritten and gate.device.type == "cpu" and gate.dtype == up.dtype == torch.float32:
        return _GeGLU.apply(gate, up)
    # low precision: torch's kernels compute in float32; GPU: torch.compile fuses these two
    return F.gelu(gate, approximate="tanh") * up


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, activation: str, handwritten: bool = True) -> None:
        super().__init__()
        self.activation = activation
        self.handwritten = handwritten  # model.kernels=auto
        self.gated = activation in ("geglu", "swiglu")
        if self.gated:
            self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up_proj(x)
        if self.activation == "geglu":
            hidden = geglu(self.gate_proj(x), up, self.handwritten)
        elif self.activation == "swiglu":
            hidden = F.silu(self.gate_proj(x)) * up
        else:
            hidden = F.gelu(up, approximate="tanh")
        return self.down_proj(hidden)
