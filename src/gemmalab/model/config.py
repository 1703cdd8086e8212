"""The decoder's configuration: every Gemma 2 idea is one field, validated on construction.

Errors name the key as a user types it on the command line (`attn.kv_heads`,
`softcap.attn`, `norm`, `model.d_model`), so the same message serves the Python
API and the Hydra entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemmalab.errors import ConfigError, refuse, require_choice, require_int, require_positive

ATTN_PATTERNS = ("full", "alt", "local")
FIRST_LAYER_KINDS = ("local", "global")
NORM_PLACEMENTS = ("pre", "post", "dual", "postln")
ACTIVATIONS = ("geglu", "swiglu", "gelu")
ATTN_BACKENDS = ("auto", "eager", "sdpa", "flex", "blocked")
# K/V heads for n_heads query heads, by kind: MHA one per query head, GQA one per two (Gemma 2), MQA one for all
# (Gemma 1 2B); conf/kv/ names them
KV_KINDS = {"MHA": lambda n_heads: n_heads, "GQA": lambda n_heads: max(1, n_heads // 2), "MQA": lambda n_heads: 1}


def kv_kind(kv_heads: int, n_heads: int) -> str:
    """MHA (a K/V head per query head), MQA (one for all), GQA (between)."""
    return "MHA" if kv_heads == n_heads else "MQA" if kv_heads == 1 else "GQA"


# paired: each weight drawn from its own generator seeded by (seed, parameter name); shared: one stream
# in module order (before paired init existed; a switch that changes one shape then redraws every weight)
INIT_SCHEMES = ("paired", "shared")
# auto: the hand-written CPU kernels where they apply (blocked attention, RMSNorm and GeGLU with written-out
# backwards; ~2x faster on CPU); reference: plain PyTorch autograd over the spelled-out math everywhere
KERNELS = ("auto", "reference")


@dataclass
class AttnConfig:
    pattern: str = "alt"
    local_global_ratio: int = 1
    window: int = 4096
    first: str = "local"
    kv_heads: int = 4
    query_pre_attn_scalar: float | None = None  # None: head_dim
    qk_norm: bool = False
    backend: str = "auto"


@dataclass
class SoftcapConfig:
    attn: float | None = 50.0
    final: float | None = 30.0


@dataclass
class ModelConfig:
    vocab_size: int = 256000
    d_model: int = 2304
    n_layers: int = 26
    n_heads: int = 8
    head_dim: int = 256
    d_ff: int = 9216
    activation: str = "geglu"
    rope_theta: float = 10_000.0
    norm: str = "dual"
    norm_eps: float = 1e-6
    init_std: float = 0.02
    # the post-norms' (norm_out of post and dual) gain at step 0, 1 + w: 1 as in Gemma 2 and Hugging Face; a
    # smaller one lets each sub-layer add less than an RMS-1 vector to the residual stream at the start
    post_norm_init_gain: float = 1.0
    init: str = "paired"
    kernels: str = "auto"
    attn: AttnConfig = field(default_factory=AttnConfig)
    softcap: SoftcapConfig = field(default_factory=SoftcapConfig)

    def __post_init__(self) -> None:
        if isinstance(self.attn, dict):
            self.attn = AttnConfig(**self.attn)
        if isinstance(self.softcap, dict):
            self.softcap = SoftcapConfig(**self.softcap)
        self.validate()

    @property
    def handwritten_kernels(self) -> bool:
        """model.kernels=auto: the hand-written CPU kernels where they apply (see KERNELS)."""
        return self.kernels == "auto"

    @property
    def scale_denominator(self) -> float:
        """query_pre_attn_scalar: scores are multiplied by its inverse square root."""
        qpas = self.attn.query_pre_attn_scalar
        return float(self.head_dim if qpas is None else qpas)

    def validate(self) -> None:
        for key, value in [
            ("model.vocab_size", self.vocab_size),
            ("model.d_model", self.d_model),
            ("model.n_layers", self.n_layers),
            ("model.n_heads", self.n_heads),
            ("model.head_dim", self.head_dim),
            ("model.d_ff", self.d_ff),
            ("attn.kv_heads", self.attn.kv_heads),
            ("attn.local_global_ratio", self.attn.local_global_ratio),
            ("attn.window", self.attn.window),
        ]:
            require_int(key, value)
        require_choice("attn.pattern", self.attn.pattern, ATTN_PATTERNS)
        require_choice("attn.first", self.attn.first, FIRST_LAYER_KINDS)
        require_choice("attn.backend", self.attn.backend, ATTN_BACKENDS)
        require_choice("norm", self.norm, NORM_PLACEMENTS)
        require_choice("model.activation", self.activation, ACTIVATIONS)
        require_choice("model.init", self.init, INIT_SCHEMES)
        require_choice("model.kernels", self.kernels, KERNELS)
        if self.n_heads % self.attn.kv_heads:
            raise ConfigError(
                f"attn.kv_heads={self.attn.kv_heads} must divide model.n_heads={self.n_heads} "
                f"(allowed: {', '.join(str(d) for d in _divisors(self.n_heads))})"
            )
        for key, cap in [("softcap.attn", self.softcap.attn), ("softcap.final", self.softcap.final)]:
            if cap is not None:
                require_positive(key, cap, "a number > 0, or null for off")
        if self.attn.query_pre_attn_scalar is not None:
            require_positive("attn.query_pre_attn_scalar", self.attn.query_pre_attn_scalar,
                             "a number > 0, or null for head_dim")  # fmt: skip
        require_positive("model.rope_theta", self.rope_theta, "a number > 0")
        require_positive("model.norm_eps", self.norm_eps, "a number > 0")
        require_positive("model.post_norm_init_gain", self.post_norm_init_gain, "a number > 0 (1: Gemma 2's)")
        if not isinstance(self.attn.qk_norm, bool):
            refuse("attn.qk_norm", self.attn.qk_norm, "true, false")
        if self.attn.backend == "sdpa" and self.softcap.attn is not None:
            raise ConfigError(
                f"attn.backend=sdpa cannot apply softcap.attn={self.softcap.attn} "
                "(allowed: attn.backend=auto, eager or flex, or softcap.attn=null)"
            )


# ModelConfig's fields that a job config holds as top-level sections of their own (attn.*, softcap.*, norm=...);
# the rest, the model's size, lie under `model` (schema.py MODEL_KEYS).
OWN_SECTIONS = ("attn", "softcap", "norm")


def model_config(config: dict) -> ModelConfig:
    """The model of a composed job config (conf/, a run's config.yaml)."""
    return ModelConfig(**config["model"], **{section: config[section] for section in OWN_SECTIONS})


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
