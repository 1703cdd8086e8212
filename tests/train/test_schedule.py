from __future__ import annotations

import math
import re

import pytest
import torch

from gemmalab.model import ConfigError
from gemmalab.train import OptimConfig, TrainerConfig
from gemmalab.train.schedule import build_optimizer, lr_factor


def test_warmup_then_cosine_to_the_floor():
    assert lr_factor(0, 10, 111, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 111, 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 10, 111, 0.1) == pytest.approx(1.0)
    assert lr_factor(60, 10, 111, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, 10, 111, 0.1) == pytest.approx(0.1)  # the last step
    assert lr_factor(3, 0, 11, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))


@pytest.mark.parametrize("independent, expected_factor", [(False, 1 - 1e-2 * 0.1), (True, 1 - 0.1)])
def test_weight_decay_on_matrices_only_and_independent_of_lr(independent, expected_factor):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1, independent_wd=independent, warmup_steps=0)
    optimizer, _ = build_optimizer(model, cfg, max_steps=10)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradient: only the decay moves the weights
    optimizer.step()
    weight, bias, ln_weight, ln_bias = (p.detach() for p in model.parameters())
    torch.testing.assert_close(weight, before[0] * expected_factor)
    assert torch.equal(bias, before[1]) and torch.equal(ln_weight, before[2])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: OptimConfig(lr=0), "optim.lr=0 is not allowed (allowed: a finite number > 0)"),
        (lambda: OptimConfig(grad_clip=-1.0), "optim.grad_clip=-1.0 is not allowed"),
        (lambda: OptimConfig(betas=[0.9, 1.0]), "optim.betas=[0.9, 1.0] is not allowed"),
        (lambda: TrainerConfig(max_steps=0), "trainer.max_steps=0 is not allowed (allowed: an integer >= 1)"),
        (lambda: TrainerConfig(precision="16-mixed"), "trainer.precision='16-mixed' is not allowed"),
    ],
)
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()
