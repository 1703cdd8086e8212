"""Sizes read off the real module tree: parameters, KV-cache bytes, attention-score entries.

Build real-size presets on the meta device (`with torch.device("meta"): Decoder(cfg)`)
to use these without allocating any weights.
"""

from __future__ import annotations

from torch import nn

from .attention import Attention


def count_parameters(model: nn.Module, include_embedding: bool = True) -> int:
    total = sum(p.numel() for p in model.parameters())
    if include_embedding:
        return total
    return total - sum(p.numel() for name, p in model.named_parameters() if name.startswith("embed."))


def _attention_layers(model: nn.Module) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


def kv_cache_bytes_per_token(model: nn.Module, bytes_per_value: int = 2) -> int:
    """K and V for one token across all layers."""
    return sum(2 * a.kv_heads * a.head_dim * bytes_per_value for a in _attention_layers(model))


def kv_cache_bytes(
    model: nn.Module, context: int, bytes_per_value: int = 2, batch: int = 1, rolling_local: bool = False
) -> int:
    """KV cache for `batch` sequences of `context` tokens. With rolling_local, local layers keep
    only their last `window` tokens (a rolling buffer); otherwise every layer keeps the whole context."""
    total = 0
    for a in _attention_layers(model):
        tokens = min(context, a.window) if rolling_local and a.window is not None else context
        total += 2 * a.kv_heads * a.head_dim * bytes_per_value * tokens
    return total * batch


def causal_score_entries(t: int, window: int | None) -> int:
    """Score entries of one head over t queries when a kernel computes only the unmasked ones: query i
    sees min(i + 1, W) keys, so t(t+1)/2 for a global layer."""
    w = t if window is None else min(t, window)
    return w * (w + 1) // 2 + (t - w) * w


def attention_score_entries(model: nn.Module, context: int) -> list[int]:
    """Per layer, the query-key score entries one head computes at this context, counted the way a kernel
    that skips masked entries works (causal for every layer, the window for local ones)."""
    return [causal_score_entries(context, a.window) for a in _attention_layers(model)]


def training_flops_per_token(model: nn.Module, context: int) -> float:
    """Training FLOPs per token at this context, forward + backward = 3 x forward: 2 per weight of every
    matmul (the tied embedding counted once, as the output head: the input lookup is no matmul), and per
    layer and head the q.k and p.v products over the keys a query sees on average (causal, the window for
    local layers, as a kernel that skips masked entries computes)."""
    matmul = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    attention = sum(2 * 2 * a.n_heads * a.head_dim * causal_score_entries(context, a.window) / context
                    for a in _attention_layers(model))  # fmt: skip
    return 3 * (2 * matmul + attention)
