"""The run-store loader: each group's rows carry that group's labels, not those of the study that trained first."""

from __future__ import annotations

import json

from gemmalab.analysis.loaders import load_run_store
from gemmalab.runs.job import run_job
from gemmalab.runs.sweep_dir import SweepDir

from ..conftest import TINY
from ..test_conf import compose_config


def test_a_run_reused_by_another_study_carries_that_studys_labels(tmp_path):
    """The softcap study trains a run; the cascade study finds it done and uses it as its teacher. config.yaml is
    the first study's (no cascade), so the cascade table would miss its teacher row unless the member says so."""
    base = compose_config(*TINY, "logger=none", f"run_root={tmp_path}")
    first = run_job({**base, "ablation": "softcap"}, [], "paper-softcap")
    second = run_job({**base, "ablation": "cascade", "cascade": {"size": "teacher"}}, [], "paper-cascade")
    assert second["run_id"] == first["run_id"]  # one run: labels are outside the identity

    cascade = load_run_store(tmp_path, "paper-cascade")
    assert cascade[["ablation", "cascade.size"]].values.tolist() == [["cascade", "teacher"]]
    softcap = load_run_store(tmp_path, "paper-softcap")
    assert softcap["ablation"].tolist() == ["softcap"] and "cascade.size" not in softcap

    # a sweep recorded before members carried labels: the run's own config.yaml, as before
    members = SweepDir(tmp_path, "paper-cascade").members_path
    lines = [json.loads(line) for line in members.read_text().splitlines()]
    members.write_text("".join(json.dumps({k: v for k, v in m.items() if k != "labels"}) + "\n" for m in lines))
    assert load_run_store(tmp_path, "paper-cascade")["ablation"].tolist() == ["softcap"]
