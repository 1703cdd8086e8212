"""Does a switch bite? Measurements of how much the caps and the window change what a model computes,
taken on the stats steps (trainer.stats_every) in one extra no-grad q.k pass per layer.

Soft-caps: cap * tanh(s / cap) is within 2% of s while |s| < cap / 4 and 7.6% below it at
|s| = cap / 2; a score beyond cap / 2 is one the cap really bends. Per layer we log the share
of (causally visible) scores beyond cap / 2 and the largest |s| / cap; the same for the final
logits. A run with a cap off is measured against the cap it would have had (Gemma 2's 50 / 30,
the SoftcapConfig defaults), so the on and off arms of a study report comparable numbers.

Window: on a global layer, the share of attention probability on keys a local layer would not
see (further back than attn.window): what making that layer local would cut. A local layer puts
nothing there by construction, so it is not logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .config import SoftcapConfig
from .mask import allowed_keys, query_block, query_blocks
from .softcap import soft_cap

REFERENCE_CAPS = SoftcapConfig()  # what a cap that is off is measured against
GLOBAL_QUERY_BLOCK = 256  # queries per block of a global layer: bounds the (B, H, 256, T) scores held at once


def reference_cap(cap: float | None, default: float | None) -> float:
    return float(cap if cap is not None else default)


class Recorder:
    """The diagnostics of one forward pass: the decoder owns one and its layers write to it, on the steps it
    records (trainer.stats_every); otherwise it is off and costs one attribute check per layer.

        with model.recorder.recording() as stats:
            logits = model(input_ids)   # stats: {"attn/max_logit/layer_0": tensor, ...}
    """

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] | None = None

    @property
    def on(self) -> bool:
        return self.values is not None

    def record(self, values: dict[str, torch.Tensor]) -> None:
        self.values.update(values)

    @contextlib.contextmanager
    def recording(self) -> Iterator[dict[str, torch.Tensor]]:
        self.values = {}
        try:
            yield self.values
        finally:
            self.values = None


@torch.no_grad()
def attention_diagnostics(
    q: torch.Tensor,
    k: torch.Tensor,
    scale: float,
    window: int | None,
    cap: float | None,
    ref_cap: float,
    local_window: int,
) -> dict[str, torch.Tensor]:
    """One layer's scores s = q.k * scale before the cap, over the keys each query may see.

    q: (B, n_heads, T, head_dim), k: (B, kv_heads, S, head_dim), the T queries the last of S positions;
    window: this layer's (None: global); cap: the cap in force (None: off); ref_cap: the cap the
    engagement is measured against; local_window: the window of the model's local layers.
    Returns max_logit (largest s), cap_beyond_half (share of |s| > ref_cap / 2), cap_max_ratio
    (max |s| / ref_cap) and, on a global layer, mass_beyond_window (mean over queries of the
    probability on keys at offset >= local_window); on a local layer, mass_beyond_half_window and
    mass_beyond_quarter_window (the probability on keys at offset >= window / 2, >= window / 4: what
    shrinking the window to W/2, W/4 at inference cuts, Gemma 2's Table 10)."""
    batch, n_heads, t, head_dim = q.shape
    kv_heads, s = k.shape[1], k.shape[2]
    qf = q.float().view(batch, kv_heads, n_heads // kv_heads, t, head_dim)
    kt = k.float().unsqueeze(2).transpose(-1, -2)  # (B, kv_heads, 1, head_dim, S)
    positions = torch.arange(s, device=q.device)
    max_logit = torch.tensor(float("-inf"), device=q.device)
    max_abs = torch.tensor(0.0, device=q.device)
    beyond_half = visible = torch.tensor(0.0, device=q.device)
    # the offsets whose probability counts: the local window on a global layer, W/2 and W/4 on a local one
    cuts = {"mass_beyond_window": local_window} if window is None else {
        "mass_beyond_half_window": window // 2, "mass_beyond_quarter_window": window // 4}  # fmt: skip
    mass = dict.fromkeys(cuts, torch.tensor(0.0, device=q.device))
    for q0, q1, k0, k1 in query_blocks(t, s, window, query_block(window, GLOBAL_QUERY_BLOCK)):
        scores = torch.matmul(qf[..., q0:q1, :], kt[..., k0:k1]) * scale  # (B, kv_heads, group, bq, bk)
        allowed = allowed_keys(positions[s - t + q0 : s - t + q1], positions[k0:k1], window)
        max_logit = torch.maximum(max_logit, scores.masked_fill(~allowed, float("-inf")).amax())
        magnitude = scores.abs().masked_fill(~allowed, 0.0)
        max_abs = torch.maximum(max_abs, magnitude.amax())
        beyond_half = beyond_half + (magnitude > ref_cap / 2).sum()
        visible = visible + allowed.sum() * batch * n_heads
        probs = torch.softmax(soft_cap(scores, cap).masked_fill(~allowed, float("-inf")), dim=-1)
        offset = positions[s - t + q0 : s - t + q1, None] - positions[None, k0:k1]
        for name, cut in cuts.items():
            mass[name] = mass[name] + probs.masked_fill(offset < cut, 0.0).sum()
    out = {"max_logit": max_logit, "cap_beyond_half": beyond_half / visible, "cap_max_ratio": max_abs / ref_cap}
    return out | {name: total / (batch * n_heads * t) for name, total in mass.items()}


@torch.no_grad()
def final_logit_diagnostics(logits: torch.Tensor, ref_cap: float) -> dict[str, torch.Tensor]:
    """The pre-cap output logits (B, T, vocab): largest |z|, share of |z| > ref_cap / 2, max |z| / ref_cap."""
    magnitude = logits.detach().float().abs()
    max_abs = magnitude.amax()
    return {
        "max_abs": max_abs,
        "cap_beyond_half": (magnitude > ref_cap / 2).float().mean(),
        "cap_max_ratio": max_abs / ref_cap,
    }
