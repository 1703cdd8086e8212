"""What the harness costs beyond the math: a standalone `python sweep.py` run against a bare PyTorch loop of
the same model, batches, optimizer, steps and evaluations, each a fresh process, interleaved over rounds.

    python benchmarks/harness_overhead.py --rounds 5                 # the default run (200 steps, laptop model)
    python benchmarks/harness_overhead.py --rounds 3 trainer.max_steps=50   # any sweep.py override

Prints each contender's wall time (median, range), the paired ratio harness / bare with its range (round by
round, so a slow period of the machine cancels), whether the bare loop's train/loss equals the run's at
every step, and where the difference goes, from each process's own clock (no profiler to distort it):
start-up and exit (interpreter, imports, Hydra, the preflight), the training steps (per-step logging and
the logit-growth diagnostics are inside them), and the rest of the run (Lightning's setup, evaluations,
checkpoints, W&B's start and finish). Run it alone on the machine: a second busy process slows the
contenders unevenly. The token cache is built once, before round 1, in a shared data.cache_dir; every
harness run has a fresh run_root (nothing reused).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUIET = ["trainer.progress_bar=false"]  # a bar redraws to a terminal: not what a benchmark's pipe shows


def bare_loop(spec_file: str, out_file: str) -> None:
    """The run's math and nothing else: the same seeded model, batches, AdamW and schedule, clipping,
    the initial, periodic and final validations and the test evaluation. Writes each step's loss."""
    started = time.perf_counter()
    import random

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Subset

    from gemmalab.data.cache import token_cache
    from gemmalab.data.packing import IGNORE, PackedDataset, ResumableSampler
    from gemmalab.model import Decoder
    from gemmalab.runs.spec import JobSpec, data_cache
    from gemmalab.train.schedule import build_optimizer

    config = json.loads(Path(spec_file).read_text())
    spec = JobSpec.from_config(config)
    imported = time.perf_counter()
    random.seed(spec.seed), np.random.seed(spec.seed), torch.manual_seed(spec.seed)  # Lightning's seed_everything
    model = Decoder(spec.model)
    cache = token_cache(spec.data, data_cache(config))
    bs, steps = spec.data.batch_size, spec.trainer.max_steps
    train = PackedDataset(cache.tokens("train"), spec.data.seq_len)
    held_out = spec.data.val_batches * bs
    val = Subset(PackedDataset(cache.tokens("val"), spec.data.seq_len), range(held_out))
    test = Subset(PackedDataset(cache.tokens("test"), spec.data.seq_len), range(held_out))
    sampler = ResumableSampler(len(train), steps * bs, spec.seed, batch_size=bs)
    loader = DataLoader(train, batch_size=bs, sampler=sampler, drop_last=True)
    optimizer, schedule = build_optimizer(model, spec.optim, steps)
    clip = spec.optim.grad_clip or float("inf")

    @torch.no_grad()
    def evaluate(split: Subset) -> float:  # mean NLL over the split's targets, as the run's val/loss
        model.eval()
        nll, count = 0.0, 0
        for batch in DataLoader(split, batch_size=bs):
            logits = model(batch["input_ids"])
            nll += F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), reduction="sum").item()
            count += batch["targets"].numel()
        model.train()
        return nll / count

    evals = [evaluate(val)]
    losses, step_seconds = [], 0.0
    for step, batch in enumerate(loader):
        step_started = time.perf_counter()
        logits = model(batch["input_ids"])
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        losses.append(loss.item())
        step_seconds += time.perf_counter() - step_started
        if (step + 1) % spec.trainer.val_every == 0 or step + 1 == steps:
            evals.append(evaluate(val))
    evaluate(test)
    Path(out_file).write_text(json.dumps({"train/loss": losses, "val/loss": evals,
                                          "imports_s": imported - started, "steps_s": step_seconds,
                                          "total_s": time.perf_counter() - started}))  # fmt: skip


def composed(overrides: list[str], run_root: Path) -> dict:
    """The job's resolved config, as sweep.py would compose it."""
    from hydra import compose, initialize_config_dir

    from gemmalab.runs.derived import job_config
    from gemmalab.schema import register

    register()
    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        return job_config(compose("config", [*overrides, f"run_root={run_root}", "group=bench"]))


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"error: {' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def phases(wall: float, in_run: float, steps: float) -> dict[str, float]:
    """A process's wall time split three ways: outside the run (interpreter, imports, Hydra, the
    preflight, exit), the training steps, and the rest of the run (model, data, Lightning's setup,
    evaluations, checkpoints, W&B's start and finish, the summary)."""
    return {"start-up and exit": wall - in_run, "training steps": steps, "rest of the run": in_run - steps}


def the_run(run_root: Path):
    """The one run a harness contender trained in `run_root`."""
    from gemmalab.runs.store import RunDir

    return next(RunDir.at(p) for p in run_root.iterdir() if (p / "summary.json").exists())


def run_phases(run_root: Path, wall: float) -> dict[str, float]:
    """From the run's own records: summary.json's wall_seconds (the attempt, up to the summary; W&B's
    finish comes after it) and each step's time, its tokens over its train/tokens_per_sec."""
    run = the_run(run_root)
    data = run.attempt()["config"]["data"]
    tokens = data["batch_size"] * data["seq_len"]
    steps = sum(tokens / values["train/tokens_per_sec"] for values in run.metrics().values()
                if "train/tokens_per_sec" in values)  # fmt: skip
    return phases(wall, run.summary()["wall_seconds"], steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 1) - 1),
        help="torch threads of every contender (default: what a job alone takes on an idle machine)",
    )
    parser.add_argument("--bare", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)  # the bare child
    parser.add_argument("overrides", nargs="*", help="sweep.py overrides for both contenders")
    args = parser.parse_args()
    if args.bare:
        return bare_loop(*args.bare)
    work = Path(tempfile.mkdtemp(prefix="gemmalab-overhead-"))
    shared = [*args.overrides, *QUIET, f"data.cache_dir={work / 'cache'}"]
    python = [sys.executable]
    timed([*python, "sweep.py", *shared, "logger=none", f"run_root={work / 'warm'}"])  # builds the token cache
    spec = work / "spec.json"
    spec.write_text(json.dumps(composed([*shared, "logger=none"], work / "bare")))
    run_roots = {"sweep.py logger=none": "none", "sweep.py logger=wandb (offline)": "wandb"}  # + the round
    contenders = {
        "bare loop": lambda r: [*python, __file__, "--bare", str(spec), str(work / "bare.json")],
        **{name: (lambda r, kind=kind: [*python, "sweep.py", *shared, f"logger={kind}", f"run_root={work / kind}{r}"])
           for name, kind in run_roots.items()},
    }  # fmt: skip
    env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": str(args.threads)}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    split: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    order = list(contenders)
    for r in range(args.rounds):
        for name in order:
            wall = timed(contenders[name](r), env)
            times[name].append(wall)
            if name == "bare loop":
                bare_run = json.loads((work / "bare.json").read_text())
                split[name].append(phases(wall, bare_run["total_s"] - bare_run["imports_s"], bare_run["steps_s"]))
            else:
                split[name].append(run_phases(work / f"{run_roots[name]}{r}", wall))
        order.reverse()
    bare = times["bare loop"]
    for name, values in times.items():
        line = f"{name:33s} median {statistics.median(values):6.2f} s (range {min(values):.2f}-{max(values):.2f})"
        if name != "bare loop":
            ratios = [h / b for h, b in zip(values, bare, strict=True)]
            line += f"   / bare: {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        print(line)
    print(f"{args.rounds} rounds, interleaved; {os.cpu_count()} cores; {args.threads} torch thread(s) each")
    run_losses = [values["train/loss"] for _, values in sorted(the_run(work / "none0").metrics().items())
                  if "train/loss" in values]  # fmt: skip
    bare_losses = json.loads((work / "bare.json").read_text())["train/loss"]
    print(f"train/loss of the bare loop equals the run's at every step: {run_losses == bare_losses} "
          f"({len(bare_losses)} steps; max |difference| "
          f"{max(abs(a - b) for a, b in zip(run_losses, bare_losses, strict=True)):.2e})")  # fmt: skip
    print("where the time goes (median seconds over the rounds):")
    print(f"  {'':20s}" + "".join(f"{name:>34s}" for name in contenders))
    for phase in split["bare loop"][0]:
        print(f"  {phase:20s}" + "".join(f"{statistics.median(r[phase] for r in split[name]):34.2f}"
                                        for name in contenders))  # fmt: skip


if __name__ == "__main__":
    main()
