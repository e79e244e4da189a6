"""The fast test suite where a GPU is visible, its failures sorted by cause.

    python bench/cuda_suite.py --out DIR [--workers 8] [--timeout 240]

The suite is written for the CPU (CI has no GPU), yet `models.load` and the Trainer put models on CUDA
wherever it is visible, so a GPU machine runs other code paths: a tensor left on the CPU beside a model on
the GPU, bf16 where a test expected fp32. This runs the suite (less the real-model tests) with CUDA visible,
in parallel where pytest-xdist is installed, then each failure again alone on CUDA and alone on the CPU, and
sorts them:

- `cuda_only`: fails alone on CUDA, passes alone on the CPU: a device bug, in the code or in the test;
- `everywhere`: fails alone on both: this environment (a package missing, another version), not CUDA;
- `parallel_only`: passes alone on CUDA: tests that collide when run side by side.

DIR gets suite.xml, cuda.xml, cpu.xml (JUnit) and cuda_suite.json (the sorted test ids, versions, seconds).
The first run on an H100 (2026-12-06) is in the README's "On a GPU, so far".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def failed_ids(junit: Path) -> list[str]:
    """Test ids that failed or errored in a JUnit file (a module that failed to collect: its path)."""
    if not junit.exists():
        return []
    ids = []
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        module, name = case.get("classname", ""), case.get("name", "")
        if not module:  # collection error: the name is the module
            ids.append(name.replace(".", "/") + ".py")
            continue
        path, _, cls = module.partition(".Test")
        ids.append(path.replace(".", "/") + ".py" + (f"::Test{cls}" if cls else "") + f"::{name}")
    return list(dict.fromkeys(ids))


def sort_failures(suite: list[str], alone_cuda: list[str], alone_cpu: list[str]) -> dict[str, list[str]]:
    """Each test that failed in the suite, by where it fails again alone."""
    on_cuda, on_cpu = set(alone_cuda), set(alone_cpu)
    return {
        "cuda_only": [t for t in suite if t in on_cuda and t not in on_cpu],
        "everywhere": [t for t in suite if t in on_cuda and t in on_cpu],
        "parallel_only": [t for t in suite if t not in on_cuda],
    }


def pytest(ids: list[str], junit: Path, timeout: int, env: dict, workers: int = 0) -> float:
    """Runs pytest over `ids` (or the whole suite), returns its seconds. Ids go through a file: pytest's
    parametrized ids hold spaces and brackets."""
    listing = junit.with_suffix(".ids")
    listing.write_text("\n".join(ids))
    code = (
        "import sys, pytest; a = sys.argv[1:]; sys.exit(pytest.main(a[1:] + open(a[0]).read().split('\\n')))"
    )
    args = ["-q", "-p", "no:cacheprovider", "-m", "not slow", f"--junitxml={junit}"]
    if workers:
        args += ["-n", str(workers), "--dist", "loadfile"]
    start = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-c", code, str(listing), *args],
            cwd=ROOT,
            env=env,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        print(f"pytest stopped after {timeout} s; {junit.name} holds what finished", file=sys.stderr)
    return round(time.perf_counter() - start, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=8, help="pytest-xdist workers (0: one process)")
    parser.add_argument("--timeout", type=int, default=240, help="seconds for each of the three runs")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device is visible: run this on a GPU machine", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        import xdist  # noqa: F401
    except ImportError:
        args.workers = 0
    seconds = {"suite": pytest(["tests"], args.out / "suite.xml", args.timeout, env, args.workers)}
    suite = failed_ids(args.out / "suite.xml")
    seconds["cuda"] = pytest(suite, args.out / "cuda.xml", args.timeout, env) if suite else 0.0
    cpu_env = {**env, "CUDA_VISIBLE_DEVICES": ""}
    seconds["cpu"] = pytest(suite, args.out / "cpu.xml", args.timeout, cpu_env) if suite else 0.0
    sorted_ids = sort_failures(suite, failed_ids(args.out / "cuda.xml"), failed_ids(args.out / "cpu.xml"))
    report = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "seconds": seconds,
        "failed_in_suite": len(suite),
        **sorted_ids,
    }
    (args.out / "cuda_suite.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: len(v) if isinstance(v, list) else v for k, v in report.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
