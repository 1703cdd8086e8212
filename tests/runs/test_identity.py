from __future__ import annotations

import copy

import pytest

from gemmalab.runs.identity import run_identity, run_name

from ..test_conf import compose_config

CONFIG = {
    "model": {"d_model": 64},
    "attn": {"pattern": "alt", "window": 16, "local_global_ratio": 1, "first": "local"},
    "seed": 0,
    "run_root": "runs",
    "group": "g1",
    "logger": {"kind": "wandb", "mode": "offline"},
    "callbacks": {},
    "trainer": {"max_steps": 10, "progress_bar": True},
}


def changed(**edits) -> dict:
    config = copy.deepcopy(CONFIG)
    for dotted, value in edits.items():
        *parents, leaf = dotted.split("__")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def test_identity_ignores_where_and_how_results_are_logged():
    base = run_identity(CONFIG)
    assert run_identity(changed(run_root="/elsewhere", group="g2")) == base
    fault = {"fault": {"_target_": "tests.faults.SignalAtStep", "step": 5}}
    assert run_identity(changed(logger__kind="none", callbacks=fault)) == base
    assert run_identity(changed(trainer__progress_bar=False)) == base


def test_identity_follows_what_is_trained():
    base = run_identity(CONFIG)
    assert run_identity(changed(seed=1)) != base
    assert run_identity(changed(attn__pattern="full")) != base
    assert run_identity(changed(trainer__max_steps=11)) != base
    assert len(base) == 12


def test_settings_a_pattern_ignores_do_not_split_identities():
    full = run_identity(changed(attn__pattern="full"))
    assert run_identity(changed(attn__pattern="full", attn__window=64, attn__local_global_ratio=3)) == full
    local = run_identity(changed(attn__pattern="local"))
    assert run_identity(changed(attn__pattern="local", attn__local_global_ratio=3)) == local
    assert run_identity(changed(attn__pattern="local", attn__window=64)) != local
    assert run_identity(changed(attn__window=64)) != run_identity(CONFIG)


def test_run_name_from_overrides():
    assert run_name(["norm=dual", "attn.pattern=alt", "logger.mode=disabled"], 0) == "attn.pattern=alt norm=dual seed=0"
    assert run_name(["+ablation=softcap", "seed=2", "softcap=off"], 2) == "softcap=off seed=2"
    assert run_name(["model=tiny", "norm=pre", "trainer.progress_bar=false"], 1, swept={"norm"}) == "norm=pre seed=1"
    assert run_name(["trainer.max_steps=6", "trainer.max_steps=10"], 0) == "trainer.max_steps=10 seed=0"


def test_shared_init_keeps_the_run_ids_from_before_model_init_existed():
    assert run_identity(changed(model__init="shared")) == run_identity(CONFIG)
    assert run_identity(changed(model__init="paired")) != run_identity(CONFIG)
    assert run_identity(changed(model__kernels="auto")) == run_identity(CONFIG)  # added later, default kept
    assert run_identity(changed(model__kernels="reference")) != run_identity(CONFIG)


def test_lightnings_trainer_arguments_split_identities_only_where_they_change_the_run():
    base = run_identity(CONFIG)
    for unchanged in ({"trainer__accumulate_grad_batches": 1}, {"trainer__limit_val_batches": 1.0},
                      {"trainer__log_every_n_steps": 1}, {"trainer__fast_dev_run": False},
                      {"trainer__overfit_batches": 0.0}, {"trainer__profiler": "simple"},
                      {"trainer__deterministic": True}):  # fmt: skip
        assert run_identity(changed(**unchanged)) == base, unchanged
    for split in ({"trainer__accumulate_grad_batches": 2}, {"trainer__limit_val_batches": 1},
                  {"trainer__log_every_n_steps": 10}, {"trainer__fast_dev_run": True},
                  {"trainer__overfit_batches": 2}):  # fmt: skip
        assert run_identity(changed(**split)) != base, split  # limit_val_batches=1 is one batch, not all


def test_the_post_norm_gain_keeps_old_ids_and_splits_only_placements_that_have_a_post_norm():
    dual = changed(norm="dual")
    assert run_identity(changed(norm="dual", model__post_norm_init_gain=1.0)) == run_identity(dual)  # added later
    assert run_identity(changed(norm="dual", model__post_norm_init_gain=0.1)) != run_identity(dual)
    assert run_identity(changed(norm="post", model__post_norm_init_gain=0.1)) != run_identity(changed(norm="post"))
    for placement in ("pre", "postln"):  # no post-norm: the gain is never read, one run at any value
        same = run_identity(changed(norm=placement))
        assert run_identity(changed(norm=placement, model__post_norm_init_gain=0.1)) == same


@pytest.mark.parametrize(
    "overrides, run_id",
    [
        ((), "1bb4687c7d6e"),
        (("norm=pre",), "ffe0191bfeda"),
        (("+ablation=norm", "norm=dual", "seed=1"), "d0c3ddd2ac88"),
    ],
)
def test_the_run_ids_of_composed_configs_are_pinned(overrides, run_id):
    """A run store finds finished work by run id: a change to the identity, to a default or to how a config is
    composed would orphan every stored run (each would train again under a new id). If deliberate, say so and
    record the old runs' allowance in gemmalab/migrations.py."""
    assert run_identity(compose_config(*overrides)) == run_id
