from __future__ import annotations

import pytest

from gemmalab.model import AttnConfig, ModelConfig, SoftcapConfig


def tiny_config(**overrides) -> ModelConfig:
    """A 3-layer model small enough to run many variants per test; window 5 < the test length 12."""
    attn = dict(pattern="alt", window=5, kv_heads=2, backend="eager")
    softcap = dict(attn=50.0, final=30.0)
    for key in list(overrides):
        if key.startswith("attn_"):
            attn[key[5:]] = overrides.pop(key)
        elif key.startswith("softcap_"):
            softcap[key[8:]] = overrides.pop(key)
    base = dict(vocab_size=97, d_model=32, n_layers=3, n_heads=4, head_dim=12, d_ff=48, norm="dual")
    base.update(overrides)
    return ModelConfig(**base, attn=AttnConfig(**attn), softcap=SoftcapConfig(**softcap))


@pytest.fixture
def make_config():
    return tiny_config
