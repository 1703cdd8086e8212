"""A run's metrics.jsonl read back: the last value written for each (step, metric), damaged lines skipped and
numbered (a resumed run logs its steps after the checkpoint again; readers keep the last)."""

from __future__ import annotations

import json
from pathlib import Path


def last_values(metrics: dict[int, dict[str, float]]) -> dict[str, float]:
    """Each metric's value at the last step it was logged."""
    final: dict[str, float] = {}
    for _, values in sorted(metrics.items()):
        final.update(values)
    return final


def line_numbers(numbers: list[int], shown: int = 10) -> str:
    """`lines 3, 9` (the first `shown` of them, then `...`)."""
    return "lines " + ", ".join(map(str, numbers[:shown])) + (" ..." if len(numbers) > shown else "")


def read_metrics(path: Path, damaged: list[int] | None = None) -> dict[int, dict[str, float]]:
    """{step: {metric: value}}. A line that is not a JSON object of numbers with a step (cut short by a
    kill, bytes that are not UTF-8, edited by hand) is skipped and its number appended to `damaged`."""
    by_step: dict[int, dict[str, float]] = {}
    if not path.exists():
        return by_step
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            step = int(row.pop("step"))
            values = {k: float(v) for k, v in row.items()}
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            if damaged is not None:
                damaged.append(number)
            continue
        by_step.setdefault(step, {}).update(values)
    return by_step
