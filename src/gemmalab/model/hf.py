"""Load a transformers Gemma2ForCausalLM into the project's Decoder."""

from __future__ import annotations

import torch

from .config import AttnConfig, ConfigError, ModelConfig, SoftcapConfig
from .decoder import Decoder
from .pattern import layer_is_local

# transformers' "gelu" is the exact erf GELU; GeGLU here is the tanh approximation (Gemma 2's
# gelu_pytorch_tanh), ~7e-4 apart in the logits, so "gelu" is refused rather than mapped.
_ACTIVATIONS = {"gelu_pytorch_tanh": "geglu", "silu": "swiglu"}

# ours -> transformers, inside model.layers.{i}.
_LAYER_WEIGHTS = {
    "attn.q_proj.weight": "self_attn.q_proj.weight",
    "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight",
    "attn.o_proj.weight": "self_attn.o_proj.weight",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight",
    "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
    "attn_in_norm.weight": "input_layernorm.weight",
    "attn_out_norm.weight": "post_attention_layernorm.weight",
    "mlp_in_norm.weight": "pre_feedforward_layernorm.weight",
    "mlp_out_norm.weight": "post_feedforward_layernorm.weight",
}


def config_from_hf_gemma2(hf_config) -> ModelConfig:
    """The ModelConfig equivalent to a transformers Gemma2Config."""
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10_000.0))
    activation = getattr(hf_config, "hidden_activation", None) or hf_config.hidden_act
    if activation not in _ACTIVATIONS:
        raise ConfigError(f"hidden_activation={activation!r} is not supported (allowed: {', '.join(_ACTIVATIONS)})")
    cfg = ModelConfig(
        vocab_size=hf_config.vocab_size,
        d_model=hf_config.hidden_size,
        n_layers=hf_config.num_hidden_layers,
        n_heads=hf_config.num_attention_heads,
        head_dim=hf_config.head_dim,
        d_ff=hf_config.intermediate_size,
        activation=_ACTIVATIONS[activation],
        rope_theta=float(rope_theta),
        norm="dual",
        norm_eps=hf_config.rms_norm_eps,
        attn=AttnConfig(
            pattern="alt",
            window=hf_config.sliding_window,
            kv_heads=hf_config.num_key_value_heads,
            query_pre_attn_scalar=hf_config.query_pre_attn_scalar,
            backend="eager",
        ),
        softcap=SoftcapConfig(attn=hf_config.attn_logit_softcapping, final=hf_config.final_logit_softcapping),
    )
    layer_types = getattr(hf_config, "layer_types", None)
    if layer_types is not None:
        expected = layer_is_local(cfg.attn, cfg.n_layers)
        if [t == "sliding_attention" for t in layer_types] != expected:
            raise ConfigError(f"layer_types={layer_types} is not Gemma 2's alternation (allowed: local first, 1:1)")
    return cfg


@torch.no_grad()
def from_hf_gemma2(hf_model) -> Decoder:
    """A Decoder holding the weights of a transformers.Gemma2ForCausalLM, in its dtype.

    The tensors are shared with hf_model, not copied (a 27B model fits once): clone one of the two
    before training either."""
    cfg = config_from_hf_gemma2(hf_model.config)
    source = hf_model.state_dict()
    dtype = source["model.embed_tokens.weight"].dtype
    with torch.device("meta"):
        model = Decoder(cfg)
    state = {"embed.weight": source["model.embed_tokens.weight"], "final_norm.weight": source["model.norm.weight"]}
    for i in range(cfg.n_layers):
        for ours, theirs in _LAYER_WEIGHTS.items():
            state[f"layers.{i}.{ours}"] = source[f"model.layers.{i}.{theirs}"]
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(dtype).eval()
