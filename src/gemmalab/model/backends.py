"""Attention backends behind one interface: causal attention with an optional
sliding window and an optional soft-cap on the scores.

All take q of shape (B, n_heads, T, head_dim) and k, v of shape
(B, kv_heads, S, head_dim); query head h reads KV head h // (n_heads / kv_heads).
Scores follow the reference order: scale, soft-cap, mask, float32 softmax.

- eager: plain PyTorch, every device, autograd; the reference.
- sdpa:  torch's fused scaled_dot_product_attention; cannot soft-cap scores.
- flex:  FlexAttention, soft-cap as score_mod and the window as a block mask;
         compiled on CUDA (torch 2.13 has no FlexAttention backward on CPU).
- blocked: plain PyTorch in query blocks with a hand-written backward
         (blocked_attention.py): the fast exact path for capped scores on CPU.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .blocked_attention import blocked_attention
from .mask import allowed_keys, blocks_pay_off, query_block, query_blocks, visible
from .softcap import soft_cap


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, cap: float | None, window: int | None
) -> torch.Tensor:
    batch, n_heads, t, head_dim = q.shape
    kv_heads, s = k.shape[1], k.shape[2]
    group = n_heads // kv_heads
    # the query heads of one KV head as one (group * t) x head_dim matrix: a plain batched matmul
    # per KV head, with no broadcast copy of k and v across the group
    q = q.reshape(batch, kv_heads, group * t, head_dim)
    scores = torch.matmul(q, k.transpose(-1, -2)).view(batch, kv_heads, group, t, s) * scale
    scores = soft_cap(scores, cap)
    positions = torch.arange(s, device=q.device)
    allowed = allowed_keys(positions[s - t :], positions, window)
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    out = torch.matmul(probs.view(batch, kv_heads, group * t, s), v)
    return out.view(batch, n_heads, t, head_dim)


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, cap: float | None, window: int | None
) -> torch.Tensor:
    if cap is not None:
        raise ValueError("the sdpa backend cannot soft-cap attention scores; use eager or flex")
    t, s = q.shape[2], k.shape[2]
    if window is None and t == s:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
    positions = torch.arange(s, device=q.device)
    mask = allowed_keys(positions[s - t :], positions, window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)


@functools.lru_cache(maxsize=64)
def _block_mask(t: int, s: int, window: int | None, device: str):
    from torch.nn.attention.flex_attention import create_block_mask

    shift = s - t

    def causal_window(b, h, q_idx, kv_idx):
        return visible(q_idx + shift - kv_idx, window)

    return create_block_mask(causal_window, None, None, t, s, device=device)


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, cap: float | None, window: int | None
) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention as flex_eager

    score_mod = None
    if cap is not None:

        def score_mod(score, b, h, q_idx, kv_idx):
            return cap * torch.tanh(score / cap)

    block_mask = _block_mask(q.shape[2], k.shape[2], window, str(q.device))
    flex = _compiled_flex() if q.is_cuda else flex_eager
    return flex(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=True)


def local_attention_in_blocks(
    attend, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, cap: float | None, window: int
) -> torch.Tensor:
    """Sliding-window attention at O(T * W) cost: queries in blocks of W // 2, each against only the
    keys its window can reach (at most 1.5 W of them), never the full T x T score matrix. Exact:
    each block is the same backend on a slice whose queries are the slice's last positions."""
    outs = [
        attend(q[:, :, q0:q1], k[:, :, k0:k1], v[:, :, k0:k1], scale, cap, window)
        for q0, q1, k0, k1 in query_blocks(q.shape[2], q.shape[2], window, query_block(window, window))
    ]
    return torch.cat(outs, dim=2)


BACKENDS = {"eager": eager_attention, "sdpa": sdpa_attention, "flex": flex_attention, "blocked": blocked_attention}


def attend_sequence(
    backend: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, cap: float | None,
    window: int | None,
) -> torch.Tensor:  # fmt: skip
    """Attention of a whole sequence on `backend`: a local layer on a backend that builds every score (eager,
    sdpa) attends in blocks of its window once that pays off (O(T * W)); flex and blocked skip what a
    window cuts themselves."""
    if backend in ("eager", "sdpa") and blocks_pay_off(q.shape[2], window):
        return local_attention_in_blocks(BACKENDS[backend], q, k, v, scale, cap, window)
    return BACKENDS[backend](q, k, v, scale, cap, window)


def resolve_backend(requested: str, device: torch.device, cap: float | None, handwritten: bool = True) -> str:
    """auto: FlexAttention on CUDA; elsewhere sdpa when no score cap is set, otherwise blocked (eager
    with model.kernels=reference)."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "flex"
    if cap is None:
        return "sdpa"
    return "blocked" if handwritten else "eager"
