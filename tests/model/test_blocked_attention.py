from __future__ import annotations

import pytest
import torch

from gemmalab.model.backends import eager_attention
from gemmalab.model.blocked_attention import QUERY_BLOCK, blocked_attention
from gemmalab.model.mask import query_block, query_blocks


def qkv(t: int, s: int | None = None, n_heads: int = 4, kv_heads: int = 2, head_dim: int = 8, std: float = 1.0):
    g = torch.Generator().manual_seed(0)
    s = s or t
    q = torch.randn(2, n_heads, t, head_dim, generator=g) * std
    k = torch.randn(2, kv_heads, s, head_dim, generator=g) * std
    v = torch.randn(2, kv_heads, s, head_dim, generator=g)
    return (x.requires_grad_() for x in (q, k, v))


@pytest.mark.parametrize("t", [1, 7, 64, 150])
@pytest.mark.parametrize("window", [None, 1, 5, 40, 200])
@pytest.mark.parametrize("cap", [None, 3.0, 50.0])
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_forward_and_gradients_match_eager(t, window, cap, kv_heads):
    q, k, v = qkv(t, kv_heads=kv_heads, std=2.0)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))
    out = blocked_attention(q, k, v, 0.3, cap, window)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    expected = eager_attention(q, k, v, 0.3, cap, window)
    expected_grads = torch.autograd.grad(expected, (q, k, v), grad_out)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-4)
    for name, a, b in zip("qkv", grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4, msg=lambda m, n=name: f"d{n}: {m}")


@pytest.mark.parametrize("window", [None, 3])
def test_queries_that_continue_a_longer_key_sequence(window):
    """Decoding and chunked prefill: the t queries are the last t of s positions."""
    q, k, v = qkv(t=5, s=70)
    torch.testing.assert_close(
        blocked_attention(q, k, v, 0.3, 50.0, window), eager_attention(q, k, v, 0.3, 50.0, window)
    )


def test_blocks_cover_every_query_once_and_only_the_keys_it_can_see():
    t, window = 300, 40
    blocks = query_blocks(t, t, window, query_block(window, QUERY_BLOCK))
    assert [q for q0, q1, _, _ in blocks for q in range(q0, q1)] == list(range(t))
    for q0, q1, k0, k1 in blocks:
        assert k0 == max(0, q0 - window + 1) and k1 == q1  # first key of the first query, to the last query
        assert k1 - k0 <= 1.5 * window
    global_blocks = query_blocks(t, t, None, query_block(None, QUERY_BLOCK))
    assert all(k0 == 0 and k1 == q1 for _, q1, k0, k1 in global_blocks)
    computed = sum((q1 - q0) * (k1 - k0) for q0, q1, k0, k1 in global_blocks)
    assert computed < 0.65 * t * t  # causal: about half of the T x T matrix, never all of it


def test_bfloat16_under_autocast_keeps_float32_softmax_and_input_dtypes():
    q, k, v = (x.detach().bfloat16().requires_grad_() for x in qkv(t=40))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = blocked_attention(q, k, v, 0.3, 50.0, 16)
    grads = torch.autograd.grad(out.float().sum(), (q, k, v))
    assert out.dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in grads)
    expected = eager_attention(q.float(), k.float(), v.float(), 0.3, 50.0, 16)
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=3e-2)


def test_mixed_input_dtypes_under_autocast_as_in_bf16_mixed_training():
    """Under bf16 autocast, RoPE's float32 cos/sin promote q and k to float32 while v stays bfloat16."""
    q, k, v = qkv(t=40)
    v_bf16 = v.detach().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = blocked_attention(q, k, v_bf16, 0.3, 50.0, 16)
        expected = eager_attention(q, k, v_bf16, 0.3, 50.0, 16)
    grads = torch.autograd.grad(out.float().sum(), (q, k, v_bf16))
    expected_grads = torch.autograd.grad(expected.float().sum(), (q, k, v_bf16))
    assert out.dtype == expected.dtype == torch.bfloat16
    assert [g.dtype for g in grads] == [torch.float32, torch.float32, torch.bfloat16]
    torch.testing.assert_close(out, expected, atol=3e-2, rtol=3e-2)
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)


def test_second_order_use_is_refused_rather_than_wrong():
    q, k, v = qkv(t=9)
    out = blocked_attention(q, k, v, 0.3, 50.0, None)
    (dq,) = torch.autograd.grad(out.sum(), (q,), create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(dq.sum(), (q,))
