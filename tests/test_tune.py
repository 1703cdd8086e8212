"""+tune=lr: the selection reads val/loss alone, the comparison's table reads the test split."""

from __future__ import annotations

import json

import pytest
import yaml

from gemmalab.analysis import report
from gemmalab.analysis.loaders import load_run_store
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.tune import arm_key, choose, lr_grid
from tests.conftest import launch_here

DOCS = [f"document {i}: " + "the quick brown fox jumps " * (1 + i % 5) for i in range(400)]
TUNED = ["-m", "+tune=lr", "norm=pre,dual", "seed=0", "tune.points=3", "logger=none", "data.source=files",
         "data.max_tokens=100000"]  # fmt: skip


def corpus(root, test_docs: str) -> str:
    """A corpus whose documents 10, 30, 50, ... (config.split_of: the test split) read `test_docs`."""
    path = root / "corpus.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(test_docs if i % 20 == 10 else d for i, d in enumerate(DOCS)) + "\n")
    return f"data.files=[{path}]"


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> tuple:
    """The tuned study on a corpus, and its selection sweep alone (as sweep.py runs it) on a corpus that
    differs from it in its test documents alone."""
    root = tmp_path_factory.mktemp("tuned")
    code, tuned = launch_here(root / "a", *TUNED, corpus(root / "a", "plain words"))
    assert code == 0
    grid = ",".join(map(str, lr_grid(3e-3, 3, 0.5)))
    code, _ = launch_here(root / "b", *TUNED, corpus(root / "b", "zq xj vk"), "tune.stage=select", f"optim.lr={grid}",
                          f"group=select-{tuned}")  # fmt: skip
    assert code == 0
    return root, tuned


def test_a_planted_test_split_change_moves_the_reported_loss_never_the_chosen_lr(two_corpora):
    root, tuned = two_corpora
    chosen = {name: sorted((c.lr, sorted(c.losses.items())) for c in choose(root / name, f"select-{tuned}").values())
              for name in "ab"}  # the arms' keys differ (data.files), their choices must not  # fmt: skip
    assert chosen["a"] == chosen["b"] and len(chosen["a"]) == 2  # same val/loss at every grid point: same choice
    assert all([lr for lr, _ in losses] == lr_grid(3e-3, 3, 0.5) for _, losses in chosen["a"])
    a, b = (load_run_store(root / name, f"select-{tuned}").set_index("name").sort_index() for name in "ab")
    assert len(a) == 6 and a["val/loss"].tolist() == b["val/loss"].tolist()  # never trained or validated on test
    assert all(x != y for x, y in zip(a["test/loss"], b["test/loss"], strict=True))
    compared = load_run_store(root / "a", tuned)
    assert set(compared["seed"]) == {1000} and set(compared["tune.stage"]) == {"compare"}
    out = report.main(["--run-root", str(root / "a"), "--group", tuned, "--no-wandb"])
    table = (out / "tables" / "tuned.md").read_text()
    assert "best LR (val/loss)" in table and "test/loss at tuned LR" in table and "EDGE: widen the grid" in table


def test_the_choice_follows_val_loss_and_flags_an_edge(two_corpora):
    root, group = two_corpora
    tmp_path = root / "b"
    selection = f"select-{group}"
    before = choose(tmp_path, selection)
    members = [m["run_id"] for m in SweepDir(tmp_path, selection).latest_members()]
    for run_id in members:  # a changed test/loss in every selection summary: nothing moves
        path = RunDir(tmp_path, run_id).summary_path
        path.write_text(json.dumps({**json.loads(path.read_text()), "test/loss": 0.0}))
    assert {k: c.lr for k, c in choose(tmp_path, selection).items()} == {k: c.lr for k, c in before.items()}
    run = RunDir(tmp_path, members[0])  # a worse val/loss than any: that grid point cannot be chosen
    config = yaml.safe_load(run.config_path.read_text())
    arm, lr = arm_key(config), float(config["optim"]["lr"])
    for value in (-1.0, 99.0):
        run.summary_path.write_text(json.dumps({**json.loads(run.summary_path.read_text()), "val/loss": value}))
        choice = choose(tmp_path, selection)[arm]
        assert (choice.lr == lr) == (value < 0)
        assert choice.edge == (choice.lr in (min(choice.losses), max(choice.losses)))


def test_tune_refuses_a_swept_lr(sweep_here, tmp_path, capsys):
    code, _ = sweep_here(tmp_path, "-m", "+tune=lr", "optim.lr=1e-3,3e-3", "logger=none")
    assert code == 2 and "error: +tune=lr chooses optim.lr itself" in capsys.readouterr().err
    assert not (tmp_path / "_sweeps").exists()


@pytest.mark.parametrize("bad, allowed", [("tune.points=2", ">= 3"), ("tune.arm_lr=best", "shared, tuned")])
def test_bad_tune_settings_are_one_line(sweep_here, tmp_path, capsys, bad, allowed):
    code, _ = sweep_here(tmp_path, "-m", "+tune=lr", "seed=0,1", bad, "logger=none")
    assert code == 2 and allowed in capsys.readouterr().err
