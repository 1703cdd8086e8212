"""Which layers attend locally (sliding window) and which globally.

This is the only place that reads attn.pattern, attn.local_global_ratio and attn.first.
With first=local (the reference implementations), layer i is global when
(i + 1) % (ratio + 1) == 0: ratio 1 gives Gemma 2's local, global, local, ...;
ratio 5 gives Gemma 3's five local layers per global one.
With first=global, layer i is global when i % (ratio + 1) == 0.
"""

from __future__ import annotations

from .config import AttnConfig


def layer_is_local(attn: AttnConfig, n_layers: int) -> list[bool]:
    if attn.pattern == "full":
        return [False] * n_layers
    if attn.pattern == "local":
        return [True] * n_layers
    period = attn.local_global_ratio + 1
    offset = 1 if attn.first == "local" else 0
    return [(i + offset) % period != 0 for i in range(n_layers)]
