"""Greedy generation, with the KV cache or by recomputing the whole sequence at every step."""

from __future__ import annotations

import torch

from .decoder import Decoder
from .kv_cache import DecoderCache


@torch.no_grad()
def greedy_generate(model: Decoder, prompt: torch.Tensor, new_tokens: int, use_cache: bool = True) -> torch.Tensor:
    """prompt (B, T) -> (B, T + new_tokens), each new token the argmax of the last position's logits."""
    ids = prompt
    if not use_cache:
        for _ in range(new_tokens):
            ids = torch.cat([ids, model(ids)[:, -1:].argmax(-1)], dim=1)
        return ids
    cache = DecoderCache(model, prompt.shape[0], prompt.shape[1] + new_tokens)
    next_ids = model(prompt, cache=cache)[:, -1:].argmax(-1)
    for _ in range(new_tokens - 1):
        ids = torch.cat([ids, next_ids], dim=1)
        next_ids = model(next_ids, cache=cache)[:, -1:].argmax(-1)
    return torch.cat([ids, next_ids], dim=1) if new_tokens else ids
