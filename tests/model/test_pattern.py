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
    """transformers: layer_types[i] = 'sliding_attention' if (i + 1) % 2 else 'full_attention'."""
    reference = [bool((i + 1) % 2) for i in range(12)]
    assert layer_is_local(AttnConfig(pattern="alt"), 12) == reference
    gemma3 = [(i + 1) % 6 != 0 for i in range(12)]
    assert layer_is_local(AttnConfig(pattern="alt", local_global_ratio=5), 12) == gemma3
