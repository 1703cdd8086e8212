from __future__ import annotations

import pytest
import torch

import gemmalab.model.chunks as chunks
from gemmalab.model.norm import RMSNorm, rms_norm_spelled_out


@pytest.fixture(params=[1 << 18, 64, 7], ids=["one-chunk", "ragged-chunks", "row-by-row"])
def chunk_elements(request, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", request.param)


@pytest.mark.usefixtures("chunk_elements")
def test_gradients_pass_gradcheck_in_float64():
    norm = RMSNorm(6, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))


@pytest.mark.usefixtures("chunk_elements")
def test_matches_the_spelled_out_formula_with_its_gradients():
    norm = RMSNorm(32, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = (torch.randn(2, 5, 32) * 7).requires_grad_()
    grad = torch.randn(2, 5, 32)
    out = norm(x)
    expected = rms_norm_spelled_out(x, norm.weight, 1e-6)
    torch.testing.assert_close(out, expected)
    for a, b in zip(torch.autograd.grad(out, (x, norm.weight), grad),
                    torch.autograd.grad(expected, (x, norm.weight), grad), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bfloat16_input_is_normalised_in_float32_and_returned_in_bfloat16():
    norm = RMSNorm(16)
    x = (torch.randn(4, 16) * 1000).bfloat16().requires_grad_()
    out = norm(x)
    (grad_x,) = torch.autograd.grad(out.float().sum(), (x,))
    assert out.dtype == grad_x.dtype == torch.bfloat16
    torch.testing.assert_close(out.float().pow(2).mean(-1), torch.ones(4), atol=2e-2, rtol=2e-2)
