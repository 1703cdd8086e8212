"""The configurable Gemma-2-style decoder (plain PyTorch; no Lightning, no Hydra)."""

from .accounting import (
    attention_score_entries,
    count_parameters,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    training_flops_per_token,
)
from .config import AttnConfig, ConfigError, ModelConfig, SoftcapConfig, model_config
from .decoder import Decoder
from .hf import config_from_hf_gemma2, from_hf_gemma2
from .presets import PRESETS, preset

__all__ = [
    "AttnConfig",
    "ConfigError",
    "Decoder",
    "ModelConfig",
    "model_config",
    "PRESETS",
    "SoftcapConfig",
    "attention_score_entries",
    "config_from_hf_gemma2",
    "count_parameters",
    "from_hf_gemma2",
    "kv_cache_bytes",
    "kv_cache_bytes_per_token",
    "preset",
    "training_flops_per_token",
]
