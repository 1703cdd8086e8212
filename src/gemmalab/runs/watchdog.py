"""Workers never outlive their sweep.

Under the joblib and submitit launchers a job runs in a worker process, which neither the signal
handler of sweep.py (the launcher) nor its death reaches: a killed sweep would leave its workers
training. sweep.py records who launched the sweep (host and pid) in the environment its workers
inherit, and on SIGTERM / SIGINT also touches a stop file; each worker watches both and, once the
launcher is gone or asked to stop, stops its job after the current step (saved, recorded
`interrupted`) and starts no further job.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from gemmalab.schema import SWEEP_ID
from gemmalab.train.fit import stop_requested

from .store import pid_alive

LAUNCHER = "GEMMALAB_LAUNCHER"  # "<host>:<pid>" of the sweep.py that launched the jobs
CHECK_EVERY_S = 2.0


def stop_file(sweep_id: str) -> Path:
    """Touched by the launcher when it is asked to stop; workers on the same machine see it."""
    return Path(tempfile.gettempdir()) / f"gemmalab-stop-{sweep_id}"


def launcher_alive(launcher: str) -> bool:
    """Whether the launching process still runs (always True for one on another host: its jobs there
    are SLURM's, which signals them itself)."""
    host, pid = launcher.rsplit(":", 1)
    return host != socket.gethostname() or pid_alive(int(pid))


_watching: list[threading.Thread] = []


def watch_launcher(launcher: str, stop: Path) -> None:
    """In a worker process: set stop_requested once the launcher is gone or `stop` exists (once per process)."""
    if _watching:
        return

    def watch() -> None:
        while not stop_requested.is_set():
            if not launcher_alive(launcher) or stop.exists():
                stop_requested.set()
                return
            time.sleep(CHECK_EVERY_S)

    _watching.append(threading.Thread(target=watch, name="gemmalab-launcher-watch", daemon=True))
    _watching[0].start()


def _launcher_of_this_worker() -> str | None:
    """The launching sweep.py's "<host>:<pid>" when this process is one of its workers, else None."""
    launcher = os.environ.get(LAUNCHER)
    return launcher if launcher and not launcher.endswith(f":{os.getpid()}") else None


def stop_seen() -> bool:
    """Whether this process was asked to stop; in a worker process, watching its launcher from now on."""
    if launcher := _launcher_of_this_worker():
        watch_launcher(launcher, stop_file(os.environ[SWEEP_ID]))
    return stop_requested.is_set()


def exit_if_orphaned() -> None:
    """A worker whose launcher is gone ends its process once its job is saved and recorded: no one will
    collect its result, and an idle pool worker would otherwise linger for minutes."""
    if (launcher := _launcher_of_this_worker()) and not launcher_alive(launcher):
        os._exit(1)
