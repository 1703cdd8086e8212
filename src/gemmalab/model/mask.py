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
