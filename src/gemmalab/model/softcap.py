"""Logit soft-capping: cap * tanh(x / cap) bounds |x| below cap, smoothly.

Gemma 2 applies it to attention scores (softcap.attn = 50) and to the final
logits (softcap.final = 30); None turns a cap off.

blocked_attention.py computes the attention cap in the equivalent form
cap * tanh(s / cap) = 2 cap * sigmoid(2 s / cap) - cap (the constant cancels in
softmax), because sigmoid is about twice as fast as tanh on CPU.
"""

from __future__ import annotations

import torch


def soft_cap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    if cap is None:
        return x
    return cap * torch.tanh(x / cap)
