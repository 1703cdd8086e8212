"""Window arithmetic, written once: which keys a query may see (causal, and within the last W
positions on a local layer), and how queries are cut into blocks that each read only those keys."""

from __future__ import annotations

import torch


def visible(offset: torch.Tensor, window: int | None) -> torch.Tensor:
    """A key `offset` positions before its query is visible when 0 <= offset < W (offset >= 0 when
    window is None). Elementwise: a mask of any shape, or FlexAttention's per-entry mask_mod."""
    allowed = offset >= 0
    if window is not None:
        allowed = allowed & (offset < window)
    return allowed


def allowed_keys(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """Boolean (T, S): query at position t sees keys t-W+1 .. t (all keys <= t when window is None)."""
    return visible(q_pos[:, None] - k_pos[None, :], window)


def query_block(window: int | None, global_block: int) -> int:
    """Queries per block: `global_block` on a global layer, at most W // 2 on a local one, so that a local
    block's queries together see at most 1.5 W keys."""
    return global_block if window is None else max(1, min(global_block, window // 2))


def blocks_pay_off(t: int, window: int | None) -> bool:
    """Attend a local layer block by block (O(T * W)) once the sequence is longer than twice its window;
    shorter, one masked T x T pass costs less than the blocks' overhead."""
    return window is not None and t > 2 * window


def query_blocks(t: int, s: int, window: int | None, block: int) -> list[tuple[int, int, int, int]]:
    """(first query, end of queries, first key, end of keys) for blocks of `block` queries, each block
    with the keys its queries can see; the t queries are the last t of the s positions."""
    shift = s - t
    blocks = []
    for q0 in range(0, t, block):
        q1 = min(t, q0 + block)
        k0 = 0 if window is None else max(0, q0 + shift - window + 1)
        blocks.append((q0, q1, k0, q1 + shift))
    return blocks
