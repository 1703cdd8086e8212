"""Multi-head attention with grouped K/V heads (MHA / GQA / MQA), RoPE, optional QK-norm.

attn.kv_heads sets how many K/V heads the n_heads query heads share;
attn.qk_norm (Gemma 3's replacement for soft-capping) normalises q and k per
head before RoPE; softcap.attn is applied to the scores inside the backend.
"""

from __future__ import annotations

import torch
from torch import nn

from .backends import BACKENDS, attend_sequence, resolve_backend
from .config import ModelConfig
from .diagnostics import REFERENCE_CAPS, Recorder, attention_diagnostics, reference_cap
from .kv_cache import LayerCache
from .norm import RMSNorm
from .rope import apply_rope


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, local: bool, layer: int = 0, recorder: Recorder | None = None) -> None:
        super().__init__()
        self.layer, self.recorder = layer, recorder or Recorder()  # where its diagnostics go: the decoder's
        self.n_heads = cfg.n_heads
        self.kv_heads = cfg.attn.kv_heads
        self.head_dim = cfg.head_dim
        self.window: int | None = cfg.attn.window if local else None
        self.scale = cfg.scale_denominator**-0.5
        self.cap = cfg.softcap.attn
        self.reference_cap = reference_cap(cfg.softcap.attn, REFERENCE_CAPS.attn)  # diagnostics only
        self.local_window = cfg.attn.window  # diagnostics of a global layer: what a local one would cut
        self.backend = cfg.attn.backend
        self.handwritten = cfg.handwritten_kernels
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, self.kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, self.kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)
        self.qk_norm = cfg.attn.qk_norm
        if self.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps, cfg.handwritten_kernels)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps, cfg.handwritten_kernels)

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype, device: torch.device) -> LayerCache:
        """This layer's KV cache for generation: a local layer keeps only its last `window` positions."""
        return LayerCache(self.kv_heads, self.head_dim, self.window, batch, max_len, dtype, device)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model)."""
        batch, t, _ = x.shape
        # (B, T, heads * head_dim) -> (B, T, heads, head_dim) -> (B, heads, T, head_dim)
        q = self.q_proj(x).view(batch, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, t, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.recorder.on:
            self.record(q, k)
        # resolved at every call, not cached on the module: a cache written during forward is state that
        # torch.compile guards on, so the first call's write recompiled the graph at the second
        backend = resolve_backend(self.backend, x.device, self.cap, self.handwritten)
        if cache is not None and cache.length > 0:  # decoding: one new token against the cached keys
            if t != 1:
                raise ValueError(f"decoding with a KV cache takes one token at a time, got {t}")
            k, v = cache.append(k, v)  # every key a layer keeps is visible to the new token
            out = BACKENDS[backend](q, k, v, self.scale, self.cap, None)
        else:
            out = attend_sequence(backend, q, k, v, self.scale, self.cap, self.window)
            if cache is not None:
                cache.append(k, v)
        # (B, heads, T, head_dim) -> (B, T, heads, head_dim) -> (B, T, heads * head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(batch, t, self.n_heads * self.head_dim))

    def record(self, q: torch.Tensor, k: torch.Tensor) -> None:
        """This layer's logit-growth and engagement signals (diagnostics.py), under its layer's names."""
        found = attention_diagnostics(q, k, self.scale, self.window, self.cap, self.reference_cap, self.local_window)
        names = {"max_logit": "attn/max_logit", "cap_beyond_half": "softcap/attn/beyond_half",
                 "cap_max_ratio": "softcap/attn/max_ratio", "mass_beyond_window": "window/mass_beyond",
                 "mass_beyond_half_window": "window/local_beyond_half",
                 "mass_beyond_quarter_window": "window/local_beyond_quarter"}  # fmt: skip
        self.recorder.record({f"{names[k]}/layer_{self.layer}": v for k, v in found.items()})
