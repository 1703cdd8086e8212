"""torch.compile of the Decoder (trainer.compile=true compiles it in place): each kind of call a run makes is
compiled once, at its first use, and never again. Dynamo's "eager" backend: the guards and recompiles are
dynamo's whatever backend generates the code, without inductor's minutes of code generation on a CPU."""

from __future__ import annotations

import torch
from torch._dynamo.testing import CompileCounter

from gemmalab.model import Decoder

from .conftest import tiny_config


def test_a_compiled_decoder_compiles_each_kind_of_call_once():
    torch._dynamo.reset()
    compiled = CompileCounter()  # counts the graphs dynamo hands to its backend
    model = Decoder(tiny_config(attn_backend="auto"))  # auto: resolved by the layer at every call
    model.compile(backend=compiled)
    ids = torch.randint(0, 97, (2, 12))

    def train_step(record: bool) -> None:
        model.train()
        if record:  # the logit-growth diagnostics, on every stats_every-th step
            with model.recorder.recording():
                model(ids).sum().backward()
        else:
            model(ids).sum().backward()

    def validation() -> None:
        model.eval()
        with torch.no_grad():
            model(ids)

    validation()  # a run's order: the initial validation, a recorded step 0, a plain step 1
    train_step(record=True)
    train_step(record=False)
    after_first_uses = compiled.frame_count
    assert after_first_uses > 0  # it did compile
    for step in range(12):
        train_step(record=step % 4 == 0)
        if step % 5 == 0:
            validation()
    assert compiled.frame_count == after_first_uses
