from __future__ import annotations

import pytest
import torch

from gemmalab.model import Decoder
from gemmalab.model.diagnostics import attention_diagnostics, final_logit_diagnostics

from .conftest import tiny_config


def qk(t: int, n_heads: int = 4, kv_heads: int = 2, head_dim: int = 16, spread: float = 1.0):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, n_heads, t, head_dim, generator=g) * spread
    k = torch.randn(2, kv_heads, t, head_dim, generator=g) * spread
    return q, k


def visible_scores(q, k, scale, window):
    """Every score a query may see, one by one: [(b, h, i, j, s)]."""
    n_heads, kv_heads, t = q.shape[1], k.shape[1], q.shape[2]
    group = n_heads // kv_heads
    return [
        (b, h, i, j, float(q[b, h, i] @ k[b, h // group, j]) * scale)
        for b in range(q.shape[0])
        for h in range(n_heads)
        for i in range(t)
        for j in range(max(0, i - window + 1) if window else 0, i + 1)
    ]


@pytest.mark.parametrize("t, window", [(9, 3), (60, 7), (20, None), (300, None)])  # 60 > 2W and 300 > one block
def test_max_logit_and_cap_engagement_are_the_brute_force_figures(t, window):
    q, k = qk(t, spread=2.0)
    cap = 8.0
    got = attention_diagnostics(q, k, 0.5, window, cap=None, ref_cap=cap, local_window=4)
    scores = torch.tensor([s for *_, s in visible_scores(q, k, 0.5, window)])
    assert float(got["max_logit"]) == pytest.approx(float(scores.max()), rel=1e-6)
    assert float(got["cap_max_ratio"]) == pytest.approx(float(scores.abs().max()) / cap, rel=1e-6)
    beyond = float((scores.abs() > cap / 2).float().mean())
    assert 0.05 < beyond < 0.95  # the test exercises both sides of the threshold
    assert float(got["cap_beyond_half"]) == pytest.approx(beyond, abs=1e-6)
    assert ("mass_beyond_window" in got) == (window is None)
    assert ("mass_beyond_half_window" in got) == (window is not None)


def mass_beyond(q, k, scale: float, cap: float | None, window: int | None, cut: int) -> float:
    """Brute force: the causal softmax over the keys a layer of `window` sees (capped as the layer computes it),
    mean over queries of the probability at offset >= cut."""
    t, group = q.shape[2], q.shape[1] // k.shape[1]
    scores = torch.einsum("bhid,bhjd->bhij", q, k.repeat_interleave(group, 1)) * scale
    if cap is not None:
        scores = cap * torch.tanh(scores / cap)
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    hidden = (j > i) | (i - j >= window) if window is not None else j > i
    probs = torch.softmax(scores.masked_fill(hidden, float("-inf")), -1)
    return float(probs.masked_fill(i - j < cut, 0.0).sum(-1).mean())


@pytest.mark.parametrize("cap", [None, 3.0])
def test_mass_beyond_window_is_the_softmax_probability_on_far_keys(cap):
    t, local_window, scale = 40, 6, 0.25
    q, k = qk(t, spread=1.5)
    got = attention_diagnostics(q, k, scale, None, cap=cap, ref_cap=50.0, local_window=local_window)
    expected = mass_beyond(q, k, scale, cap, None, local_window)  # a global layer: beyond the local window
    assert expected > 0.3
    assert float(got["mass_beyond_window"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cap", [None, 3.0])
def test_a_local_layers_mass_beyond_half_and_a_quarter_of_its_window_is_what_shrinking_it_cuts(cap):
    t, window, scale = 40, 8, 0.25
    q, k = qk(t, spread=1.5)
    got = attention_diagnostics(q, k, scale, window, cap=cap, ref_cap=50.0, local_window=window)
    for name, cut in (("mass_beyond_half_window", window // 2), ("mass_beyond_quarter_window", window // 4)):
        expected = mass_beyond(q, k, scale, cap, window, cut)
        assert 0.1 < expected < 0.9
        assert float(got[name]) == pytest.approx(expected, rel=1e-5)
    assert float(got["mass_beyond_quarter_window"]) > float(got["mass_beyond_half_window"])


def test_no_mass_beyond_a_window_longer_than_the_sequence():
    q, k = qk(12)
    got = attention_diagnostics(q, k, 0.25, None, cap=None, ref_cap=50.0, local_window=12)
    assert float(got["mass_beyond_window"]) == 0.0


def test_final_logit_engagement():
    logits = torch.tensor([[[1.0, -20.0, 16.0, 0.0]]])
    got = final_logit_diagnostics(logits, ref_cap=30.0)
    assert float(got["cap_beyond_half"]) == pytest.approx(0.5)  # |-20| and 16 exceed 15
    assert float(got["cap_max_ratio"]) == pytest.approx(20.0 / 30.0)


def test_a_run_with_caps_off_is_measured_against_gemma_2s_caps():
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))
    on = Decoder(tiny_config())
    off = Decoder(tiny_config(softcap_attn=None, softcap_final=None))
    off.load_state_dict(on.state_dict())
    with torch.no_grad():
        with on.recorder.recording() as stats_on, off.recorder.recording() as stats_off:
            on(ids), off(ids)
    # the same weights give the same pre-cap scores, so the same engagement against 50 and 30
    for key in ("softcap/attn/max_ratio/layer_0", "softcap/final/max_ratio", "softcap/attn/beyond_half/layer_2"):
        assert float(stats_off[key]) == pytest.approx(float(stats_on[key]), rel=1e-5), key
