from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from gemmalab.errors import DamagedFile, RunBusy
from gemmalab.runs.lease import LEASE_HOURS, process_started
from gemmalab.runs.metrics_file import last_values
from gemmalab.runs.metrics_logger import RunStoreLogger
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir
from gemmalab.train.checkpoints import checkpoint_problem, load_checkpoint
from gemmalab.train.lightning_fixes import SafeCheckpointIO


def test_metrics_keep_the_last_value_per_step_and_survive_a_cut_line(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\n")
    logger = RunStoreLogger(run)
    logger.log_metrics({"train/loss": 3.0}, step=0)
    logger.log_metrics({"train/loss": 2.5}, step=1)
    logger.log_metrics({"val/loss": 2.7}, step=1)
    with run.metrics_path.open("a") as f:
        f.write('{"step": 2, "train/lo')  # the process was killed mid-write
    logger.log_metrics({"train/loss": 2.4}, step=1)  # a resumed run logs step 1 again
    logger.log_metrics({"train/loss": float("nan")}, step=2)
    metrics = run.metrics()
    assert metrics[0] == {"train/loss": 3.0}
    assert metrics[1] == {"train/loss": 2.4, "val/loss": 2.7}
    assert metrics[2]["train/loss"] != metrics[2]["train/loss"]  # nan round-trips
    assert last_values(metrics)["val/loss"] == 2.7 and math.isnan(last_values(metrics)["train/loss"])


def test_summary_updates_merge_and_status_decides_skipping(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\n")
    assert run.summary() is None and not run.is_done()
    run.update_summary(status="running", name="x")
    assert not run.is_done()
    run.update_summary(status="diverged at step 7")
    assert run.is_done() and run.summary() == {"status": "diverged at step 7", "name": "x"}
    run.update_summary(status="failed: boom")
    assert not run.is_done()  # a failure is retried by the next sweep


def test_a_resumed_run_keeps_the_config_it_started_with(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\nlogger: csv\n")
    run.create("seed: 0\nlogger: none\n")
    assert run.config_path.read_text() == "seed: 0\nlogger: csv\n"


def test_sweep_members_append(tmp_path):
    sweep = SweepDir(tmp_path, "g")
    sweep.record({"run_id": "a"})
    sweep.record({"run_id": "b"})
    assert [json.loads(line)["run_id"] for line in sweep.members_path.read_text().splitlines()] == ["a", "b"]


def test_damaged_metric_lines_are_skipped_and_numbered(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\n")
    run.metrics_path.write_bytes(
        b'{"step": 0, "train/loss": 3.0}\n'
        b'\xff\xfe{"step": 1}\n'  # bytes that are not UTF-8
        b'{"train/loss": 2.0}\n'  # no step
        b'{"step": 1, "train/loss": "fast"}\n'  # not a number
        b"[1, 2]\n"  # not an object
        b'{"step": 2, "train/loss": 2.5}\n'
    )
    assert run.metrics() == {0: {"train/loss": 3.0}, 2: {"train/loss": 2.5}}
    assert run.damaged_metric_lines() == [2, 3, 4, 5]


def test_a_damaged_summary_is_named_and_set_aside(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.create("seed: 0\n")
    run.update_summary(status="finished", name="x")
    run.summary_path.write_text(run.summary_path.read_text()[:10])
    with pytest.raises(DamagedFile, match=f"^{run.summary_path} is damaged \\(JSONDecodeError"):
        run.summary()
    (note,) = run.repair_summary()
    assert note.endswith("moved to summary.json.damaged") and run.summary() is None
    run.summary_path.write_text('"finished"')  # JSON, but not a summary
    with pytest.raises(DamagedFile, match="not a run summary"):
        run.summary()
    run.repair_summary()
    assert (run.path / "summary.json.damaged-1").exists()  # the first one is kept too


def save_two(directory) -> tuple:
    io = SafeCheckpointIO(spare=directory / "previous.ckpt")
    last = directory / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(4000.0)}, last)
    io.save_checkpoint({"step": 2, "w": torch.arange(4000.0) * 2}, last)
    return last, directory / "previous.ckpt"


def test_checkpoints_are_written_atomically_and_the_one_before_is_kept(tmp_path):
    last, previous = save_two(tmp_path)
    assert torch.load(last)["step"] == 2 and torch.load(previous)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "previous.ckpt"]  # no temporary left


@pytest.mark.parametrize("damage", ["truncate", "random", "flip"])
def test_a_damaged_checkpoint_is_found_without_unpickling_it(tmp_path, damage):
    last, previous = save_two(tmp_path)
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        last.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        last.write_bytes(os.urandom(len(data)))
    else:  # one byte inside the tensor data: the archive still opens, the CRC does not match
        data[len(data) // 2] ^= 0xFF
        last.write_bytes(data)
    assert checkpoint_problem(previous) is None and checkpoint_problem(last) is not None
    with pytest.raises(DamagedFile, match=f"^{last} is damaged"):  # teachers and evaluations load through it
        load_checkpoint(last)
    run = RunDir(tmp_path, "run")
    run.checkpoint_dir.mkdir(parents=True)
    for p in (last, previous):
        p.rename(run.checkpoint_dir / p.name)
    (note,) = run.repair_checkpoints()
    assert note.startswith(f"{run.checkpoint_dir / 'last.ckpt'} is damaged (")
    assert run.last_checkpoint() == run.checkpoint_dir / "previous.ckpt"
    assert (run.checkpoint_dir / "last.ckpt.damaged").exists()


def test_a_run_is_leased_to_one_live_process_at_a_time(tmp_path):
    run = RunDir(tmp_path, "abc")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.path.mkdir()
        lease = {"host": socket.gethostname(), "pid": holder.pid, "since": time.time(),
                 "started": process_started(holder.pid)}  # fmt: skip
        (run.path / "lease.json").write_text(json.dumps(lease))
        with pytest.raises(RunBusy, match=f"^run abc .* is being trained by pid {holder.pid} on "):
            with run.lease():
                pass
        # the same pid, but another process: the holder is gone and its pid reused (a reboot, a busy node)
        (run.path / "lease.json").write_text(json.dumps({**lease, "started": "another-boot:12345"}))
        with run.lease():
            assert json.loads((run.path / "lease.json").read_text())["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.wait()
    with run.lease():  # its holder is gone: taken over, and released at the end
        assert json.loads((run.path / "lease.json").read_text())["pid"] == os.getpid()
    assert not (run.path / "lease.json").exists()


def test_a_lease_from_another_host_holds_until_it_expires(tmp_path):
    run = RunDir(tmp_path, "abc")
    run.path.mkdir()
    for age_hours, busy in ((1, True), (LEASE_HOURS + 1, False)):
        lease = {"host": "elsewhere", "pid": 1, "since": time.time() - age_hours * 3600}
        (run.path / "lease.json").write_text(json.dumps(lease))
        if busy:
            with pytest.raises(RunBusy, match="on elsewhere since"):
                with run.lease():
                    pass
        else:
            with run.lease():
                pass
    (run.path / "lease.json").write_text('{"host": "x", "pi')  # cut short by a kill: abandoned
    with run.lease():
        pass


def test_a_requeued_slurm_job_takes_over_its_own_lease(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "abc")
    run.path.mkdir()
    lease = {"host": "node-7", "pid": 1, "since": time.time(), "job": "4242"}  # before the requeue, elsewhere
    (run.path / "lease.json").write_text(json.dumps(lease))
    monkeypatch.setenv("SLURM_JOB_ID", "4243")
    with pytest.raises(RunBusy, match="on node-7"):
        with run.lease():
            pass
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # the same job, requeued
    with run.lease():
        assert json.loads((run.path / "lease.json").read_text())["job"] == "4242"


def test_latest_members_keep_each_jobs_last_line(tmp_path):
    sweep = SweepDir(tmp_path, "g")
    sweep.record({"run_id": "a", "overrides": ["seed=0"], "status": "started"})
    sweep.record({"overrides": ["seed=1"], "status": "not started: the sweep was stopped"})
    sweep.record({"run_id": "a", "overrides": ["seed=0"], "status": "finished"})
    assert [m["status"] for m in sweep.latest_members()] == ["finished", "not started: the sweep was stopped"]


def test_a_job_of_the_same_sweep_waits_for_the_run_another_holds_and_another_sweeps_job_is_refused(tmp_path):
    """Two jobs of one sweep whose settings differ only where a run never reads (a parallel launcher starts both):
    the second waits for the first, then holds the run; a job of another sweep is refused at once."""
    run = RunDir(tmp_path, "abc")
    code = (f"import time\nfrom gemmalab.runs.store import RunDir\nwith RunDir({str(tmp_path)!r}, 'abc').lease('g'):\n"
            "    print('held', flush=True)\n    time.sleep(2)\n")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=f"is being trained by pid {holder.pid}"):
            with run.lease("another-sweep"):
                pass
        start = time.monotonic()
        with run.lease("g", poll_s=0.1):  # released when the first job's lease ends
            waited = time.monotonic() - start
            assert json.loads((run.path / "lease.json").read_text())["pid"] == os.getpid()
        assert 0.5 < waited < 30
    finally:
        holder.kill()
        holder.wait()
