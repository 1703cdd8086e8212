"""Every switch a study can vary, in one registry that run tags, the evaluation tool and the tables read.

A switch is a config key as typed on the command line. `gemma2` marks the five ideas' switches
(W&B tags carry them); `parameters` says whether its value changes the model's parameter set (if
not, a trained checkpoint can be evaluated at another value without retraining:
analysis/evaluate.py); `neutral` is the value at which the idea is off, where there is one.

Adding a switch: (1) implement it in the model (one file, named in the README's table), (2) add
its field to the config dataclass (the schema, gemmalab/schema.py) and, if it gets presets, a conf
group, (3) add it here. tests/test_switches.py checks that every registered key composes and that
every model field is either registered or listed as configuration (NOT_SWITCHES).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Switch:
    key: str
    parameters: bool  # changes the parameter set (not evaluable on another setting's checkpoint)
    gemma2: bool = False  # one of Gemma 2's five ideas (or the shape it is measured at)
    neutral: Any = None  # the value at which the idea is off (None: no such value)


SWITCHES = (  # the order tables show them in
    Switch("model.d_model", parameters=True, gemma2=True),
    Switch("model.n_layers", parameters=True),
    Switch("model.d_ff", parameters=True),
    Switch("attn.pattern", parameters=False, gemma2=True, neutral="full"),
    Switch("attn.local_global_ratio", parameters=False, gemma2=True),
    Switch("attn.window", parameters=False, gemma2=True),
    Switch("attn.first", parameters=False, gemma2=True),
    Switch("attn.kv_heads", parameters=True, gemma2=True),  # neutral: model.n_heads (MHA)
    Switch("attn.qk_norm", parameters=True, gemma2=True, neutral=False),
    Switch("softcap.attn", parameters=False, gemma2=True, neutral="off"),
    Switch("softcap.final", parameters=False, gemma2=True, neutral="off"),
    Switch("norm", parameters=True, gemma2=True, neutral="pre"),
    Switch("model.post_norm_init_gain", parameters=True),  # an initialisation: a checkpoint has trained past it
    Switch("model.activation", parameters=True),
    Switch("model.init", parameters=False),
    Switch("optim.lr", parameters=False),
    Switch("optim.z_loss", parameters=False, neutral=0.0),
    Switch("optim.warmup_steps", parameters=False),
    Switch("optim.grad_clip", parameters=False, neutral="off"),
    Switch("data.source", parameters=False),
    Switch("trainer.max_steps", parameters=False),
    Switch("distill.enabled", parameters=False, gemma2=True, neutral=False),
    Switch("distill.alpha", parameters=False),
    Switch("distill.temperature", parameters=False),
    Switch("cascade.size", parameters=True),
    Switch("cascade.training", parameters=False),
)
KEYS = tuple(s.key for s in SWITCHES)
# Model settings read at run time only: a trained checkpoint serves them all (analysis/evaluate.py).
AT_INFERENCE = tuple(s.key for s in SWITCHES if not s.parameters and s.key.startswith(("attn.", "softcap.")))
# Model fields that are configuration, not switches a study varies.
NOT_SWITCHES = (
    "model.vocab_size", "model.n_heads", "model.head_dim", "model.rope_theta", "model.norm_eps", "model.init_std",
    "model.kernels", "attn.query_pre_attn_scalar", "attn.backend",
)  # fmt: skip


def lookup(config: dict[str, Any], key: str) -> Any:
    """A dotted key's value in a nested config (None when absent)."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def tags(config: dict[str, Any]) -> list[str]:
    """The Gemma 2 switches of a run as W&B tags (filterable in the dashboard)."""
    return [f"{s.key}={lookup(config, s.key)}" for s in SWITCHES if s.gemma2]
