"""A worker process stops its job once the sweep that launched it is gone or asked to stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from gemmalab.runs import watchdog
from gemmalab.train.fit import stop_requested


@pytest.fixture
def fresh_watch(monkeypatch):
    monkeypatch.setattr(watchdog, "_watching", [])
    monkeypatch.setattr(watchdog, "CHECK_EVERY_S", 0.05)
    stop_requested.clear()
    yield
    stop_requested.clear()


def wait_for_stop(seconds: float = 5.0) -> bool:
    return stop_requested.wait(seconds)


def test_a_dead_launcher_on_this_host_is_seen(fresh_watch, tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    here = f"{socket.gethostname()}:{launcher.pid}"
    assert watchdog.launcher_alive(here)
    watchdog.watch_launcher(here, tmp_path / "stop")
    time.sleep(0.2)
    assert not stop_requested.is_set()  # alive: the job goes on
    launcher.kill()  # as `kill -9` on sweep.py
    launcher.wait()
    assert wait_for_stop() and not watchdog.launcher_alive(here)
    assert watchdog.launcher_alive(f"another-host:{launcher.pid}")  # SLURM signals its own jobs


def test_a_stop_file_stops_the_worker(fresh_watch, tmp_path):
    watchdog.watch_launcher(f"{socket.gethostname()}:{os.getpid()}", tmp_path / "stop")
    time.sleep(0.2)
    assert not stop_requested.is_set()
    (tmp_path / "stop").touch()  # what sweep.py's SIGTERM handler does
    assert wait_for_stop()
