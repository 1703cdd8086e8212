"""KV cache for generation. Global layers keep the whole context; local layers keep only their
last `window` keys and values in a rolling buffer, so their cache stops growing at W tokens.

Keys are stored after RoPE, so the order of slots in the rolling buffer does not matter:
a new token attends to every cached key, and every key a local layer holds is in its window.
"""

from __future__ import annotations

import torch
from torch import nn


class LayerCache:
    """One layer's keys and values, (batch, kv_heads, capacity, head_dim); built by Attention.new_cache."""

    def __init__(
        self, kv_heads: int, head_dim: int, window: int | None, batch: int, max_len: int, dtype: torch.dtype,
        device: torch.device,
    ) -> None:  # fmt: skip
        self.capacity = min(max_len, window) if window is not None else max_len
        shape = (batch, kv_heads, self.capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # tokens seen so far

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new positions (slot = position mod capacity); returns the keys and values to attend to."""
        t = k.shape[2]
        positions = torch.arange(self.length, self.length + t, device=k.device)[-self.capacity :]
        self.k[:, :, positions % self.capacity] = k[:, :, -len(positions) :]
        self.v[:, :, positions % self.capacity] = v[:, :, -len(positions) :]
        self.length += t
        filled = min(self.length, self.capacity)
        return self.k[:, :, :filled], self.v[:, :, :filled]

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class DecoderCache:
    def __init__(self, model: nn.Module, batch: int, max_len: int) -> None:
        param = next(model.parameters())
        self.layers = [layer.attn.new_cache(batch, max_len, param.dtype, param.device) for layer in model.layers]

    @property
    def length(self) -> int:
        return self.layers[0].length

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)
