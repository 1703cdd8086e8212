"""Torch's CPU threads on an idle and on a busy machine: a short `python sweep.py` run with 1 or 2 threads,
with OpenMP's default (spinning) wait, OMP_WAIT_POLICY=PASSIVE or a shorter GOMP_SPINCOUNT, alone and beside a
second CPU-bound training process (what a laptop running a browser and another sweep looks like). Each setting
is a fresh process given its environment before torch loads; settings interleaved over rounds.

    python benchmarks/threads.py --rounds 3                   # 100 steps of the laptop model
    python benchmarks/threads.py --rounds 2 trainer.max_steps=50

Prints, per setting and machine state, the median seconds of the run's training steps (summed from its own
train/tokens_per_sec) and of the whole process, with their ranges.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gemmalab.benchmarks.harness_overhead import QUIET, REPO, run_phases, timed

SETTINGS = {  # name: the environment the run's process starts with
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "1 thread passive": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    "2 threads": {"OMP_NUM_THREADS": "2"},
    "2 threads passive": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    # libgomp's spin before a waiting thread sleeps: 300,000 by default, 0 with PASSIVE
    "2 threads spin 10k": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "10000"},
    "2 threads spin 1k": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "1000"},
}
UNSET = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # what the settings decide, cleared first


@contextlib.contextmanager
def second_process(busy: bool, shared: list[str], work: Path, threads: int | None) -> Iterator[None]:
    """While inside: a second training run on the machine (torch's defaults, every core and spinning waits,
    unless `threads` is given), long enough to outlast the measurement; killed on the way out."""
    if not busy:
        yield
        return
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    load = subprocess.Popen([sys.executable, "sweep.py", *shared, "trainer.max_steps=100000", "data.allow_repeat=true",
                             "logger=none",
                             f"run_root={work / 'load'}"], cwd=REPO, env=env,  # fmt: skip
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(10)  # its imports and set-up: it trains by the time the first measured run does
        if load.poll() is not None:
            sys.exit(f"error: the second process ended (exit {load.returncode}) before the measurement")
        yield
    finally:
        load.kill()
        load.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--states", default="idle,busy", help="which machine states to measure in")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="which of: " + ", ".join(SETTINGS))
    parser.add_argument("--load-threads", type=int, help="the second process's threads (default: torch's)")
    parser.add_argument("overrides", nargs="*", help="sweep.py overrides (default: trainer.max_steps=100)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gemmalab-threads-"))
    shared = ["trainer.max_steps=100", *args.overrides, *QUIET, f"data.cache_dir={work / 'cache'}"]
    base_env = {k: v for k, v in os.environ.items() if k not in UNSET}
    timed([sys.executable, "sweep.py", *shared, "logger=none", f"run_root={work / 'warm'}"], base_env)  # the cache
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for state in args.states.split(","):
        with second_process(state == "busy", shared, work, args.load_threads):
            order = args.settings.split(",")
            for r in range(args.rounds):
                for position, name in enumerate(order):
                    root = work / f"{state}-{r}-{position}"
                    argv = [sys.executable, "sweep.py", *shared, "logger=none", f"run_root={root}"]
                    wall = timed(argv, {**base_env, **SETTINGS[name]})
                    results.setdefault((state, name), []).append({"wall": wall, **run_phases(root, wall)})
                order.reverse()
    load = f"{args.load_threads} thread(s)" if args.load_threads else "torch's default threads"
    print(f"{os.cpu_count()} cores; {args.rounds} rounds per setting, interleaved; busy: a second training run "
          f"on {load}; seconds: median (range)")  # fmt: skip
    for (state, name), rows in results.items():
        cells = []
        for key in ("training steps", "wall"):
            values = [row[key] for row in rows]
            cells.append(f"{key} {statistics.median(values):6.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"  {state:5s} {name:24s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
