"""Real-size presets built on the meta device: counts read off the module tree match the published ones."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from gemmalab.model import (
    Decoder,
    attention_score_entries,
    count_parameters,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    preset,
    training_flops_per_token,
)
from gemmalab.model.norm import RMSNorm


def meta_model(name: str, **changes) -> Decoder:
    cfg = dataclasses.replace(preset(name), **changes)
    with torch.device("meta"):
        return Decoder(cfg)


@pytest.mark.parametrize(
    "name, total",
    [("gemma2-2b", 2_614_341_888), ("gemma2-9b", 9_241_705_984), ("gemma2-27b", 27_227_128_320)],
)
def test_gemma2_parameter_counts_are_exact(name, total):
    assert count_parameters(meta_model(name)) == total


@pytest.mark.parametrize(
    "name, non_embedding, report_embedding, published_billions",
    [("gemma1-2b", 1_981_884_416, 524_550_144, 2.5), ("gemma1-7b", 7_751_248_896, 786_825_216, 8.5)],
)
def test_gemma1_parameter_counts_match_the_report(name, non_embedding, report_embedding, published_billions):
    padded = meta_model(name, vocab_size=256_128)  # the report counts a padded vocabulary
    assert count_parameters(padded, include_embedding=False) == non_embedding
    assert count_parameters(padded) - non_embedding == report_embedding
    assert round(count_parameters(padded) / 1e9, 1) == published_billions


def test_gemma1_2b_is_mqa_prenorm_full_attention():
    model = meta_model("gemma1-2b")
    assert {layer.attn.kv_heads for layer in model.layers} == {1}
    assert {layer.attn.window for layer in model.layers} == {None}
    assert isinstance(model.layers[0].attn_out_norm, nn.Identity) and isinstance(model.layers[0].attn_in_norm, RMSNorm)


def test_kv_cache_of_9b_at_8k_in_bf16():
    """heads x 256 x 8192 x 42 layers x 2 bytes x 2 (K and V): the brief's computation."""
    gqa = meta_model("gemma2-9b")
    mha = meta_model("gemma2-9b", attn=dataclasses.replace(preset("gemma2-9b").attn, kv_heads=16))
    assert kv_cache_bytes(gqa, 8192) == 8 * 256 * 8192 * 42 * 2 * 2 == 2_818_572_288
    assert kv_cache_bytes(mha, 8192) == 2 * kv_cache_bytes(gqa, 8192)
    assert kv_cache_bytes_per_token(gqa) == 8 * 256 * 42 * 2 * 2
    # local layers keep only the last 4096 tokens in a rolling buffer: 21 layers at 4096, 21 at 8192
    assert kv_cache_bytes(gqa, 8192, rolling_local=True) == 8 * 256 * 2 * 2 * (21 * 4096 + 21 * 8192)
    assert kv_cache_bytes(gqa, 8192, batch=4) == 4 * kv_cache_bytes(gqa, 8192)


def test_attention_score_entries_per_layer():
    entries = attention_score_entries(meta_model("gemma2-2b"), 8192)
    # causal: a global layer's query i sees i + 1 keys, a local layer's min(i + 1, 4096)
    assert entries[:2] == [4096 * 4097 // 2 + 4096 * 4096, 8192 * 8193 // 2]
    assert entries[:2] == [sum(min(i + 1, 4096) for i in range(8192)), sum(i + 1 for i in range(8192))]
    assert len(entries) == 26
    full = attention_score_entries(meta_model("gemma1-2b"), 8192)
    assert set(full) == {8192 * 8193 // 2}
    assert 1 - (entries[0] + entries[1]) / (2 * full[0]) == pytest.approx(0.125, abs=1e-3)  # alternating saves 12.5%
    assert attention_score_entries(meta_model("gemma2-2b"), 1024)[0] == 1024 * 1025 // 2  # window beyond context


def test_laptop_presets_build_and_run():
    for name in ("tiny", "laptop"):
        model = Decoder(preset(name))
        logits = model(torch.randint(0, 256, (1, 8)))
        assert logits.shape == (1, 8, 256)


def test_training_flops_per_token_count_every_matmul_and_the_attention_a_query_sees():
    cfg = preset("tiny")  # d 64, 2 layers, 4 heads of 16, 2 KV heads, d_ff 256, vocab 256, alternating, W 32
    with torch.device("meta"):
        model = Decoder(cfg)
    d, hd, layers = cfg.d_model, cfg.head_dim, cfg.n_layers
    weights = layers * (d * hd * (2 * cfg.n_heads + 2 * cfg.attn.kv_heads) + 3 * d * cfg.d_ff) + d * cfg.vocab_size
    t, w = 128, cfg.attn.window
    keys = [(w * (w + 1) / 2 + (t - w) * w) / t, (t + 1) / 2]  # local then global: mean keys per query
    expected = 3 * (2 * weights + sum(4 * cfg.n_heads * hd * k for k in keys))
    assert training_flops_per_token(model, t) == pytest.approx(expected)
    full = dataclasses.replace(cfg, attn=dataclasses.replace(cfg.attn, pattern="full"))
    with torch.device("meta"):
        assert training_flops_per_token(Decoder(full), t) > training_flops_per_token(model, t)
