"""Shared by the benchmark scripts: timing, the machine's matmul peak, activation memory, result files."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], object], device: torch.device, warmup: int = 2, repeat: int = 5) -> float:
    """Median wall time of fn over `repeat` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def interleaved_seconds(
    fns: dict[str, Callable[[], object]], device: torch.device, warmup: int = 2, repeat: int = 15
) -> dict[str, list[float]]:
    """Wall time of every call of each fn, timed in alternating rounds (A B, B A, A B, ...): round i of
    every fn ran within seconds of the others, so a slow period of a shared or virtual machine slows
    all contenders of that round alike; compare them round by round (paired_ratio)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for _ in range(repeat):
        for name in order:
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
        order.reverse()
    return times


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def paired_ratio(slower: list[float], faster: list[float]) -> float:
    """Median over rounds of slower[i] / faster[i]: the speed-up, with the machine's drift cancelled."""
    return median([s / f for s, f in zip(slower, faster, strict=True)])


def square_matmul(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048):
    """(a call of one large square matmul, its FLOPs): the machine's matmul peak, as a timed contender."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * n**3


class SavedActivations:
    """Bytes autograd keeps for the backward pass (the activation memory of a training step), counted
    with saved-tensor hooks; parameters kept by reference are counted once per tensor storage."""

    def __enter__(self) -> SavedActivations:
        self.storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            self.storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())


def write_results(name: str, table: pd.DataFrame, meta: dict, out_dir: Path) -> Path:
    """<out_dir>/<name>.{csv,md,json}: what analysis/report.py and the README quote."""
    from gemmalab.analysis.tables import to_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / f"{name}.csv", index=False)
    header = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    (out_dir / f"{name}.md").write_text(f"## {name}\n\n{header}\n\n{to_markdown(table)}\n")
    (out_dir / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": table.to_dict("records")}, indent=2))
    return out_dir / f"{name}.md"
