"""Generation with the KV cache (rolling buffers on local layers) gives exactly what recomputation gives."""

from __future__ import annotations

import pytest
import torch

from gemmalab.model import Decoder, kv_cache_bytes
from gemmalab.model.generate import greedy_generate
from gemmalab.model.kv_cache import DecoderCache

from .conftest import tiny_config


def diverse_model(**overrides) -> Decoder:
    """Random weights large enough that greedy decoding does not repeat one token."""
    torch.manual_seed(0)
    model = Decoder(tiny_config(**overrides)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 1.0)
            elif "embed" not in name:
                param.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("pattern", ["alt", "local", "full"])
@pytest.mark.parametrize(
    "kv_heads, cap, backend", [(2, 50.0, "eager"), (1, None, "sdpa"), (4, None, "auto"), (2, 50.0, "auto")]
)
def test_cached_greedy_generation_equals_recomputation(pattern, kv_heads, cap, backend):
    model = diverse_model(attn_pattern=pattern, attn_kv_heads=kv_heads, softcap_attn=cap, attn_backend=backend)
    prompt = torch.randint(0, 97, (3, 7), generator=torch.Generator().manual_seed(1))
    cached = greedy_generate(model, prompt, 30, use_cache=True)
    recomputed = greedy_generate(model, prompt, 30, use_cache=False)
    assert torch.equal(cached, recomputed)
    assert cached.shape == (3, 37) and len(set(cached[0, 7:].tolist())) > 5  # a test that could fail


def test_every_cached_step_gives_the_logits_of_the_full_sequence():
    model = diverse_model()
    ids = torch.randint(0, 97, (2, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids)
        cache = DecoderCache(model, 2, 24)
        steps = [model(ids[:, :4], cache=cache)[:, -1]]
        steps += [model(ids[:, t : t + 1], cache=cache)[:, -1] for t in range(4, 24)]
    torch.testing.assert_close(torch.stack(steps, dim=1), full[:, 3:], atol=1e-5, rtol=1e-5)


def test_local_layers_keep_only_their_window():
    model = diverse_model(attn_window=5)
    cache = DecoderCache(model, batch=2, max_len=40)
    assert [layer.capacity for layer in cache.layers] == [5, 40, 5]
    assert cache.nbytes == kv_cache_bytes(model, 40, bytes_per_value=4, batch=2, rolling_local=True)
    with torch.no_grad():
        model(torch.randint(0, 97, (2, 12)), cache=cache)
        model(torch.randint(0, 97, (2, 1)), cache=cache)
    assert cache.length == 13 and cache.layers[0].length == 13


def test_decoding_several_tokens_at_once_is_refused():
    model = diverse_model()
    cache = DecoderCache(model, 1, 20)
    with torch.no_grad():
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="one token at a time"):
            model(torch.zeros(1, 2, dtype=torch.long), cache=cache)


def test_long_local_layers_use_blocks_and_stay_exact():
    """At T > 2W a local layer attends block by block; outputs and gradients match one full masked pass."""
    from gemmalab.model.backends import eager_attention, local_attention_in_blocks

    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 50, 8, generator=g, requires_grad=True)
    k = torch.randn(2, 2, 50, 8, generator=g, requires_grad=True)
    v = torch.randn(2, 2, 50, 8, generator=g, requires_grad=True)
    blocked = local_attention_in_blocks(eager_attention, q, k, v, 0.3, 5.0, 7)
    whole = eager_attention(q, k, v, 0.3, 5.0, 7)
    torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(blocked.sum(), (q, k, v)), torch.autograd.grad(whole.sum(), (q, k, v)),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_local_layer_takes_the_block_path_only_beyond_twice_its_window(monkeypatch):
    import gemmalab.model.backends as backends

    calls = []
    real = backends.local_attention_in_blocks
    monkeypatch.setattr(backends, "local_attention_in_blocks", lambda *a: calls.append(a[1].shape[2]) or real(*a))
    model = diverse_model(attn_pattern="alt", attn_window=4)
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 8)))
        assert calls == []
        model(torch.randint(0, 97, (1, 30)))
    assert calls == [30, 30]  # layers 0 and 2 are local; layer 1 is global
