"""What a command costs before any work: `python sweep.py --help`, a refused override and `--cfg job`, each a
fresh process, interleaved over rounds (run alone: a second busy process slows both). Prints the median and
range per command, and the imports that a command pays for (python -X importtime, top level, > 0.1 s).

    python benchmarks/startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = {"--help": ["--help"], "refused override": ["norm=bogus"], "--cfg job": ["--cfg", "job"]}


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "sweep.py", *argv], cwd=REPO, capture_output=True, check=False)
    return time.perf_counter() - start


def heavy_imports(argv: list[str], at_least_s: float = 0.1) -> list[tuple[str, float]]:
    """The top-level packages a command imports, with their cumulative import time."""
    done = subprocess.run([sys.executable, "-X", "importtime", "sweep.py", *argv], cwd=REPO, capture_output=True,
                          text=True, check=False)  # fmt: skip
    found = []
    for line in done.stderr.splitlines():
        if (m := re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)) and float(m.group(1)) / 1e6 >= at_least_s:
            found.append((m.group(2), float(m.group(1)) / 1e6))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            times[name].append(seconds(argv))
    for name, values in times.items():
        print(f"{name:18s} median {statistics.median(values):.2f} s (range {min(values):.2f}-{max(values):.2f}, "
              f"{args.rounds} rounds)")  # fmt: skip
    print("imports of --help:", ", ".join(f"{n} {s:.2f} s" for n, s in heavy_imports(["--help"])))


if __name__ == "__main__":
    main()
