"""+scale=cpu | gpu, +shape=deep and scale.match_params: what each job trains, composed the way sweep.py does."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from gemmalab.errors import ConfigError
from gemmalab.runs.derived import job_config
from gemmalab.runs.identity import run_identity
from gemmalab.runs.preflight import validate_all_jobs
from gemmalab.scale import non_embedding_parameters, training_flops_per_step
from gemmalab.schema import register

from .conftest import REPO


def job(*overrides: str) -> dict:
    register()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return job_config(compose("config", list(overrides)))


def test_the_cpu_ladder_spans_a_decade_and_a_half_with_tokens_proportional_to_parameters():
    rungs = [job("+scale=cpu", f"scale.rung={r}") for r in range(4)]
    params = [non_embedding_parameters(c) for c in rungs]
    assert params == sorted(params) and params[-1] / params[0] >= 10**1.5
    assert [c["model"]["d_model"] for c in rungs] == [32, 48, 80, 128]
    assert all(c["attn"]["kv_heads"] == c["model"]["n_heads"] // 2 for c in rungs)  # GQA follows the rung's heads
    tokens = [c["trainer"]["max_steps"] * c["data"]["batch_size"] * c["data"]["seq_len"] for c in rungs]
    assert all(4 * p <= t < 4 * p + 1024 for p, t in zip(params, tokens, strict=True))
    assert run_identity(rungs[3]) != run_identity(job())  # the laptop model, on the rung's budget


def test_the_deep_shape_matches_the_wide_one_and_the_matched_kv_heads_too():
    wide, deep = job("+shape=wide"), job("+shape=deep")
    assert run_identity(wide) == run_identity(job())  # the wide shape is the model as it is
    assert (deep["model"]["n_layers"], deep["model"]["d_ff"]) == (6, 296)
    assert abs(non_embedding_parameters(deep) / non_embedding_parameters(wide) - 1) < 0.01
    ladder_deep = job("+scale=cpu", "scale.rung=0", "+shape=deep")
    assert ladder_deep["model"]["n_layers"] == 3
    ratio = non_embedding_parameters(ladder_deep) / non_embedding_parameters(job("+scale=cpu", "scale.rung=0"))
    assert abs(ratio - 1) < 0.03
    plain = {k: non_embedding_parameters(job(f"kv={k}")) for k in ("mha", "gqa", "mqa")}
    matched = {k: non_embedding_parameters(job(f"kv={k}", "scale.match_params=true")) for k in plain}
    assert plain["mha"] / plain["mqa"] > 1.10  # 1.051M vs 0.952M
    assert max(matched.values()) / min(matched.values()) < 1.01


def test_the_gpu_ladder_composes_and_validates():
    # validated here on the CPU, with the embedded corpus repeated: the two refusals a GPU machine with a large
    # source would not meet (tests/test_sweep.py shows both)
    plan = validate_all_jobs(["-m", "+ablation=softcap", "+scale=gpu", "trainer.accelerator=cpu",
                              "data.allow_repeat=true", "logger=none"], config_dir=REPO / "conf")  # fmt: skip
    assert plan.jobs == 2 * 4 * 3 and {"scale.rung", "softcap", "seed"} <= plan.swept
    top = job("+scale=gpu", "scale.rung=3", "logger=none")
    assert 0.9e8 < non_embedding_parameters(top) < 1.2e8 and top["trainer"]["accelerator"] == "gpu"


def test_a_rung_beyond_the_ladder_is_one_line():
    with pytest.raises(ConfigError, match=r"^scale.rung=4 is not allowed with scale.ladder=cpu \(allowed: 0 to 3\)"):
        job("+scale=cpu", "scale.rung=4")


def test_a_flops_budget_gives_costlier_arms_fewer_steps_at_equal_compute():
    runs = {k: job(f"kv={k}", "scale.flops_per_run=2e12") for k in ("mha", "mqa")}
    steps = {k: c["trainer"]["max_steps"] for k, c in runs.items()}
    flops = {k: training_flops_per_step(c) for k, c in runs.items()}
    assert flops["mha"] > flops["mqa"] and steps["mha"] < steps["mqa"]
    assert all(2e12 - f < steps[k] * f <= 2e12 for k, f in flops.items())
    with pytest.raises(ConfigError, match="both set"):
        job("scale.flops_per_run=1e12", "scale.tokens_per_param=4")
