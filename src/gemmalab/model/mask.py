"""Which keys a query may see: causal, and within the last W positions on a local layer."""

from __future__ import annotations

import torch


def allowed_keys(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """Boolean (T, S): query at position t sees keys t-W+1 .. t (all keys <= t when window is None)."""
    offset = q_pos[:, None] - k_pos[None, :]
    allowed = offset >= 0
    if window is not None:
        allowed = allowed & (offset < window)
    return allowed


def query_blocks(t: int, s: int, window: int | None, block: int) -> list[tuple[int, int, int, int]]:
    """(first query, end of queries, first key, end of keys) for blocks of `block` queries, each block
    with the keys its queries can see; the t queries are the last t of the s positions. With
    block <= W // 2 a local block reads at most 1.5 W keys."""
    shift = s - t
    blocks = []
    for q0 in range(0, t, block):
        q1 = min(t, q0 + block)
        k0 = 0 if window is None else max(0, q0 + shift - window + 1)
        blocks.append((q0, q1, k0, q1 + shift))
    return blocks
