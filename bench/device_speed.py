"""Both device runtimes side by side on a finished run's updates: milliseconds per generated token (greedy,
batch 1, after a warm-up), prompt processing time, the process's peak resident memory and the file a device
holds, at 1, 2 and 4 threads; and a routed request (two GGUF LoRAs loaded, one applied per request, as a
library serves it) against the same update merged into one GGUF.

Run alone on the machine (these are timings): `python bench/device_speed.py runs/demo [--threads 1 2 4]
[--out docs/results/device-speed.json] [--section]`. Each configuration runs in a fresh process. What a
transformers device runs: the base, a LoRA update unmerged (PEFT, as `device` serves it), SFT's weights;
what a llama.cpp device runs: base.gguf (f16), base.gguf + adapter.gguf, model.gguf (f16).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

NEW_TOKENS = 32
PROMPTS = [
    "ICD-10-CM category (code and title) of: Acute appendicitis with localized peritonitis",
    "What is the capital of France?",
    "Explain in two sentences what a fever is.",
    "Name three things to pack for a day at the beach.",
]


def child(spec: dict) -> dict:
    """One configuration, timed in this (fresh) process."""
    from edgeadapt import models
    from edgeadapt.data.format import prompt_ids

    tokenizer = models.load_tokenizer(Path(spec["tokenizer"]))
    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    if spec["runtime"] == "llamacpp":
        from edgeadapt.deploy.llamacpp import LlamaCpp

        adapters = [Path(p) for p in spec.get("adapters", [])]
        with LlamaCpp(Path(spec["model"]), adapters, spec["threads"]) as llama:
            scales = spec.get("scales")
            llama.complete(prompts[0], 4, scales)  # warm-up
            timings = [llama.complete(p, NEW_TOKENS, scales, ignore_eos=True)["timings"] for p in prompts]
        ms = statistics.median(t["predicted_per_token_ms"] for t in timings)
        prompt_ms = statistics.median(t["prompt_ms"] for t in timings)
    else:
        import torch

        from edgeadapt import updates
        from edgeadapt.inference.timing import answer_seconds, decode_times

        torch.set_num_threads(spec["threads"])
        model, _ = models.load(Path(spec["model"]), torch.float32, torch.device("cpu"))
        if spec.get("update"):
            model = updates.loader("peft" if spec["method"] != "sft" else "transformers")(
                model, Path(spec["update"])
            )
        model.eval()
        decode_times(model, prompts[0], 4)  # warm-up
        ms = 1000 * statistics.median(statistics.median(decode_times(model, p, NEW_TOKENS)) for p in prompts)
        prompt_ms = 1000 * statistics.median(answer_seconds(model, p, 1)["prefill_s"] for p in prompts)
    return {
        "ms_per_token": ms,
        "tokens_per_s": 1000 / ms,
        "prompt_ms": prompt_ms,
        "peak_rss_bytes": peak_rss(),
    }


def peak_rss() -> int:
    """This process's resident high-water mark since it started (VmHWM; getrusage's maxrss would also count
    the parent's peak, which a child keeps across exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_child(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def files(run_dir: Path, folder: Path) -> dict[str, Path]:
    """The GGUF files a llama.cpp device would hold for this run."""
    from edgeadapt.deploy.gguf import export_run

    out = {"base": export_run(str(run_dir), "base", folder / "base.gguf", "f16")}
    out["lora-adapter"] = export_run(str(run_dir), "lora", folder / "lora-adapter.gguf", adapter=True)
    out["hlora-adapter"] = export_run(str(run_dir), "hlora", folder / "hlora-adapter.gguf", adapter=True)
    out["lora-merged"] = export_run(str(run_dir), "lora", folder / "lora-merged.gguf", "f16")
    out["sft"] = export_run(str(run_dir), "sft", folder / "sft.gguf", "f16")
    out["base-q8_0"] = export_run(str(run_dir), "base", folder / "base-q8.gguf", "q8_0")
    return {k: Path(v["path"]) for k, v in out.items()}


def configurations(run_dir: Path, gguf: dict[str, Path], threads: list[int]) -> list[tuple[str, dict]]:
    from edgeadapt.runs.run import reopen

    run, _ = reopen(str(run_dir), [], "bench")
    base, tok = str(run.model_path), str(run.model_path)
    out = []
    for n in threads:
        common = {"threads": n, "tokenizer": tok}
        out += [
            (f"llamacpp base @{n}", {**common, "runtime": "llamacpp", "model": str(gguf["base"])}),
            (
                f"llamacpp lora (GGUF LoRA) @{n}",
                {
                    **common,
                    "runtime": "llamacpp",
                    "model": str(gguf["base"]),
                    "adapters": [str(gguf["lora-adapter"])],
                    "scales": [1.0],
                },
            ),
            (
                f"llamacpp lora merged @{n}",
                {**common, "runtime": "llamacpp", "model": str(gguf["lora-merged"])},
            ),
            (
                f"llamacpp routed: 2 LoRAs, 1 applied @{n}",
                {
                    **common,
                    "runtime": "llamacpp",
                    "model": str(gguf["base"]),
                    "adapters": [str(gguf["lora-adapter"]), str(gguf["hlora-adapter"])],
                    "scales": [1.0, 0.0],
                },
            ),
            (f"llamacpp sft @{n}", {**common, "runtime": "llamacpp", "model": str(gguf["sft"])}),
            (f"llamacpp base q8_0 @{n}", {**common, "runtime": "llamacpp", "model": str(gguf["base-q8_0"])}),
            (
                f"llamacpp q8_0 base + lora (GGUF LoRA) @{n}",
                {
                    **common,
                    "runtime": "llamacpp",
                    "model": str(gguf["base-q8_0"]),
                    "adapters": [str(gguf["lora-adapter"])],
                    "scales": [1.0],
                },
            ),
        ]
        if n <= 2:
            out += [
                (f"transformers base @{n}", {**common, "runtime": "transformers", "model": base}),
                (
                    f"transformers lora (unmerged) @{n}",
                    {
                        **common,
                        "runtime": "transformers",
                        "model": base,
                        "method": "lora",
                        "update": str(run.update_dir("lora")),
                    },
                ),
                (
                    f"transformers sft @{n}",
                    {
                        **common,
                        "runtime": "transformers",
                        "model": base,
                        "method": "sft",
                        "update": str(run.update_dir("sft")),
                    },
                ),
            ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", default="docs/results/device-speed.json")
    parser.add_argument("--section", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    with tempfile.TemporaryDirectory(prefix="edgeadapt-bench-") as tmp:
        gguf = files(Path(args.run_dir), Path(tmp))
        sizes = {k: p.stat().st_size for k, p in gguf.items()}
        rows = {}
        for name, spec in configurations(Path(args.run_dir), gguf, args.threads):
            rows[name] = run_child(spec)
            print(
                f"{name:42} {rows[name]['ms_per_token']:7.1f} ms/token  prompt {rows[name]['prompt_ms']:7.1f} ms  peak {rows[name]['peak_rss_bytes'] / 2**20:6.0f} MiB",
                flush=True,
            )
    report = {
        "date": str(datetime.now(timezone.utc).date()),
        "run": args.run_dir,
        "new_tokens": NEW_TOKENS,
        "cpus": os.cpu_count(),
        "gguf_bytes": sizes,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    if args.section:
        write(report, args.threads)
    return 0


def write(report: dict, threads: list[int]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from sections import write_section

    rows = report["rows"]
    lines = [
        "## Device runtimes side by side (`bench/device_speed.py`)",
        "",
        f"- Date: {report['date']}; {report['cpus']} cores; the run `{report['run']}` (SmolLM2-135M-Instruct); greedy, "
        f"batch 1, {report['new_tokens']} tokens after a warm-up, median over {len(PROMPTS)} prompts; each row in a fresh process. "
        "GGUF bytes: " + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in report["gguf_bytes"].items()) + ".",
        "",
        "| configuration | ms/token | tokens/s | prompt ms | peak memory MiB |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {r['ms_per_token']:.1f} | {r['tokens_per_s']:.1f} | {r['prompt_ms']:.1f} | {r['peak_rss_bytes'] / 2**20:,.0f} |"
        for n, r in rows.items()
    ]
    ratio = lambda a, b: rows[a]["tokens_per_s"] / rows[b]["tokens_per_s"]  # noqa: E731
    lines += [""]
    if 2 in threads:
        lines.append(
            f"At 2 threads llama.cpp gives {ratio('llamacpp lora (GGUF LoRA) @2', 'transformers lora (unmerged) @2'):.1f}x the "
            f"transformers device's tokens/s for the LoRA update and {ratio('llamacpp sft @2', 'transformers sft @2'):.1f}x for SFT; "
            f"a routed request (two LoRAs loaded, one applied) runs at {ratio('llamacpp routed: 2 LoRAs, 1 applied @2', 'llamacpp lora merged @2'):.0%} "
            "of the same update merged into one GGUF."
        )
        lines.append("")
    write_section("device_speed", lines)


if __name__ == "__main__":
    sys.exit(main())
