"""A run's identity: a hash of its resolved config (seed included), blind to where and how it is logged.

Two jobs with the same identity are the same experiment: a rerun skips a finished
one and resumes an interrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from gemmalab.migrations import ADDED_LATER
from gemmalab.model.block import NORMS_BY_PLACEMENT

# Config keys that say where results go or how a job is driven, not what is trained (callbacks watch
# a fit: a test's injected fault, a profiler; what changes training is a model, optim or trainer key).
# where a run is kept, how it is logged and shown, what drives its process: neither what the run is nor a
# column of the analysis (analysis/loaders.py)
BOOKKEEPING = ("logger", "run_root", "group", "callbacks", "hydra", "trainer.progress_bar")
NOT_IDENTITY = (
    *BOOKKEEPING, "ablation", "alias", "cascade",
    "data.cache_dir",  # where the token cache lies; its content is data.* and the source
    "data.allow_repeat",  # permission only: a run that repeats its data trains the same with or without it
    # how spikes are counted afterwards; the analysis can recount from metrics.jsonl with any rule
    "stability.spike_rule", "stability.spike_window", "stability.spike_threshold", "stability.grad_norm_from",
    "distill.teacher",  # a path; distill.teacher_run (run id / checkpoint) identifies the teacher
    "scale", "tune",  # derived into model.*, trainer.max_steps and optim.lr before the identity is taken
    "trainer.profiler", "trainer.deterministic",  # how a fit is watched or which kernels run, not what it trains
)  # fmt: skip


def is_under(key: str, sections: tuple[str, ...]) -> bool:
    """Is the dotted `key` one of `sections` or inside one of them?"""
    return any(key == k or key.startswith(k + ".") for k in sections)


def is_identity_key(key: str) -> bool:
    return not is_under(key, NOT_IDENTITY)


# Config outside the identity that places a job in its study (cascade.size, scale.rung, tune.arm_lr): each
# sweep member records its own, since a run another study trained first keeps that study's config.yaml.
LABELS = ("ablation", "alias", "cascade", "scale", "tune")


def labels(config: dict[str, Any]) -> dict[str, Any]:
    return {key: config.get(key) for key in LABELS}


# Settings an attention pattern never reads: `full` has no window, `local` no local:global ratio.
IGNORED_BY_PATTERN = {"full": ("window", "local_global_ratio", "first"), "local": ("local_global_ratio", "first")}
# Model settings a norm placement never reads: one without a post-norm has no post-norm gain.
IGNORED_BY_NORM = {norm: ("post_norm_init_gain",) for norm, (_, out, _) in NORMS_BY_PLACEMENT.items() if not out}
# switch -> (the section of the settings it may leave unread, which ones per value of the switch)
IGNORED_BY = {"attn.pattern": ("attn", IGNORED_BY_PATTERN), "norm": ("model", IGNORED_BY_NORM)}


def ignored_keys(config: dict[str, Any]) -> list[str]:
    """The settings this run never reads (`attn.window` of a full-attention run, pre's post-norm gain): one run
    whatever their value, shown as `–` in tables, never evaluated at another value."""
    keys = []
    for switch, (section, ignored) in IGNORED_BY.items():
        node: Any = config
        for part in switch.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        keys += [f"{section}.{k}" for k in ignored.get(node, ())]
    return keys


def run_identity(config: dict[str, Any]) -> str:
    relevant = copy.deepcopy(config)
    for key in ignored_keys(relevant):  # full attention at any window, pre at any post-norm gain: one run
        section, leaf = key.split(".")
        relevant.get(section, {}).pop(leaf, None)
    for key, before in ADDED_LATER.items():  # at the value that reproduces older runs: those keep their ids
        section, leaf = key.split(".")
        value = relevant.get(section, {}).get(leaf, before)
        if value == before and type(value) is type(before):  # limit_val_batches=1 (one batch) is not 1.0 (all)
            relevant.get(section, {}).pop(leaf, None)
    for key in NOT_IDENTITY:
        *parents, leaf = key.split(".")
        node = relevant
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def run_name(overrides: list[str], seed: int, swept: set[str] | None = None) -> str:
    """`attn.pattern=alt norm=dual seed=0`: a job's overrides of the swept keys (all of them when
    `swept` is None), as typed on the command line."""
    kept: dict[str, str] = {}  # a key given twice: the last value is the one Hydra applies
    for override in overrides:
        key = override.lstrip("+~").split("=")[0]
        shown = key in swept if swept is not None else is_identity_key(key)
        if shown and key != "seed":
            kept[key] = override.lstrip("+~")
    return " ".join([*sorted(kept.values()), f"seed={seed}"])
