"""run_job's guarantees about data: a run never mixes two versions of its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemmalab.errors import ConfigError
from gemmalab.runs.job import run_job
from gemmalab.runs.store import RunDir

from ..conftest import TINY
from ..test_conf import compose_config


def test_a_run_whose_files_changed_is_refused_on_skip_and_on_resume(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(3000)))
    config = compose_config(*TINY, "data=files", f"data.files=[{corpus}]", "logger=none", f"run_root={tmp_path / 'r'}")
    summary = run_job(config, [], "g")
    assert summary["status"] == "finished" and summary["data/source"].startswith("files-")
    run = RunDir(tmp_path / "r", summary["run_id"])
    metrics = run.metrics_path.read_bytes()

    corpus.write_text(corpus.read_text().replace("fox", "cat"))
    with pytest.raises(ConfigError) as err:  # the finished run is not passed off as trained on the new text
        run_job(config, [], "g")
    assert f"run {run.run_id} (seed=0) was trained on data {summary['data/source']}, but data.files=" in str(err.value)
    assert "allowed: the data it was trained on" in str(err.value) and "\n" not in str(err.value)

    run.update_summary(status="running")  # as a kill leaves it: checkpoints and a run that never ended
    with pytest.raises(ConfigError, match="was trained on data"):  # nor resumed on it
        run_job(config, [], "g")
    assert run.metrics_path.read_bytes() == metrics and run.summary()["data/source"] == summary["data/source"]

    corpus.write_text(corpus.read_text().replace("cat", "fox"))  # the original text again: it resumes
    assert run_job(config, [], "g")["status"] == "finished"


def test_a_finished_job_leaves_no_memory_map_of_its_data_behind(tmp_path):
    """Reference cycles of the fit (Trainer, module, loggers) held each job's memory-mapped token cache until
    some later full collection: a long W&B sweep grew by megabytes and open files a job."""
    config = compose_config(*TINY, f"run_root={tmp_path / 'r'}")  # W&B offline: the logger that held them
    assert run_job(config, [], "g")["status"] == "finished"
    assert str(tmp_path / "r" / "_cache") not in Path("/proc/self/maps").read_text()


def test_a_local_dataset_folder_edited_in_place_is_refused_before_any_job(tmp_path):
    """A Hugging Face dataset folder is known by its files' content: the same command on the edited folder is
    refused by the preflight, in one line that says what to do, and never reads the old token cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gemmalab.runs.preflight import validate_all_jobs

    from ..conftest import REPO

    folder = tmp_path / "dataset"
    folder.mkdir()
    rows = [f"row {i}: the quick brown fox jumps over the lazy dog" for i in range(500)]
    pq.write_table(pa.table({"text": rows}), folder / "train.parquet")
    args = [*TINY, "data=hf", f"data.name={folder}", "logger=none", f"run_root={tmp_path / 'r'}"]
    summary = run_job(compose_config(*args), [], "g")
    assert summary["status"] == "finished" and summary["data/source"].startswith("hfdir-")

    pq.write_table(pa.table({"text": [r.upper() for r in rows[:100]]}), folder / "train.parquet")
    with pytest.raises(ConfigError) as err:
        validate_all_jobs(args, config_dir=REPO / "conf")
    message = str(err.value)
    assert message.startswith(f"run {summary['run_id']} (") and "seed=0) was trained on data" in message
    assert f"was trained on data {summary['data/source']}, but data.name={str(folder)!r} is now hfdir-" in message
    assert "another run_root=..., or remove" in message and "\n" not in message
    assert len([p for p in (tmp_path / "r" / "_cache").glob("hf-bytes-*") if p.is_dir()]) == 1  # none for the new data


def test_overfit_batches_validates_on_the_batches_it_trains_on_and_says_it_overfits(tmp_path, capsys):
    """debug=overfit's check: held-out data could not fall to a fifth of its initial loss in 40 steps of a
    tiny model; the 2 batches it trains on can, and the closing line says so."""
    config = compose_config(*TINY, "trainer.overfit_batches=2", "trainer.max_steps=40", "trainer.val_every=20",
                            "optim.lr=1e-2", "logger=none", f"run_root={tmp_path}")  # fmt: skip
    summary = run_job(config, [], "g")
    assert summary["val/loss"] < summary["val/loss_init"] / 4
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("[gemmalab] finished: seed=0  val/loss=") and line.endswith(
        f"on the 2 batch(es) it trains on (trainer.overfit_batches), from {summary['val/loss_init']:.4f} at step 0: "
        f"{summary['val/loss'] / summary['val/loss_init']:.0%} of it, it overfits them")  # fmt: skip
