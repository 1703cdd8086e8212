from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The modules that take minutes, first (pyproject: --dist loadfile --no-loadscope-reorder): under `-n 2` each
# starts on a worker of its own at once, and the short modules fill in around them.
LONGEST_FIRST = ("test_sweep_on_slurm.py", "analysis/test_paper.py", "test_sweep.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's tests stay in their order


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the workers share the cores: a worker with torch's default pool (every core) beside
    another busy one spins against it (benchmarks/threads.py: 5-13x slower), so each takes its share."""
    if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


# Seconds per run: the tiny model on a short packed byte stream.
TINY = [
    "model=tiny",
    "attn.window=8",
    "data.seq_len=32",
    "data.batch_size=4",
    "data.val_batches=2",
    "data.max_tokens=300000",
    "trainer.max_steps=6",
    "trainer.val_every=3",
    "trainer.ckpt_every=3",
    "trainer.progress_bar=false",
]


def sweep_command(run_root: Path, *args: str, tiny: bool = True) -> tuple[list[str], dict[str, str]]:
    """`python sweep.py ARGS` as a user types it, with results under run_root, and its environment."""
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
    flags = [a for a in args if a.startswith("-")]  # Hydra wants -m before the overrides
    overrides = [*(TINY if tiny else []), *(a for a in args if not a.startswith("-")), f"run_root={run_root}"]
    return [sys.executable, "sweep.py", *flags, *overrides], env


def run_sweep(run_root: Path, *args: str, tiny: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """sweep.py in a subprocess, waited for; `env` adds to its environment."""
    command, base = sweep_command(run_root, *args, tiny=tiny)
    return subprocess.run(command, cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True, timeout=600)


def start_sweep(run_root: Path, *args: str) -> subprocess.Popen:
    """sweep.py in a subprocess left running (its output line by line on .stdout)."""
    command, env = sweep_command(run_root, *args)
    env["PYTHONUNBUFFERED"] = "1"  # each line as it is printed
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def sweep():
    return run_sweep


def launch_here(run_root: Path, *args: str) -> tuple[int, str]:
    """sweep.py in this process (sweep.launch: the same preflight, plan, Hydra main and closing summary),
    for tests about what a sweep records rather than about its process: no Python start, no imports.
    Returns (exit code, group); sys.argv and the signal handlers sweep.py sets are restored."""
    import signal

    import sweep as sweep_script

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    argv = sys.argv
    try:
        sys.argv = sweep_command(run_root, *args)[0][1:]
        code = sweep_script.launch(sys.argv)
        return code, next((a for a in reversed(sys.argv) if a.startswith("group=")), "=").split("=", 1)[1]
    finally:
        sys.argv = argv
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


@pytest.fixture
def sweep_here():
    return launch_here


def wandb_records(offline: Path) -> list[dict]:
    """Every record of a W&B offline run directory (run, history, summary, ...), read by wandb's own CLI."""
    out = subprocess.run(["wandb", "leet", "inspect", "--json", str(offline)], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def wandb_run_record(offline: Path) -> dict:
    """The run's own record: job_type, run_group, display_name, config, as W&B stored them."""
    return next(r["run"] for r in wandb_records(offline) if r.get("type") == "run")


def wandb_history(run_path: Path) -> list[dict]:
    """The history rows of a run's W&B offline files, read by wandb's own CLI."""
    (offline,) = (run_path / "wandb").glob("offline-run-*")
    return [r["history"]["item"] for r in wandb_records(offline) if r.get("type") == "history"]


def assert_wandb_matches_run_store(run_path: Path, metrics: dict[int, dict[str, float]]) -> int:
    """Every value of the W&B history equals the run store's at its step; returns how many were compared."""
    compared = 0
    for item in wandb_history(run_path):
        step = int(item["trainer/global_step"])
        for key in ("train/loss", "train/grad_norm", "train/lr", "val/loss", "attn/max_logit/layer_0"):
            if key in item:
                assert metrics[step][key] == item[key], (step, key)
                compared += 1
    return compared


@pytest.fixture(autouse=True)
def sigint_left_as_found(request):
    """Every test finds Python's Ctrl-C as the one before left it: a test that leaves SIGINT changed (a fit that
    met a KeyboardInterrupt: Lightning then ignores SIGINT for good) is named in a warning and undone, so a
    later test that sends SIGINT does not train on instead."""
    import signal
    import warnings

    before = signal.getsignal(signal.SIGINT)
    yield
    if (now := signal.getsignal(signal.SIGINT)) is not before:
        signal.signal(signal.SIGINT, before)
        warnings.warn(f"{request.node.nodeid} left SIGINT's handler as {now!r}: restored", stacklevel=1)
