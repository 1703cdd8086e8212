from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gemmalab.model.chunks as chunks
import gemmalab.model.mlp as mlp


@pytest.mark.parametrize("chunk_elements", [1 << 18, 64, 7])  # one chunk; many with a ragged last one; one row each
def test_geglu_matches_torch_gelu_tanh_times_up_with_gradients(monkeypatch, chunk_elements):
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk_elements)
    g = torch.Generator().manual_seed(0)
    gate = (torch.randn(3, 11, 16, generator=g) * 3).requires_grad_()
    up = torch.randn(3, 11, 16, generator=g).requires_grad_()
    grad = torch.randn(3, 11, 16, generator=g)
    out = mlp.geglu(gate, up)
    expected = F.gelu(gate, approximate="tanh") * up
    torch.testing.assert_close(out, expected)
    for a, b in zip(torch.autograd.grad(out, (gate, up), grad),
                    torch.autograd.grad(expected, (gate, up), grad), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)


def test_geglu_in_bfloat16_uses_torch_kernels_and_keeps_the_dtype():
    gate, up = torch.randn(4, 8).bfloat16(), torch.randn(4, 8).bfloat16()
    out = mlp.geglu(gate, up)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, F.gelu(gate, approximate="tanh") * up)


@pytest.mark.parametrize("activation", ["geglu", "swiglu", "gelu"])
def test_each_activation_has_its_own_formula(activation):
    torch.manual_seed(0)
    block = mlp.MLP(8, 32, activation)
    x = torch.randn(2, 3, 8)
    up = block.up_proj(x)
    hidden = {
        "geglu": lambda: F.gelu(block.gate_proj(x), approximate="tanh") * up,
        "swiglu": lambda: F.silu(block.gate_proj(x)) * up,
        "gelu": lambda: F.gelu(up, approximate="tanh"),
    }[activation]()
    torch.testing.assert_close(block(x), block.down_proj(hidden))
