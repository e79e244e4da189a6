"""Time `make demo` end to end (wall time, peak memory) and write the figures to docs/BENCHMARKS.md.

Run: `make bench` (or `python bench/demo_time.py [--fresh-venv]`). With --fresh-venv the virtual environment
is rebuilt first, so the time includes installing everything from the registries, as on a new machine.
The per-phase times come from the run's results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_name
from sections import write_section

ROOT = Path(__file__).resolve().parents[1]


def run_demo(fresh: bool) -> tuple[float, int, int]:
    if fresh:
        shutil.rmtree(ROOT / ".venv", ignore_errors=True)
    start = time.perf_counter()
    code = subprocess.run(["make", "demo"], cwd=ROOT).returncode
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # largest child process, in KiB
    return wall, peak_kib * 1024, code


def phases(results: dict) -> list[str]:
    rows = [f"| evaluate base | {results['base']['eval_seconds']:.0f} s |"]
    for name, m in results["methods"].items():
        rows.append(
            f"| train {name} ({m['steps']} steps) | {m['train_seconds']:.0f} s "
            f"({m['train_seconds'] / max(1, m['steps']):.1f} s/step, curve evaluations included) |"
        )
        rows.append(f"| evaluate {name} | {m['eval_seconds']:.0f} s |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh-venv", action="store_true", help="rebuild .venv first (time the install too)"
    )
    args = parser.parse_args()
    wall, peak, code = run_demo(args.fresh_venv)
    if code != 0:
        print(f"make demo failed with exit code {code}", file=sys.stderr)
        return code
    results = json.loads((ROOT / "runs" / "demo" / "results.json").read_text())
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [
        "## `make demo` on this machine (`bench/demo_time.py`, `make bench`)",
        "",
        f"- Date: {datetime.now(timezone.utc).date()}; CPU: {cpu_name()}, {os.cpu_count()} cores; "
        f"{results['torch_threads']} torch threads; {versions}.",
        f"- Virtual environment {'rebuilt from the registries' if args.fresh_venv else 'already installed'}; "
        "model fetched and data packs built (or reused from the cache) inside the timed run.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| `make demo` wall time | {wall / 60:.1f} min ({wall:.0f} s) |",
        f"| peak memory (largest process) | {peak / 2**30:.2f} GiB |",
        f"| pipeline time (results.json `seconds`) | {results['seconds']:.0f} s |",
        *phases(results),
        "",
        "Target (issue 'The main job'): `make demo` in at most 20 minutes on two cores.",
        "",
    ]
    write_section("demo_time", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
