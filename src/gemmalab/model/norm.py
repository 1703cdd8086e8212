"""RMSNorm as in Gemma: scale by (1 + w) with w starting at zero, computed in float32 (or wider).

    y = x * r * (1 + w),   r = 1 / sqrt(mean(x^2) + eps)

The backward is written out (one autograd node instead of eight): with n = x * r and
gs = dy * (1 + w),  dx = r * (gs - n * mean(gs * n))  and  dw = sum over rows of dy * n.
Both passes run in row chunks (chunks.py). On CPU together ~2x faster than autograd over the
spelled-out ops, which matters: a dual-norm model runs four norms per layer. Other devices run the
spelled-out ops.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .chunks import row_chunks


def rms_norm_spelled_out(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The formula as plain ops: the reference, and the path off CPU."""
    h = x.float()
    return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight.float())).type_as(x)


class _RMSNorm(torch.autograd.Function):
    # Saves x (alive anyway in the residual stream) and r, not the normalised x: n is recomputed
    # per chunk in cache, which spares a full-size tensor of memory and a write + read of it.
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        h = x.reshape(-1, x.shape[-1]).to(torch.promote_types(x.dtype, torch.float32))
        scale = 1.0 + weight.to(h.dtype)
        r, out = h.new_empty(h.shape[0], 1), torch.empty_like(h)
        for rows in row_chunks(h):
            torch.rsqrt(h[rows].pow(2).mean(-1, keepdim=True).add_(eps), out=r[rows])
            torch.mul(h[rows], r[rows], out=out[rows]).mul_(scale)
        ctx.save_for_backward(h, r, scale)
        ctx.dtypes = (x.dtype, weight.dtype)
        return out.view(x.shape).to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        h, r, scale = ctx.saved_tensors
        grad2 = grad.reshape(h.shape).to(h.dtype)
        grad_x, grad_weight = torch.empty_like(h), torch.zeros_like(scale)
        for rows in row_chunks(h):
            n, dy = h[rows] * r[rows], grad2[rows]
            grad_weight += (dy * n).sum(0)
            gs = torch.mul(dy, scale, out=grad_x[rows])
            gs.addcmul_(n, (gs * n).mean(-1, keepdim=True), value=-1).mul_(r[rows])
        x_dtype, w_dtype = ctx.dtypes
        return grad_x.view(grad.shape).to(x_dtype), grad_weight.to(w_dtype), None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, handwritten: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.handwritten = handwritten  # model.kernels=auto
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and self.handwritten:
            return _RMSNorm.apply(x, self.weight, self.eps)
        return rms_norm_spelled_out(x, self.weight, self.eps)  # torch.compile fuses it; chunks would be tiny kernels
