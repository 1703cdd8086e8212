"""The decoder: scaled tied embedding, a stack of blocks, final norm, tied head, final soft-cap."""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from .block import Block
from .config import ModelConfig
from .diagnostics import REFERENCE_CAPS, Recorder, final_logit_diagnostics, reference_cap
from .kv_cache import DecoderCache
from .norm import RMSNorm
from .pattern import layer_is_local
from .rope import rope_cos_sin
from .softcap import soft_cap


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.recorder = Recorder()  # the diagnostics of a forward pass, on the steps that ask (diagnostics.py)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(
            Block(cfg, local, i, self.recorder) for i, local in enumerate(layer_is_local(cfg.attn, cfg.n_layers))
        )
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps, cfg.handwritten_kernels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) for weights; residual output projections scaled by 1/sqrt(2 * n_layers);
        norm weights 0 (the norm multiplies by 1 + weight: gain 1), but a post-norm's, which starts at gain
        model.post_norm_init_gain.

        model.init=paired draws each weight from its own generator, seeded by (torch's seed, the
        parameter's name): a switch that changes some shapes (attn.kv_heads, model.activation) leaves
        every other weight identical under the same seed, so the runs it compares are paired."""
        seed = torch.initial_seed()  # the run's seed: Lightning's seed_everything sets it
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                gain = self.cfg.post_norm_init_gain if name.endswith("out_norm.weight") else 1.0
                nn.init.constant_(param, gain - 1.0)
                continue
            std = self.cfg.init_std
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                std /= math.sqrt(2 * self.cfg.n_layers)
            if self.cfg.init == "shared":
                nn.init.normal_(param, 0.0, std)
            elif not param.is_meta:
                generator = torch.Generator().manual_seed(parameter_seed(seed, name))
                with torch.no_grad():
                    param.copy_(torch.randn(param.shape, generator=generator) * std)

    def forward(self, input_ids: torch.Tensor, cache: DecoderCache | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, vocab). With a cache (generation), input_ids continue the cached
        sequence. While self.recorder records, the pass also writes the logit-growth and engagement
        signals (diagnostics.py): per layer `attn/max_logit/layer_i` (pre-cap),
        `softcap/attn/beyond_half/layer_i`, `softcap/attn/max_ratio/layer_i` and, on global layers,
        `window/mass_beyond/layer_i`; for the output `output/max_abs_logit` (pre-cap), `output/log_z`
        (mean log-partition of the output softmax), `softcap/final/beyond_half` and `softcap/final/max_ratio`."""
        x = self.embed(input_ids)  # (B, T, d_model)
        x = x * torch.tensor(math.sqrt(self.cfg.d_model), dtype=x.dtype)
        start = cache.length if cache is not None else 0
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        cos, sin = rope_cos_sin(positions, self.cfg.head_dim, self.cfg.rope_theta, x.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache.layers[i] if cache is not None else None)
        logits = F.linear(self.final_norm(x), self.embed.weight)  # tied head: (B, T, vocab)
        capped = soft_cap(logits, self.cfg.softcap.final)
        if self.recorder.on:
            self.record_output(logits, capped)
        return capped

    @torch.no_grad()
    def record_output(self, logits: torch.Tensor, capped: torch.Tensor) -> None:
        final = final_logit_diagnostics(logits, reference_cap(self.cfg.softcap.final, REFERENCE_CAPS.final))
        self.recorder.record({
            "softcap/final/beyond_half": final["cap_beyond_half"],
            "softcap/final/max_ratio": final["cap_max_ratio"],
            "output/max_abs_logit": final["max_abs"],
            "output/log_z": torch.logsumexp(capped.detach().float(), dim=-1).mean(),
        })  # fmt: skip


def parameter_seed(seed: int, name: str) -> int:
    """A 63-bit seed for one parameter: stable across processes and Python versions (not hash())."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
