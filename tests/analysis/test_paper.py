import json
import subprocess

import pytest

from gemmalab.analysis import paper, paper_text
from gemmalab.analysis.claims import CLAIMS
from gemmalab.analysis.loaders import load_run_store
from gemmalab.analysis.sequential import pocock_level
from gemmalab.analysis.tables import to_markdown

from ..conftest import REPO


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The whole paper at tiny scale, as CI runs it: every study trained, reported and judged."""
    root = tmp_path_factory.mktemp("paper")
    out = paper.main(["--smoke", "--run-root", str(root)])
    return root, out, json.loads((out / "findings.json").read_text())


def test_the_smoke_paper_runs_every_study_and_gives_every_claim_a_verdict(smoke):
    root, out, findings = smoke
    assert findings["smoke"] is True
    assert set(findings["studies"]) == {s.name for s in paper.STUDIES}
    for name, info in findings["studies"].items():
        assert info["runs"] >= 2 and info["finished"] == info["runs"], name  # every study trained at tiny scale
        assert (out / "studies" / name / "tables" / f"{info['main_table']}.md").exists(), name
    assert [c["id"] for c in findings["claims"]] == [c.id for c in CLAIMS]
    verdicts = {c["id"]: c["verdict"] for c in findings["claims"]}
    assert all(verdicts.values())
    measured = [c for c in findings["claims"] if c["n"]]  # a difference over seeds, with its CI and power
    assert len(measured) >= 10 and all(c["ci"] is not None for c in measured)
    assert sum(c["detectable"] is not None for c in measured) >= 8  # none where the seeds did not spread
    for c in measured:  # every value behind a difference, published; p raw and adjusted in its family
        assert len(c["per_seed"]) >= 2 * c["n"] and {"arm", "where", "seed", "run_id", "value"} == set(c["per_seed"][0])
    tested = [c for c in measured if c["p"] is not None and c["p_holm"] is not None]
    assert tested and all(c["p_holm"] >= c["p"] for c in tested)
    text = (out / "paper.md").read_text()
    assert "SMOKE RUN" in text and "they are not findings" in text and paper.RULE in text
    assert "- commit: " in text and "torch " in text and "data fingerprints: embedded-" in text
    assert "seeds learned" in (out / "studies" / "mqar" / "tables" / "mqar.md").read_text()
    assert r"\input{studies/softcap/tables/softcap.tex}" in (out / "paper.tex").read_text()


def test_the_paper_reaches_wandb_as_numbers_and_images(smoke):
    root, out, findings = smoke
    (run,) = (out / "wandb" / "wandb").glob("offline-run-*")
    inspected = subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run)], capture_output=True,
                               text=True, check=True)  # fmt: skip
    record = json.loads(inspected.stdout)
    assert record["config"]["group"] == "paper-smoke"
    assert set(record["config"]["members"]) == {i for s in findings["studies"].values() for i in s["run_ids"]}
    (table,) = (run / "files" / "media" / "table" / "numbers").glob("verdicts_*.table.json")
    table = json.loads(table.read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert len(rows) == len(CLAIMS)
    assert all(isinstance(r["value"], float) for r in rows if r["value"] is not None)
    assert any(isinstance(r["ci"], float) and r["ci"] > 0 for r in rows)
    assert list((run / "files" / "media" / "images" / "figures").glob("*.png"))


def test_a_second_invocation_trains_nothing_and_rebuilds_the_same_findings(smoke, capsys):
    root, out, _ = smoke
    subset = ["--smoke", "--run-root", str(root), "--only", "softcap,window_at_inference", "--wandb-mode", "disabled"]
    first = (paper.main(subset) / "findings.json").read_bytes()
    runs = sorted(p.name for p in root.iterdir())
    capsys.readouterr()
    again = (paper.main(subset) / "findings.json").read_bytes()
    assert again == first and sorted(p.name for p in root.iterdir()) == runs
    printed = capsys.readouterr().out
    assert "0 runs to train; 0 to go in all" in printed and "] train " not in printed
    stamp = (out / "findings.md").read_text()  # a paper of some studies says which it left out
    assert "- **PARTIAL**: --only left out norm, norm_init, norm_horizon, kv_heads," in stamp


def test_bad_paper_arguments_are_one_line_before_any_work(tmp_path, capsys):
    for argv, message in [
        (["--only", "sofcap"], "--only sofcap is not a study (allowed: softcap, norm"),
        (["--smoke", "--publish", str(tmp_path)], "--publish with --smoke is not allowed"),
        (["group=mine"], "group=mine is not allowed (the paper names its groups"),
        (["--smoke", "optim.lr=fast"], "error: study softcap: optim.lr='fast' is not allowed (allowed: a number)"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            paper.main([*argv, "--run-root", str(tmp_path)])
        assert message in str(exit_info.value)
    assert not (tmp_path / "_sweeps").exists()


def test_the_readmes_findings_are_the_committed_findings_file():
    findings = json.loads((REPO / "findings.json").read_text())
    assert findings["smoke"] is False and len(findings["claims"]) == len(CLAIMS)
    readme = (REPO / "README.md").read_text()
    begin, end = paper_text.README_BEGIN, paper_text.README_END
    block = readme[readme.index(begin) : readme.index(end) + len(end)]
    assert block == paper_text.readme_block(findings)  # python analysis/paper.py --publish . rewrites both
    assert to_markdown(paper_text.verdict_table(findings["claims"])) in (REPO / "FINDINGS.md").read_text()


def test_publish_is_refused_on_a_working_tree_that_differs_from_its_commit(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    with pytest.raises(SystemExit, match="error: --publish needs a git checkout"):
        paper.check_publishable(tmp_path)
    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "code")
    paper.check_publishable(tmp_path)  # clean: its findings name this commit
    (tmp_path / "code.py").write_text("x = 2\n")
    with pytest.raises(SystemExit) as refused:
        paper.check_publishable(tmp_path)
    assert str(refused.value).startswith("error: --publish needs a clean working tree, and 1 file(s) differ from "
                                         "the commit (code.py) (allowed: commit or stash them")  # fmt: skip


def test_a_claim_still_open_gets_a_later_look_with_more_seeds_for_its_arms_only(tmp_path):
    """--max-seeds 3 over the smoke's 2 seeds: the norm claims left open get seed 2 for the arms they read, in
    a group of their own; every verdict is at the looks' constant level and says why it stopped."""
    out = paper.main(["--smoke", "--only", "norm", "--max-seeds", "3", "--run-root", str(tmp_path),
                      "--wandb-mode", "disabled"])  # fmt: skip
    findings = json.loads((out / "findings.json").read_text())
    rows = {c["id"]: c for c in findings["claims"]}
    norm = [rows[i] for i in ("norm-dual-vs-pre", "norm-dual-vs-post", "norm-post-quality", "norm-postln-quality")]
    assert all(r["level"] == pytest.approx(pocock_level((2, 3)), rel=1e-4) for r in findings["claims"])
    extended = [r for r in norm if [look["seeds"] for look in r["looks"]] == [2, 3]]
    assert extended, [r["verdict"] for r in norm]  # at tiny scale some stay open after 2 seeds
    for r in extended:
        assert r["n"] == 3 and {v["seed"] for v in r["per_seed"]} == {0, 1, 2}
        assert r["stopped"].startswith(("decided at 3 seeds", "open at the maximum (3 seeds, looks at 2, 3)"))
    (look,) = findings["studies"]["norm"]["later_looks"]
    runs = load_run_store(tmp_path, look["group"])
    assert set(runs["seed"]) == {2} and look["seeds"] == 3
    read = {arm["arm"] for r in extended for arm in r["per_seed"]}
    assert set(runs["norm"]) <= read  # only the arms an open claim reads were trained again
    assert "Pocock" in findings["rule"] and "3 seeds" not in rows["softcap-quality"]["stopped"]


def test_a_study_whose_jobs_need_the_ones_before_keeps_the_default_launcher(tmp_path):
    """A parallel launcher would start a distilled student before its teacher finished: the cascade drops it."""
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.max_steps=10"]
    by_name = {s.name: s for s in paper.STUDIES}
    cascade = paper.arguments(by_name["cascade"], False, tmp_path, extra)
    assert "trainer.max_steps=10" in cascade
    assert not any(a.startswith(("hydra/launcher", "hydra.launcher")) for a in cascade)
    assert paper.arguments(by_name["norm"], False, tmp_path, extra)[-3:] == extra
