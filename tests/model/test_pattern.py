from __future__ import annotations

import pytest

from gemmalab.model import AttnConfig
from gemmalab.model.pattern import layer_is_local


def kinds(**attn) -> str:
    return "".join("L" if local else "G" for local in layer_is_local(AttnConfig(**attn), 12))


@pytest.mark.parametrize(
    "attn, expected",
    [
        (dict(pattern="full"), "GGGGGGGGGGGG"),
        (dict(pattern="local"), "LLLLLLLLLLLL"),
        (dict(pattern="alt"), "LGLGLGLGLGLG"),  # Gemma 2: layer 0 local
        (dict(pattern="alt", first="global"), "GLGLGLGLGLGL"),  # the project brief's "even layers global"
        (dict(pattern="alt", local_global_ratio=5), "LLLLLGLLLLLG"),  # Gemma 3
        (dict(pattern="alt", local_global_ratio=2, first="global"), "GLLGLLGLLGLL"),
        (dict(pattern="full", local_global_ratio=5, first="global"), "GGGGGGGGGGGG"),
    ],
)
def test_layer_kinds(attn, expected):
    assert kinds(**attn) == expected


def test_matches_transformers_layer_types():
    """transformers' own layer_types for Gemma 2 (alternating, local first) and Gemma 3 (5 local : 1 global)."""
    transformers = pytest.importorskip("transformers")

    def local_layers(config) -> list[bool]:
        return [kind == "sliding_attention" for kind in config.layer_types]

    gemma2 = transformers.Gemma2Config(num_hidden_layers=12)
    assert layer_is_local(AttnConfig(pattern="alt"), 12) == local_layers(gemma2)
    gemma3 = transformers.Gemma3TextConfig(num_hidden_layers=12)
    assert layer_is_local(AttnConfig(pattern="alt", local_global_ratio=5), 12) == local_layers(gemma3)
