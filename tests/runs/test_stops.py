"""A training process stops after its step once its sweep is stopping, its run is marked for requeue, or
whoever started it on this host is gone: all read from files and pids, nothing from memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from gemmalab.runs.lease import process_started
from gemmalab.runs.stops import launcher_of_this_worker, stop_check
from gemmalab.runs.store import RunDir
from gemmalab.runs.sweep_dir import SweepDir


def test_a_stop_file_or_a_requeue_mark_stops_the_fit(tmp_path):
    sweep, run = SweepDir(tmp_path, "g"), RunDir(tmp_path, "r")
    sweep.plan(jobs=1, swept=None)
    run.create("seed: 0\n")
    should_stop = stop_check(sweep, run)
    assert not should_stop()
    sweep.request_stop(signal.SIGTERM)  # what sweep.py's SIGTERM handler does
    assert should_stop() and sweep.stop_signal() == signal.SIGTERM
    sweep.plan(jobs=1, swept=None)  # a new sweep of the same group starts without the old stop
    assert not should_stop()
    run.requeue_path.touch()  # what a submitit job's USR2 handler does (runs/requeue.py)
    assert should_stop()


@pytest.mark.processes
def test_a_worker_stops_when_its_launcher_on_this_host_is_gone(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sweep, run = SweepDir(tmp_path, "g"), RunDir(tmp_path, "r")
    sweep.plan(jobs=2, swept=None)
    info = sweep.info()
    info["launcher"].update(pid=launcher.pid, started=process_started(launcher.pid))  # as if it planned the sweep
    sweep.info_path.write_text(json.dumps(info))
    should_stop = stop_check(sweep, run)
    assert launcher_of_this_worker(sweep)[0] == launcher.pid and not should_stop()
    launcher.kill()  # as `kill -9` on sweep.py
    launcher.wait()
    assert should_stop()


def test_the_launching_process_and_a_slurm_job_watch_no_launcher(tmp_path, monkeypatch):
    sweep = SweepDir(tmp_path, "g")
    sweep.plan(jobs=2, swept=None)
    assert launcher_of_this_worker(sweep) is None  # this process planned it
    info = sweep.info()
    info["launcher"].update(pid=os.getppid(), started=process_started(os.getppid()))
    sweep.info_path.write_text(json.dumps(info))
    assert launcher_of_this_worker(sweep)[0] == os.getppid()
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # a job SLURM started: the scheduler's, not the shell's
    assert launcher_of_this_worker(sweep) is None


@pytest.mark.processes
def test_a_process_started_for_a_run_stops_when_its_parent_is_gone(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sweep, run = SweepDir(tmp_path, "g"), RunDir(tmp_path, "r")
    should_stop = stop_check(sweep, run, parent=parent.pid)
    assert not should_stop()
    parent.kill()
    parent.wait()
    assert should_stop()
