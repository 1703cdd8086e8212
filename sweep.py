"""Entry point. Until the training harness lands: build the default model and print its size."""

from __future__ import annotations

from gemmalab.model import Decoder, count_parameters, preset

if __name__ == "__main__":
    cfg = preset("laptop")
    model = Decoder(cfg)
    windows = [layer.attn.window for layer in model.layers]
    print(f"laptop model: {count_parameters(model):,} parameters, windows {windows}")
