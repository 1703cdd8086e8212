"""RMSNorm as in Gemma: scale by (1 + w) with w starting at zero, computed in float32 (or wider).

    y = x * r * (1 + w),   r = 1 / sqrt(mean(x^2) + eps)

The backward is written out (one autograd node instead of eight): with n = x * r and
gs = dy * (1 + w),  dx = r * (gs - n * mean(gs * n))  and  dw = sum over rows of dy * n.
It halves the norm's share of a CPU training step; a dual-norm model runs five norms per layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        h = x.to(torch.promote_types(x.dtype, torch.float32))
        r = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        normed = h * r
        scale = 1.0 + weight.to(h.dtype)
        ctx.save_for_backward(normed, r, scale)
        ctx.dtypes = (x.dtype, weight.dtype)
        return (normed * scale).to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        normed, r, scale = ctx.saved_tensors
        grad = grad.to(normed.dtype)
        grad_weight = (grad * normed).flatten(0, -2).sum(0)
        gs = grad * scale
        grad_x = torch.addcmul(gs, normed, (gs * normed).mean(-1, keepdim=True), value=-1).mul_(r)
        x_dtype, w_dtype = ctx.dtypes
        return grad_x.to(x_dtype), grad_weight.to(w_dtype), None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RMSNorm.apply(x, self.weight, self.eps)
