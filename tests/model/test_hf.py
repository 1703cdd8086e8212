"""from_hf_gemma2: logits equal transformers' eager Gemma 2 within 1e-5 in float32."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from gemmalab.model import ConfigError, from_hf_gemma2  # noqa: E402

PARITY_CASES = {
    "window shorter than the sequence, kv 2": dict(num_key_value_heads=2, sliding_window=5),
    "MQA": dict(num_key_value_heads=1, sliding_window=7),
    "head_dim != d_model / n_heads, qpas != head_dim": dict(head_dim=40, query_pre_attn_scalar=17, sliding_window=4),
    "window longer than the sequence, MHA": dict(num_key_value_heads=4, sliding_window=64),
    "caps off": dict(attn_logit_softcapping=None, final_logit_softcapping=None, sliding_window=3),
    "rope theta 1e6, 6 layers": dict(num_hidden_layers=6, rope_theta=1e6, sliding_window=6),
}


def reference_model(**overrides) -> transformers.Gemma2ForCausalLM:
    kwargs = dict(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=24, sliding_window=5, query_pre_attn_scalar=24,
        max_position_embeddings=64, attn_implementation="eager",
    )  # fmt: skip
    kwargs.update(overrides)
    torch.manual_seed(0)
    model = transformers.Gemma2ForCausalLM(transformers.Gemma2Config(**kwargs)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:  # they start at zero, which would leave the (1 + w) path untested
                param.normal_(0.0, 0.5)
            elif "embed" in name:
                param.normal_(0.0, 0.5)  # large enough that both soft-caps bite
    return model


@pytest.mark.parametrize("case", PARITY_CASES)
def test_logits_match_reference(case):
    ref = reference_model(**PARITY_CASES[case])
    ours = from_hf_gemma2(ref)
    ids = torch.randint(0, 128, (2, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(ids, use_cache=False).logits
        got = ours(ids)
    assert expected.abs().max() > 1.0
    assert (got - expected).abs().max() <= 1e-5


def test_parity_test_detects_an_off_by_one_window():
    ref = reference_model(sliding_window=5)
    ours = from_hf_gemma2(ref)
    for layer in ours.layers[::2]:
        layer.attn.window = 6  # t-W ... t instead of t-W+1 ... t
    ids = torch.randint(0, 128, (1, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(ids) - ref(ids, use_cache=False).logits).abs().max() > 1e-3


def test_loaded_model_config_and_dtype():
    ref = reference_model()
    ours = from_hf_gemma2(ref)
    assert ours.embed.weight.dtype == torch.float32
    assert ours.cfg.attn.window == 5 and ours.cfg.attn.kv_heads == 2 and ours.cfg.norm == "dual"
    assert [layer.attn.window for layer in ours.layers] == [5, None, 5, None]


def test_non_alternating_layer_types_are_refused():
    ref = reference_model(layer_types=["full_attention"] * 4)
    with pytest.raises(ConfigError, match="layer_types"):
        from_hf_gemma2(ref)


def test_exact_gelu_is_refused_not_approximated():
    ref = reference_model(hidden_activation="gelu")
    with pytest.raises(ConfigError, match=r"hidden_activation='gelu' is not supported \(allowed: gelu_pytorch_tanh"):
        from_hf_gemma2(ref)
