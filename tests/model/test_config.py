from __future__ import annotations

import pytest

from gemmalab.model import ConfigError, Decoder

from .conftest import tiny_config

BAD = [
    (dict(attn_kv_heads=3), "attn.kv_heads=3 must divide model.n_heads=4 (allowed: 1, 2, 4)"),
    (dict(attn_kv_heads=0), "attn.kv_heads=0 is not allowed (allowed: an integer >= 1)"),
    (dict(softcap_attn=0.0), "softcap.attn=0.0 is not allowed (allowed: a number > 0, or null for off)"),
    (dict(softcap_final=-30.0), "softcap.final=-30.0 is not allowed (allowed: a number > 0, or null for off)"),
    (dict(attn_window=0), "attn.window=0 is not allowed (allowed: an integer >= 1)"),
    (dict(attn_local_global_ratio=0), "attn.local_global_ratio=0 is not allowed (allowed: an integer >= 1)"),
    (dict(attn_pattern="sparse"), "attn.pattern='sparse' is not allowed (allowed: full, alt, local)"),
    (dict(attn_first="middle"), "attn.first='middle' is not allowed (allowed: local, global)"),
    (dict(norm="sandwich"), "norm='sandwich' is not allowed (allowed: pre, post, dual, postln)"),
    (dict(activation="relu"), "model.activation='relu' is not allowed (allowed: geglu, swiglu, gelu)"),
    (
        dict(attn_backend="xformers"),
        "attn.backend='xformers' is not allowed (allowed: auto, eager, sdpa, flex, blocked)",
    ),
    (dict(attn_backend="sdpa"), "attn.backend=sdpa cannot apply softcap.attn=50.0"),
    (dict(attn_query_pre_attn_scalar=-1), "attn.query_pre_attn_scalar=-1 is not allowed"),
    (dict(head_dim=2.5), "model.head_dim=2.5 is not allowed (allowed: an integer >= 1)"),
    (dict(attn_qk_norm="yes"), "attn.qk_norm='yes' is not allowed (allowed: true, false)"),
]


@pytest.mark.parametrize("overrides, message", BAD)
def test_impossible_config_raises_one_line_naming_key_value_and_allowed(overrides, message):
    with pytest.raises(ConfigError) as err:
        tiny_config(**overrides)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_config_accepts_nested_dicts_as_from_yaml():
    cfg = tiny_config()
    from dataclasses import asdict

    rebuilt = type(cfg)(**asdict(cfg))
    assert rebuilt == cfg
    assert Decoder(rebuilt).cfg.attn.window == 5
