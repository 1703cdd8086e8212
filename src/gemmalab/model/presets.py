"""Named model sizes: the published Gemma shapes (build them on the meta device) and laptop sizes."""

from __future__ import annotations

from collections.abc import Callable

from .config import AttnConfig, ConfigError, ModelConfig, SoftcapConfig


def _gemma2(
    d_model: int, d_ff: int, n_layers: int, n_heads: int, kv_heads: int, head_dim: int, qpas: int
) -> ModelConfig:
    return ModelConfig(
        vocab_size=256000, d_model=d_model, n_layers=n_layers, n_heads=n_heads, head_dim=head_dim, d_ff=d_ff,
        norm="dual",
        attn=AttnConfig(pattern="alt", window=4096, kv_heads=kv_heads, query_pre_attn_scalar=qpas),
        softcap=SoftcapConfig(attn=50.0, final=30.0),
    )  # fmt: skip


def _gemma1(d_model: int, d_ff: int, n_layers: int, n_heads: int, kv_heads: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=256000, d_model=d_model, n_layers=n_layers, n_heads=n_heads, head_dim=256, d_ff=d_ff,
        norm="pre",
        attn=AttnConfig(pattern="full", kv_heads=kv_heads),
        softcap=SoftcapConfig(attn=None, final=None),
    )  # fmt: skip


# The laptop sizes' window, also the sweep's default (gemmalab/schema.py): shorter than the default
# sequence (128), so alternating attention differs from full attention.
LAPTOP_WINDOW = 32


def _laptop(d_model: int, n_layers: int, n_heads: int, kv_heads: int, window: int = LAPTOP_WINDOW) -> ModelConfig:
    """Gemma 2's recipe at small width: GQA, alternating attention, dual norm, both caps, byte vocabulary."""
    head_dim = d_model // n_heads
    return ModelConfig(
        vocab_size=256, d_model=d_model, n_layers=n_layers, n_heads=n_heads, head_dim=head_dim, d_ff=4 * d_model,
        norm="dual",
        attn=AttnConfig(pattern="alt", window=window, kv_heads=kv_heads),
        softcap=SoftcapConfig(attn=50.0, final=30.0),
    )  # fmt: skip


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "gemma2-2b": lambda: _gemma2(2304, 9216, 26, 8, 4, 256, 256),
    "gemma2-9b": lambda: _gemma2(3584, 14336, 42, 16, 8, 256, 256),
    "gemma2-27b": lambda: _gemma2(4608, 36864, 46, 32, 16, 128, 144),
    "gemma1-2b": lambda: _gemma1(2048, 16384, 18, 8, 1),
    "gemma1-7b": lambda: _gemma1(3072, 24576, 28, 16, 16),
    "tiny": lambda: _laptop(d_model=64, n_layers=2, n_heads=4, kv_heads=2),  # for tests: seconds per run
    "laptop": lambda: _laptop(d_model=128, n_layers=4, n_heads=4, kv_heads=2),  # ~1M parameters: the default
    "small": lambda: _laptop(d_model=256, n_layers=6, n_heads=8, kv_heads=4),
    "base": lambda: _laptop(d_model=512, n_layers=8, n_heads=8, kv_heads=4),
}
LAPTOP_SIZES = ("tiny", "laptop", "small", "base")  # conf/model/ choices (gemmalab/schema.py)

# Scale ladders (+scale=cpu | gpu, gemmalab/scale.py): (d_model, n_layers, n_heads) per rung, d_ff = 4 d_model,
# widths and depths grown together. cpu: 31K to 985K non-embedding parameters (1.50 decades; the largest is
# the laptop model); gpu: 0.99M to 106M (2.03 decades), head_dim 64.
LADDERS = {
    "cpu": [(32, 2, 4), (48, 3, 4), (80, 3, 4), (128, 4, 4)],
    "gpu": [(128, 4, 2), (256, 6, 4), (512, 8, 8), (768, 12, 12)],
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"model={name!r} is not a preset (allowed: {', '.join(PRESETS)})")
    return PRESETS[name]()
