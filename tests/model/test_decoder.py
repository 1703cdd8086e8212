"""Each switch changes only what it should; at its neutral setting, nothing at all."""

from __future__ import annotations

import pytest
import torch

from gemmalab.model import Decoder, count_parameters

from .conftest import tiny_config

IDS = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(0))
D_MODEL, N_LAYERS, HEAD_DIM = 32, 3, 12


def build(**overrides) -> Decoder:
    torch.manual_seed(0)
    return Decoder(tiny_config(**overrides))


def shapes(model: Decoder) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def changed_parameters(a: Decoder, b: Decoder) -> set[str]:
    sa, sb = shapes(a), shapes(b)
    return {name for name in sa.keys() | sb.keys() if sa.get(name) != sb.get(name)}


def logits_with_weights_of(reference: Decoder, **overrides) -> torch.Tensor:
    model = Decoder(tiny_config(**overrides))
    model.load_state_dict(reference.state_dict())
    with torch.no_grad():
        return model(IDS)


def unchanged_weights(a: Decoder, b: Decoder) -> set[str]:
    """Parameters both models have, with the same shape and the same values."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return {n for n in pa.keys() & pb.keys() if pa[n].shape == pb[n].shape and torch.equal(pa[n], pb[n])}


@pytest.mark.parametrize("overrides", [dict(attn_kv_heads=1), dict(activation="gelu")], ids=["kv_heads", "activation"])
def test_paired_init_keeps_every_weight_a_switch_does_not_reshape(overrides):
    base, other = build(), build(**overrides)
    assert unchanged_weights(base, other) == set(shapes(base)).intersection(shapes(other)) - changed_parameters(
        base, other
    )
    assert any(p.abs().sum() > 0 for n, p in base.named_parameters() if n.endswith("q_proj.weight"))


def test_shared_init_redraws_every_weight_when_one_shape_changes():
    base, other = build(init="shared"), build(init="shared", attn_kv_heads=1)
    assert all(n.endswith("norm.weight") for n in unchanged_weights(base, other))  # zeros: the same anyway


def test_paired_init_follows_the_seed():
    torch.manual_seed(1)
    assert not torch.equal(Decoder(tiny_config()).embed.weight, build().embed.weight)
    assert torch.equal(build().embed.weight, build().embed.weight)


def test_kv_heads_changes_only_the_kv_projections():
    mha, mqa = build(attn_kv_heads=4), build(attn_kv_heads=1)
    assert {n.rsplit(".", 2)[-2] for n in changed_parameters(mha, mqa)} == {"k_proj", "v_proj"}
    assert count_parameters(mha) - count_parameters(mqa) == 2 * D_MODEL * HEAD_DIM * 3 * N_LAYERS


def test_caps_pattern_ratio_window_and_first_add_no_parameters():
    base = build()
    for overrides in [
        dict(softcap_attn=None, softcap_final=None),
        dict(attn_pattern="full"),
        dict(attn_pattern="local", attn_window=2),
        dict(attn_local_global_ratio=5, attn_first="global"),
        dict(attn_query_pre_attn_scalar=7.0),
    ]:
        assert shapes(build(**overrides)) == shapes(base), overrides


def test_norm_placement_adds_exactly_its_norm_weights():
    pre, dual = build(norm="pre"), build(norm="dual")
    assert changed_parameters(pre, dual) == {
        f"layers.{i}.{n}.weight" for i in range(N_LAYERS) for n in ("attn_out_norm", "mlp_out_norm")
    }
    assert count_parameters(dual) - count_parameters(pre) == 2 * D_MODEL * N_LAYERS
    assert count_parameters(build(norm="post")) == count_parameters(pre) == count_parameters(build(norm="postln"))


def test_qk_norm_adds_two_head_dim_norms_per_layer():
    assert count_parameters(build(attn_qk_norm=True)) - count_parameters(build()) == 2 * HEAD_DIM * N_LAYERS


def test_activation_gelu_drops_the_gate():
    assert count_parameters(build(activation="geglu")) - count_parameters(build(activation="gelu")) == (
        D_MODEL * 48 * N_LAYERS
    )
    assert count_parameters(build(activation="swiglu")) == count_parameters(build(activation="geglu"))


@pytest.mark.parametrize(
    "neutral, without",
    [
        (dict(attn_pattern="alt", attn_window=12), dict(attn_pattern="full")),  # window covers the sequence
        (dict(attn_pattern="local", attn_window=100), dict(attn_pattern="full")),
        (dict(attn_query_pre_attn_scalar=float(HEAD_DIM)), dict(attn_query_pre_attn_scalar=None)),
        (dict(attn_pattern="full", attn_local_global_ratio=3, attn_first="global"), dict(attn_pattern="full")),
        (dict(attn_pattern="local", attn_first="global"), dict(attn_pattern="local")),
    ],
)
def test_neutral_setting_is_bit_identical(neutral, without):
    reference = build(**without)
    assert torch.equal(logits_with_weights_of(reference, **neutral), logits_with_weights_of(reference, **without))


@pytest.mark.parametrize(
    "switch",
    [
        dict(attn_pattern="full"),
        dict(attn_window=2),
        dict(attn_first="global"),
        dict(softcap_attn=0.5),
        dict(softcap_final=1.0),
        dict(attn_query_pre_attn_scalar=3.0),
        dict(rope_theta=100.0),
    ],
)
def test_each_switch_changes_the_output_when_not_neutral(switch):
    reference = build()
    assert not torch.allclose(logits_with_weights_of(reference, **switch), logits_with_weights_of(reference))


def test_gqa_equals_mha_with_repeated_kv_heads():
    gqa = build(attn_kv_heads=2)
    state = gqa.state_dict()
    for name in list(state):
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            per_head = state[name].view(2, HEAD_DIM, D_MODEL)
            state[name] = per_head.repeat_interleave(2, dim=0).reshape(4 * HEAD_DIM, D_MODEL)
    mha = Decoder(tiny_config(attn_kv_heads=4))
    mha.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(mha(IDS), gqa(IDS), atol=1e-6, rtol=1e-6)


def test_final_cap_bounds_logits():
    model = build(softcap_final=2.0)
    with torch.no_grad():
        model.embed.weight.mul_(100)
        with model.recorder.recording() as stats:
            model(IDS)
        assert stats["output/max_abs_logit"] > 10.0
        assert model(IDS).abs().max() <= 2.0  # tanh saturates to exactly 1 in float32


def test_postln_normalises_the_residual_stream():
    model = build(norm="postln")
    seen = []
    model.layers[0].register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        model(IDS)
    rms = seen[0].pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "backend, cap", [("eager", 50.0), ("sdpa", None), ("auto", None), ("auto", 50.0), ("blocked", None)]
)
def test_backends_train_on_cpu_and_agree_with_eager(backend, cap):
    reference = build(softcap_attn=cap)
    model = Decoder(tiny_config(softcap_attn=cap, attn_backend=backend))
    model.load_state_dict(reference.state_dict())
    for m in (model, reference):
        m(IDS).logsumexp(-1).mean().backward()
    for (name, p), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, ref.grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), reference(IDS), atol=1e-5, rtol=1e-5)


def test_stats_are_off_by_default_and_match_brute_force_when_on():
    model = build(attn_qk_norm=True)
    with torch.no_grad():
        model.embed.weight.mul_(20)
    assert isinstance(model(IDS), torch.Tensor)
    captured = []
    model.layers[1].attn.register_forward_pre_hook(lambda module, args: captured.append(args))
    with torch.no_grad():
        with model.recorder.recording() as stats:
            logits = model(IDS)
        assert torch.equal(logits, model(IDS))
    per_layer = ["attn/max_logit", "softcap/attn/beyond_half", "softcap/attn/max_ratio"]
    assert sorted(stats) == sorted(
        [f"{name}/layer_{i}" for name in per_layer for i in range(N_LAYERS)]
        + ["window/mass_beyond/layer_1"]  # the only global layer of alt with 3 layers
        + [f"window/local_beyond_{cut}/layer_{i}" for cut in ("half", "quarter") for i in (0, 2)]
        + ["output/log_z", "output/max_abs_logit", "softcap/final/beyond_half", "softcap/final/max_ratio"]
    )
    # brute force for layer 1 (global): max over s <= t of q_t . k_s / sqrt(head_dim), before the cap
    attn = model.layers[1].attn
    x, cos, sin = captured[0][:3]
    from gemmalab.model.rope import apply_rope

    with torch.no_grad():
        q = apply_rope(attn.q_norm(attn.q_proj(x).view(2, 12, 4, HEAD_DIM).transpose(1, 2)), cos, sin)
        k = apply_rope(attn.k_norm(attn.k_proj(x).view(2, 12, 2, HEAD_DIM).transpose(1, 2)), cos, sin)
    expected = max(
        float(q[b, h, t] @ k[b, h // 2, s]) / HEAD_DIM**0.5
        for b in range(2)
        for h in range(4)
        for t in range(12)
        for s in range(t + 1)
    )
    assert float(stats["attn/max_logit/layer_1"]) == pytest.approx(expected, rel=1e-5)
    assert float(stats["output/log_z"]) == pytest.approx(float(torch.logsumexp(logits, -1).mean()), rel=1e-6)


def test_reference_kernels_compute_what_the_handwritten_ones_do():
    """model.kernels=reference (plain autograd over the spelled-out math) against auto (blocked attention,
    RMSNorm and GeGLU with written-out backwards) on CPU: the same logits and gradients."""
    torch.manual_seed(0)
    fast = Decoder(tiny_config(attn_backend="auto"))
    slow = Decoder(tiny_config(attn_backend="auto", kernels="reference"))
    slow.load_state_dict(fast.state_dict())
    with torch.no_grad():  # trained-looking weights: the zero-initialised norm gains would hide a wrong scale
        for model in (fast, slow):
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.copy_(torch.linspace(-0.5, 0.5, p.numel()))
    for model in (fast, slow):
        model(IDS).float().logsumexp(-1).mean().backward()
    torch.testing.assert_close(fast(IDS), slow(IDS), atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(fast.named_parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    assert fast.final_norm.handwritten and not slow.final_norm.handwritten


def test_a_postln_checkpoint_from_before_the_residual_norm_was_named_loads_into_the_same_model():
    model = build(norm="postln")
    with torch.no_grad():
        model.layers[0].attn_res_norm.weight.fill_(0.5)  # a trained gain, carried over under its old name
    old_names = {k.replace("_res_norm.", "_out_norm."): v for k, v in model.state_dict().items()}  # as saved then
    again = build(norm="postln")
    again.load_state_dict(old_names)
    with torch.no_grad():
        assert torch.equal(again(IDS), model(IDS))


@pytest.mark.parametrize("norm", ["dual", "post"])
def test_a_post_norm_starts_at_its_initial_gain_and_every_other_norm_at_one(norm):
    model, unit = build(norm=norm, post_norm_init_gain=0.1), build(norm=norm)
    seen = []
    for m in (model, unit):
        m.layers[0].attn_out_norm.register_forward_hook(lambda module, args, out: seen.append(out))
        with torch.no_grad():
            m(IDS)
    # what the first sub-layer adds to the residual stream at step 0: a tenth of what Gemma 2's gain 1 adds
    torch.testing.assert_close(seen[0], 0.1 * seen[1], atol=1e-6, rtol=1e-5)
    gains = {n: float(p.mean()) + 1 for n, p in model.named_parameters() if n.endswith("norm.weight")}
    assert {n for n, g in gains.items() if abs(g - 0.1) < 1e-6} == {n for n in gains if n.endswith("out_norm.weight")}
    assert all(abs(g - 1.0) < 1e-6 for n, g in gains.items() if not n.endswith("out_norm.weight"))
    assert unchanged_weights(model, build(norm=norm)) == {n for n in gains if not n.endswith("out_norm.weight")} | {
        n for n, _ in model.named_parameters() if not n.endswith("norm.weight")}  # fmt: skip
