"""The Hydra config tree: every switch reachable, each group doing what it says, each switch trains."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gemmalab.model import AttnConfig, Decoder, SoftcapConfig, preset
from gemmalab.model.config import KV_KINDS, kv_kind
from gemmalab.runs.job import run_job
from gemmalab.runs.spec import JobSpec
from gemmalab.schema import MODEL_KEYS, SECTIONS, check_known_keys, register

from .conftest import REPO, TINY


def compose_config(*overrides: str) -> dict:
    register()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return OmegaConf.to_container(compose("config", list(overrides)), resolve=True)


def test_every_model_switch_is_reachable_from_the_command_line():
    config = compose_config()
    for f in dataclasses.fields(AttnConfig):
        assert f.name in config["attn"], f"attn.{f.name}"
    for f in dataclasses.fields(SoftcapConfig):
        assert f.name in config["softcap"], f"softcap.{f.name}"
    for name in MODEL_KEYS:
        assert name in config["model"], f"model.{name}"
    assert config["norm"] == "dual"


@pytest.mark.parametrize("kv, heads", [("mha", 4), ("gqa", 2), ("mqa", 1)])
def test_kv_group_sets_kv_heads_from_the_model_size(kv, heads):
    """conf/kv/ and model/config.py's KV_KINDS say the same thing, and kv_kind reads it back, at every size."""
    assert compose_config(f"kv={kv}")["attn"]["kv_heads"] == heads
    for size in ("laptop", "small", "base"):
        config = compose_config(f"kv={kv}", f"model={size}")
        n_heads, kv_heads = config["model"]["n_heads"], config["attn"]["kv_heads"]
        assert kv_heads == KV_KINDS[kv.upper()](n_heads), size
        assert kv_kind(kv_heads, n_heads) == kv.upper(), size


def test_softcap_and_norm_groups():
    assert compose_config("softcap=off")["softcap"] == {"attn": None, "final": None}
    assert compose_config()["softcap"] == {"attn": 50.0, "final": 30.0}
    assert compose_config("norm=postln")["norm"] == "postln"


@pytest.mark.parametrize("name", ["tiny", "laptop", "small", "base"])
def test_model_sizes_agree_with_the_python_presets(name):
    size = compose_config(f"model={name}")["model"]
    reference = preset(name)
    for key in ("vocab_size", "d_model", "n_layers", "n_heads", "head_dim", "d_ff", "activation"):
        assert size[key] == getattr(reference, key), key
    attn = compose_config(f"model={name}")["attn"]  # the sweep's attention default is the preset's
    assert (attn["window"], attn["kv_heads"], attn["pattern"]) == (
        reference.attn.window,
        reference.attn.kv_heads,
        reference.attn.pattern,
    )


def test_the_schema_knows_every_section_it_composes():
    config = compose_config("+cascade=teacher")
    check_known_keys(config)  # nothing composed is unknown to the schema
    free_form = {"callbacks"}  # names of the user's choosing, each a _target_ and its arguments
    assert set(SECTIONS) == {k for k, v in config.items() if isinstance(v, dict)} - free_form
    for section, keys in SECTIONS.items():
        assert set(config[section]) <= set(keys), section


def test_the_default_window_is_shorter_than_the_sequence():
    config = compose_config()
    assert config["attn"]["window"] < config["data"]["seq_len"]
    assert config["attn"]["pattern"] == "alt"


SWITCHES = [
    ("attn.pattern=full", lambda m: m.attn.pattern == "full"),
    ("attn.pattern=local", lambda m: m.attn.pattern == "local"),
    ("attn.local_global_ratio=2", lambda m: m.attn.local_global_ratio == 2),
    ("attn.first=global", lambda m: m.attn.first == "global"),
    ("attn.window=4", lambda m: m.attn.window == 4),
    ("kv=mha", lambda m: m.attn.kv_heads == 4),
    ("kv=mqa", lambda m: m.attn.kv_heads == 1),
    ("norm=pre", lambda m: m.norm == "pre"),
    ("norm=post", lambda m: m.norm == "post"),
    ("norm=postln", lambda m: m.norm == "postln"),
    ("softcap=off", lambda m: m.softcap.attn is None and m.softcap.final is None),
    ("softcap.attn=20.0", lambda m: m.softcap.attn == 20.0),
    ("softcap.final=null", lambda m: m.softcap.final is None and m.softcap.attn == 50.0),
    ("attn.qk_norm=true", lambda m: m.attn.qk_norm),
    ("attn.query_pre_attn_scalar=8", lambda m: m.attn.query_pre_attn_scalar == 8),
    ("model.activation=swiglu", lambda m: m.activation == "swiglu"),
    ("model.activation=gelu", lambda m: m.activation == "gelu"),
    ("model.rope_theta=1000000.0", lambda m: m.rope_theta == 1e6),
]


@pytest.mark.parametrize("override, check", SWITCHES, ids=[s[0] for s in SWITCHES])
def test_each_switch_composes_reaches_the_model_and_takes_a_training_step(tmp_path, override, check):
    """Composed, validated, built and stepped, without a Trainer: the sweep tests train through Lightning."""
    config = compose_config(*TINY, "logger=none", f"run_root={tmp_path}", override)
    model_cfg = JobSpec.from_config(config).model
    assert check(model_cfg)
    torch.manual_seed(0)
    model = Decoder(model_cfg)
    ids = torch.randint(0, model_cfg.vocab_size, (2, config["data"]["seq_len"] + 1))
    loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    # from a near-uniform start: the loss of a uniform guess over the vocabulary, give or take
    assert abs(loss.item() - math.log(model_cfg.vocab_size)) < 0.5
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_mqar_trains_with_loss_at_query_positions_only(tmp_path):
    config = compose_config(*TINY, "data=mqar", "data.seq_len=32", "trainer.max_steps=3", "logger=none",
                            f"run_root={tmp_path}")  # fmt: skip
    summary = run_job(config, ["data=mqar"], group="test")
    assert summary["status"] == "finished" and summary["data/fingerprint"].startswith("mqar-")
    # the end of the run: accuracy per key-to-query distance bucket over every validation query
    queries = {k: v for k, v in summary.items() if k.startswith("val/queries_by_distance/")}
    assert sum(queries.values()) == 2 * 4 * 4  # data.val_batches x data.batch_size x data.n_pairs
    assert {"val/accuracy_within_window", "val/accuracy_beyond_window"} <= summary.keys()
    overall = sum(summary[k.replace("queries", "accuracy")] * n for k, n in queries.items()) / 32
    assert overall == pytest.approx(summary["final"]["val/accuracy"])


def test_optimizer_options_and_csv_logger(tmp_path):
    config = compose_config(*TINY, "optim.independent_wd=true", "optim.grad_clip=null", "trainer.max_steps=2",
                            "logger=csv", f"run_root={tmp_path}")  # fmt: skip
    summary = run_job(config, [], group="test")
    assert summary["status"] == "finished"
    assert list(tmp_path.glob("*/csv/metrics.csv"))


def test_precision_follows_the_accelerator_unless_asked():
    assert compose_config("trainer=gpu")["trainer"]["precision"] == "bf16-mixed"
    assert compose_config("trainer=ddp")["trainer"]["precision"] == "bf16-mixed"
    assert compose_config("trainer=ddp", "trainer.accelerator=cpu")["trainer"]["precision"] == "32-true"
    asked = compose_config("trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=bf16-mixed")
    assert asked["trainer"]["precision"] == "bf16-mixed"
    assert compose_config()["trainer"]["precision"] == "32-true"


@pytest.mark.parametrize("preset", ["default", "fdr", "limit", "overfit", "profiler"])
def test_each_debug_preset_composes_into_a_valid_job_of_its_own_run_store(preset):
    config = compose_config(f"debug={preset}")
    assert config["run_root"] == "runs-debug" and config["logger"]["kind"] == "none"
    assert JobSpec.from_config(config).trainer.accelerator == "cpu"


def test_a_fast_dev_run_runs_afresh_every_time_and_keeps_nothing(tmp_path, capsys):
    config = compose_config(*TINY, "debug=fdr", f"run_root={tmp_path}")
    for _ in range(2):
        assert run_job(config, ["debug=fdr"], group="debug")["status"] == "finished"
    out = capsys.readouterr().out
    assert out.count("[gemmalab] train debug=fdr seed=0") == 2 and "skip" not in out
    (run,) = [p for p in tmp_path.iterdir() if not p.name.startswith("_")]
    assert not (run / "metrics.jsonl").exists() and not list(run.glob("checkpoints/*.ckpt"))
