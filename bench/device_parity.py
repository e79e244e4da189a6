"""The same signed updates on both device runtimes: does a llama.cpp device (f16 GGUF base, GGUF updates)
answer as the transformers device does? Every domain test question of the run and the 50 fact questions,
greedy, for each update given; the share of identical answers and each runtime's score.

Run: `python bench/device_parity.py runs/demo [--methods lora hlora sft] [--adapters DIR ...]
[--out docs/results/device-parity.json] [--section]` (a few minutes on two cores: each device serves one update
at a time, loaded once). `--adapters` adds adapter folders `loragen make` wrote (for the run's base model),
shipped as `package export ADAPTER_DIR` ships them and asked the same questions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def answers(server, prompts: list[str], tokens: int) -> list[str]:
    return [server.generate(p, tokens)[0] for p in prompts]


def exporters(args, run, results) -> dict:
    """Per update to compare, a function that exports it for a runtime: out, runtime, release -> package."""
    from edgeadapt.deploy import adapter_folders, run_packages

    made = {
        m: lambda out, runtime, release, m=m: run_packages.export(
            run, results, m, out, "fp32", None, release=release, runtime=runtime
        )
        for m in args.methods
    }
    for folder in args.adapters:
        made[f"generated: {Path(folder).name}"] = lambda out, runtime, release, f=folder: (
            adapter_folders.export_package(Path(f), out, "fp32", None, False, release, runtime)
        )
    return made


def main() -> int:
    from edgeadapt.data.format import prompt_text, reference
    from edgeadapt.deploy import build, device
    from edgeadapt.evaluation.metrics import contains_answer, exact_match
    from edgeadapt.runs.run import reopen

    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--methods", nargs="*", default=["lora", "hlora", "sft"])
    parser.add_argument("--adapters", nargs="*", default=[], help="adapter folders from `loragen make`")
    parser.add_argument("--out", default="docs/results/device-parity.json")
    parser.add_argument("--section", action="store_true")
    args = parser.parse_args()
    run, results = reopen(args.run_dir, [], "bench")
    updates = exporters(args, run, results)
    questions = [prompt_text(r) for r in run.data.test]
    references = [reference(r) for r in run.data.test]
    facts = run.data.facts  # prompt/response rows (eval.facts)
    report = {"date": str(datetime.now(timezone.utc).date()), "run": args.run_dir, "methods": {}}
    if args.adapters:  # what each generated adapter was made from: its edgeadapt.json, timing aside
        from edgeadapt.deploy.adapter_folders import read_info

        report["adapters"] = {
            Path(f).name: {k: v for k, v in read_info(Path(f)).items() if k != "generation_ms"}
            for f in args.adapters
        }
    with tempfile.TemporaryDirectory(prefix="edgeadapt-parity-") as tmp:
        devices = {}
        for runtime in ("transformers", "llamacpp"):
            devices[runtime] = Path(tmp) / runtime
            device.init(
                devices[runtime], run.model_path, runtime=runtime, options={"model": run.cfg.model.name}
            )
        for version, (method, export) in enumerate(updates.items(), 1):
            said = {}
            for runtime, dev in devices.items():
                out = Path(tmp) / f"{version}-{runtime}.eaupd"
                export(out, runtime, build.release(version))
                device.apply(out, dev, None, allow_unsigned=True)
                server = device.active_server(dev)
                said[runtime] = {
                    "domain": answers(server, questions, run.cfg.eval.max_new_tokens),
                    "facts": answers(server, [f["prompt"] for f in facts], run.cfg.eval.fact_new_tokens),
                }
                del server
            row = {}
            for part, refs, score in (
                ("domain", references, exact_match),
                ("facts", [f["response"] for f in facts], contains_answer),
            ):
                a, b = said["transformers"][part], said["llamacpp"][part]
                row[part] = {
                    "n": len(a),
                    "identical": sum(x == y for x, y in zip(a, b)) / len(a),
                    "transformers_score": sum(map(score, a, refs)) / len(a),
                    "llamacpp_score": sum(map(score, b, refs)) / len(b),
                    "differing": [
                        {"prompt": q, "transformers": x, "llamacpp": y}
                        for q, x, y in zip(
                            questions if part == "domain" else [f["prompt"] for f in facts], a, b
                        )
                        if x != y
                    ][:5],
                }
            report["methods"][method] = row
            print(
                method,
                json.dumps(
                    {
                        k: {m: v[m] for m in ("n", "identical", "transformers_score", "llamacpp_score")}
                        for k, v in row.items()
                    }
                ),
                flush=True,
            )
    Path(args.out).write_text(json.dumps(report, indent=1))
    if args.section:
        write(report)
    return 0


def write(report: dict) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from sections import write_section

    lines = [
        "## The same updates on both device runtimes (`bench/device_parity.py`)",
        "",
        f"- Date: {report['date']}; the run `{report['run']}`; each update exported for each runtime, applied to a "
        "transformers device (fp32 checkpoint) and a llama.cpp device (f16 base GGUF), asked every domain test "
        "question and the 50 fact questions, greedy.",
        "",
        "| update | domain answers identical | domain acc (transformers / llama.cpp) | fact answers identical | fact recall (transformers / llama.cpp) |",
        "|---|---|---|---|---|",
    ]
    for method, row in report["methods"].items():
        d, f = row["domain"], row["facts"]
        lines.append(
            f"| {method} | {d['identical']:.1%} of {d['n']} | {d['transformers_score']:.1%} / {d['llamacpp_score']:.1%} | "
            f"{f['identical']:.1%} of {f['n']} | {f['transformers_score']:.1%} / {f['llamacpp_score']:.1%} |"
        )
    write_section("device_parity", lines + [""])


if __name__ == "__main__":
    sys.exit(main())
