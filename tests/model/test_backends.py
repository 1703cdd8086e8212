from __future__ import annotations

import pytest
import torch

from gemmalab.model.backends import (
    allowed_keys,
    eager_attention,
    flex_attention,
    resolve_backend,
    sdpa_attention,
)


def qkv(t: int = 37, n_heads: int = 4, kv_heads: int = 2, head_dim: int = 16, device: str = "cpu"):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, n_heads, t, head_dim, generator=g)
    k = torch.randn(2, kv_heads, t, head_dim, generator=g)
    v = torch.randn(2, kv_heads, t, head_dim, generator=g)
    return q.to(device), k.to(device), v.to(device)


def naive_attention(q, k, v, scale, cap, window):
    """Loop over heads and query positions: the reference semantics spelled out."""
    n_heads, t = q.shape[1], q.shape[2]
    group = n_heads // k.shape[1]
    out = torch.zeros_like(q)
    for h in range(n_heads):
        for i in range(t):
            lo = 0 if window is None else max(0, i - window + 1)
            keys, values = k[:, h // group, lo : i + 1], v[:, h // group, lo : i + 1]
            scores = torch.einsum("bd,bsd->bs", q[:, h, i], keys) * scale
            if cap is not None:
                scores = cap * torch.tanh(scores / cap)
            out[:, h, i] = torch.einsum("bs,bsd->bd", torch.softmax(scores.float(), -1), values)
    return out


def test_window_sees_exactly_w_keys_including_itself():
    allowed = allowed_keys(torch.arange(10), torch.arange(10), window=3)
    assert allowed[6].nonzero().flatten().tolist() == [4, 5, 6]
    assert allowed[1].nonzero().flatten().tolist() == [0, 1]
    assert allowed_keys(torch.arange(4), torch.arange(4), None).sum() == 10


@pytest.mark.parametrize("window", [None, 1, 5, 64])
@pytest.mark.parametrize("cap", [None, 3.0])
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_eager_matches_naive_loop(window, cap, kv_heads):
    q, k, v = qkv(t=13, kv_heads=kv_heads)
    expected = naive_attention(q, k, v, 0.3, cap, window)
    torch.testing.assert_close(eager_attention(q, k, v, 0.3, cap, window), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("window", [None, 5])
def test_sdpa_matches_eager_without_cap(window):
    q, k, v = qkv()
    torch.testing.assert_close(
        sdpa_attention(q, k, v, 0.25, None, window), eager_attention(q, k, v, 0.25, None, window)
    )


def test_sdpa_refuses_a_cap():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="cannot soft-cap"):
        sdpa_attention(q, k, v, 0.25, 50.0, None)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("cap", [None, 2.0])
def test_flex_forward_matches_eager_on_cpu(window, cap):
    q, k, v = qkv()
    torch.testing.assert_close(flex_attention(q, k, v, 0.25, cap, window), eager_attention(q, k, v, 0.25, cap, window))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's compiled kernel needs CUDA")
@pytest.mark.parametrize("window", [None, 128])
@pytest.mark.parametrize("cap", [None, 50.0])
def test_flex_matches_eager_on_cuda_forward_and_backward(window, cap):
    q, k, v = (x.requires_grad_() for x in qkv(t=512, head_dim=64, device="cuda"))
    out_flex = flex_attention(q, k, v, 0.125, cap, window)
    grads_flex = torch.autograd.grad(out_flex.square().sum(), (q, k, v))
    out_eager = eager_attention(q, k, v, 0.125, cap, window)
    grads_eager = torch.autograd.grad(out_eager.square().sum(), (q, k, v))
    torch.testing.assert_close(out_flex, out_eager, atol=2e-3, rtol=2e-3)
    for a, b in zip(grads_flex, grads_eager, strict=True):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)


def test_auto_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu, 50.0) == "blocked"
    assert resolve_backend("auto", cpu, None) == "sdpa"
    assert resolve_backend("auto", cuda, 50.0) == "flex"
    assert resolve_backend("eager", cuda, None) == "eager"
