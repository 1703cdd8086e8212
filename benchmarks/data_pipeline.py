"""The data pipeline at scale: a 100M-token local corpus (the stdlib's text, repeated; no download) through
the token cache, then what a run costs reading it.

    python benchmarks/data_pipeline.py                       # 100M and 10M tokens, bytes and bpe:8192
    python benchmarks/data_pipeline.py --tokens 2000000 --small 200000 --parts build,loader

Parts (all by default):
  build   cache build throughput (tokens/s) for bytes and for bpe:N (BPE training timed apart)
  memory  peak resident memory of a 5-step tiny run (sweep.py, a subprocess each) on the small and large cache
  loader  data loading as a share of a laptop-model training step (batch fetch vs forward+backward+AdamW)
  sweep   a 6-job sweep on a fresh cache: how many jobs built it, and each job's wait for its data
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from gemmalab.benchmarks.common import machine, median, write_results
from gemmalab.data import DataConfig, LMDataModule
from gemmalab.data.cache import load_tokenizer, token_cache
from gemmalab.data.embedded import stdlib_files
from gemmalab.model import Decoder, preset

REPO = Path(__file__).resolve().parents[1]
PARTS = ("build", "memory", "loader", "sweep")


def write_corpus(path: Path, n_bytes: int) -> Path:
    """A UTF-8 text file of n_bytes or a line more (one document per line, as data=files reads .txt): the
    stdlib's lines, repeated in order until the size is reached."""
    if path.is_file() and path.stat().st_size >= n_bytes:
        return path
    lines = [(line + "\n").encode() for p in stdlib_files() for line in p.read_text().splitlines() if line.strip()]
    with path.open("wb") as f:
        size = 0
        while size < n_bytes:
            for line in lines:
                size += f.write(line)
                if size >= n_bytes:
                    break
    return path


def files_config(corpus: Path, tokenizer: str, cache: Path) -> DataConfig:
    return DataConfig(source="files", files=[str(corpus)], tokenizer=tokenizer, max_tokens=10**10, cache_dir=str(cache))


def build_row(corpus: Path, tokenizer: str, cache: Path) -> dict:
    cfg = files_config(corpus, tokenizer, cache)
    started = time.perf_counter()
    load_tokenizer(cfg, cache)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    manifest = token_cache(cfg, cache).manifest
    seconds = time.perf_counter() - started
    tokens = sum(manifest["tokens"].values())
    return {
        "tokenizer": tokenizer, "corpus MB": corpus.stat().st_size / 1e6, "tokens (M)": tokens / 1e6,
        "tokenizer training s": round(trained, 1), "cache build s": round(seconds, 1),
        "tokens/s": round(tokens / seconds), "MB of text/s": round(corpus.stat().st_size / 1e6 / seconds, 1),
    }  # fmt: skip


def sweep_args(corpus: Path, cache: Path, run_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "sweep.py", "model=tiny", "data=files", f"data.files=[{corpus}]", "data.max_tokens=10000000000",
        f"data.cache_dir={cache}", f"run_root={run_root}", "logger=none", "trainer.progress_bar=false", *extra,
    ]  # fmt: skip


# Runs sweep.py and prints its own peak resident memory when it exits. (A child's ru_maxrss would not do:
# Linux counts the forking parent's resident pages, this benchmark's, into it.)
PEAK_RSS = """
import atexit, runpy, sys
def peak():
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
    print("peak-rss-kB", hwm.split()[1], file=sys.stderr)
atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_path("sweep.py", run_name="__main__")
"""


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident MB of `python sweep.py ...` (command[1] must be sweep.py)."""
    wrapped = [command[0], "-c", PEAK_RSS, *command[1:]]
    result = subprocess.run(wrapped, cwd=REPO, capture_output=True, text=True)
    found = re.search(r"peak-rss-kB (\d+)", result.stderr)
    if result.returncode != 0 or not found:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return int(found.group(1)) / 1024


def loader_share(corpus: Path, cache: Path, steps: int) -> dict:
    """Seconds per batch fetched from the memory-mapped cache against seconds per laptop training step."""
    cfg = preset("laptop")
    data = files_config(corpus, "bytes", cache)
    module = LMDataModule(data, seed=0, max_steps=steps, vocab_size=cfg.vocab_size, cache_root=cache)
    module.prepare()
    batches = iter(module.train_dataloader())
    fetch = []
    for _ in range(steps):
        started = time.perf_counter()
        batch = next(batches)
        fetch.append(time.perf_counter() - started)
    model = Decoder(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = []
    for _ in range(min(steps, 20)):
        started = time.perf_counter()
        logits = model(batch["input_ids"])
        F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad()
        step.append(time.perf_counter() - started)
    return {"batch fetch ms": median(fetch) * 1e3, "training step ms": median(step[2:]) * 1e3,
            "loading share %": 100 * median(fetch) / median(step[2:])}  # fmt: skip


def sweep_row(corpus: Path, work: Path, jobs: int) -> dict:
    """A jobs-seed sweep on a cache built by none of them yet: how many built it, and per job the seconds
    from its `train` line to its data being ready."""
    cache = work / f"sweep_cache_{time.time_ns()}"
    seeds = ",".join(map(str, range(jobs)))
    command = sweep_args(corpus, cache, work / "sweep_runs", "-m", f"seed={seeds}", "trainer.max_steps=5")
    command.insert(2, command.pop(command.index("-m")))
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    launched, waits, builds = None, [], 0
    for line in proc.stdout:
        now = time.perf_counter()
        if re.match(r"\[gemmalab\] (train|resume) ", line):
            launched = now
        elif line.startswith("[gemmalab] building token cache"):
            builds += 1
        elif line.startswith("[gemmalab] token cache") and launched is not None:
            waits.append(now - launched)
            launched = None
    proc.wait()
    return {"jobs": jobs, "cache builds": builds, "data wait s (first job)": round(waits[0], 1),
            "data wait s (others, max)": round(max(waits[1:], default=0.0), 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=100_000_000, help="the large corpus, in bytes (= byte tokens)")
    p.add_argument("--small", type=int, default=10_000_000, help="the small corpus, in bytes")
    p.add_argument("--bpe", type=int, default=8192, help="N of the bpe:N tokenizer")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    p.add_argument("--jobs", type=int, default=6, help="jobs of the sweep part")
    p.add_argument("--work", type=Path, default=Path("runs/_benchmarks/data_pipeline"))
    p.add_argument("--out", type=Path, default=Path("runs/_benchmarks"))
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    if unknown := parts - set(PARTS):
        p.error(f"--parts {','.join(sorted(unknown))} is not allowed (allowed: {', '.join(PARTS)})")
    args.work.mkdir(parents=True, exist_ok=True)
    large = write_corpus(args.work / f"corpus_{args.tokens}.txt", args.tokens)
    small = write_corpus(args.work / f"corpus_{args.small}.txt", args.small)
    cache = args.work / "cache"
    tables = {}
    if "build" in parts:
        tables["build"] = [build_row(large, tokenizer, cache) for tokenizer in ("bytes", f"bpe:{args.bpe}")]
    if "memory" in parts:
        tables["memory"] = []
        for corpus in (small, large):
            token_cache(files_config(corpus, "bytes", cache), cache)  # built before the timed run
            run_root = args.work / f"rss_runs_{time.time_ns()}"  # a fresh run store: the run trains, not skips
            rss = peak_rss_mb(sweep_args(corpus, cache, run_root, "trainer.max_steps=5"))
            tables["memory"].append({"cache tokens (M)": corpus.stat().st_size / 1e6, "peak RSS MB": round(rss)})
    if "loader" in parts:
        tables["loader"] = [loader_share(large, cache, steps=50)]
    if "sweep" in parts:
        tables["sweep"] = [sweep_row(large, args.work, args.jobs)]
    meta = {"machine": machine(), "corpus": f"stdlib text repeated: {args.tokens:,} and {args.small:,} bytes"}
    for part, rows in tables.items():
        print(write_results(f"data_pipeline_{part}", pd.DataFrame(rows), meta, args.out).read_text())
    return {part: pd.DataFrame(rows) for part, rows in tables.items()}


if __name__ == "__main__":
    main()
