"""The switch registry: every registered key composes; every model field is a switch or named configuration."""

from __future__ import annotations

import dataclasses

from gemmalab.model import AttnConfig, SoftcapConfig
from gemmalab.schema import MODEL_KEYS
from gemmalab.switches import AT_INFERENCE, KEYS, NOT_SWITCHES, SWITCHES, tags

from .test_conf import compose_config


def test_every_switch_is_a_key_of_the_composed_config():
    config = compose_config("+cascade=teacher")
    for key in KEYS:
        section, _, leaf = key.partition(".")
        assert (leaf in config[section]) if leaf else (section in config), key
    assert len(set(KEYS)) == len(KEYS)


def test_every_model_field_is_a_switch_or_named_configuration():
    fields = [f"attn.{f.name}" for f in dataclasses.fields(AttnConfig)]
    fields += [f"softcap.{f.name}" for f in dataclasses.fields(SoftcapConfig)]
    fields += [f"model.{name}" for name in MODEL_KEYS]
    unclassified = [f for f in fields if f not in KEYS and f not in NOT_SWITCHES]
    assert not unclassified, f"add these to gemmalab/switches.py (SWITCHES or NOT_SWITCHES): {unclassified}"
    assert not set(KEYS) & set(NOT_SWITCHES)


def test_inference_time_switches_change_no_parameter_and_tags_name_the_five_ideas():
    assert set(AT_INFERENCE) == {"attn.pattern", "attn.local_global_ratio", "attn.window", "attn.first",
                                 "softcap.attn", "softcap.final"}  # fmt: skip
    run_tags = tags(compose_config("softcap=off", "norm=pre"))
    assert {"softcap.attn=None", "norm=pre", "attn.pattern=alt", "attn.kv_heads=2"} <= set(run_tags)
    assert len(run_tags) == sum(s.gemma2 for s in SWITCHES)
