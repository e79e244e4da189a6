"""Both device runtimes side by side on a finished run's updates: milliseconds per generated token (greedy,
batch 1, after a warm-up), prompt processing time, the process's peak resident memory and the file a device
holds, at 1, 2 and 4 threads; and a routed request (two GGUF LoRAs loaded, one applied per request, as a
library serves it) against the same update merged into one GGUF.

With `--library LIB` (a library `edgeadapt library build` made), its experts as a llama.cpp device holds
them: one expert as a GGUF LoRA alone, the same expert merged into one f16 GGUF, every expert loaded with
one applied (a routed request), and every expert loaded at scale 0 (the base route) against the base GGUF:
what a request pays for the adapters it does not use.

Run alone on the machine (these are timings): `python bench/device_speed.py [runs/demo] [--library LIB]
[--threads 1 2 4] [--rounds R] [--out docs/results/device-speed.json] [--section]`. Each configuration runs
in a fresh process, R rounds in turn (the figure: the median over rounds; one configuration's rounds are
spread over the whole run, so a slow minute of the machine does not fall on one configuration alone). What
a transformers device runs: the base, a LoRA update unmerged (PEFT, as `device` serves it), SFT's weights;
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

from machine import cpu_name

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

    if spec.get("tokenizer"):
        tokenizer = models.load_tokenizer(Path(spec["tokenizer"]))
        prompts = [prompt_ids(tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    else:  # a GGUF the project has no tokenizer of: plain text, llama.cpp tokenizes it
        prompts = list(PROMPTS)
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


def library_files(library_dir: Path, folder: Path) -> dict[str, Path]:
    """A library's experts as GGUF LoRAs (as its llama.cpp package carries them), the base GGUF, and the
    first expert merged into one f16 GGUF."""
    import torch

    from edgeadapt import models
    from edgeadapt.deploy.gguf import source_pre_tokenizer, write
    from edgeadapt.deploy.gguf_packages import library_sources
    from edgeadapt.deploy.library_packages import library_folder
    from edgeadapt.updates.library import Library

    library = Library.read(library_folder(library_dir))
    experts = [p for _, p in library_sources(library, folder / "library") if p.name == "adapter.gguf"]
    base_dir = models.resolve(library.base_name)
    pre = source_pre_tokenizer(library.base_name)
    model, tokenizer = models.load(base_dir, torch.float32, torch.device("cpu"))
    out = {"library-base": write(model, tokenizer, folder / "library-base.gguf", "f16", "base", pre)}
    first = next(iter(library.experts))
    merged = library.load(model, [first]).merge_and_unload()
    out["expert-merged"] = write(merged, tokenizer, folder / "expert-merged.gguf", "f16", first, pre)
    out |= {f"expert-{i}": path for i, path in enumerate(experts)}
    out["tokenizer"] = base_dir
    return out


def library_configurations(gguf: dict[str, Path], threads: list[int]) -> list[tuple[str, dict]]:
    experts = [str(p) for k, p in gguf.items() if k.startswith("expert-") and k != "expert-merged"]
    n_experts, out = len(experts), []
    for n in threads:
        common = {"threads": n, "tokenizer": str(gguf["tokenizer"]), "runtime": "llamacpp"}
        base = {**common, "model": str(gguf["library-base"])}
        out += [
            (f"library: base GGUF @{n}", base),
            (f"library: 1 expert (GGUF LoRA) @{n}", {**base, "adapters": experts[:1], "scales": [1.0]}),
            (f"library: the expert merged @{n}", {**common, "model": str(gguf["expert-merged"])}),
            (
                f"library routed: {n_experts} LoRAs, 1 applied @{n}",
                {**base, "adapters": experts, "scales": [1.0] + [0.0] * (n_experts - 1)},
            ),
            (
                f"library routed: {n_experts} LoRAs, all at 0 (base route) @{n}",
                {**base, "adapters": experts, "scales": [0.0] * n_experts},
            ),
        ]
    return out


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
    parser.add_argument(
        "--library", help="a library folder (or its run folder) to time as a device serves it"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default="docs/results/device-speed.json")
    parser.add_argument("--section", action="store_true", help="write the table into docs/BENCHMARKS.md")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if not args.run_dir and not args.library:
        parser.error("give a run folder, --library, or both")
    with tempfile.TemporaryDirectory(prefix="edgeadapt-bench-") as tmp:
        gguf, specs = {}, []
        if args.run_dir:
            gguf = files(Path(args.run_dir), Path(tmp))
            specs += configurations(Path(args.run_dir), gguf, args.threads)
        if args.library:
            made = library_files(Path(args.library), Path(tmp))
            specs += library_configurations(made, args.threads)
            gguf |= {k: p for k, p in made.items() if k != "tokenizer"}
        sizes = {k: p.stat().st_size for k, p in gguf.items()}
        rows = timed_rounds(specs, args.rounds)
    report = timing_report(args.rounds, sizes, rows, run=args.run_dir, library=args.library)
    Path(args.out).write_text(json.dumps(report, indent=1))
    if args.section:
        write(report, args.threads)
    return 0


def timing_report(rounds: int, sizes: dict[str, int], rows: dict[str, dict], **sources) -> dict:
    """What every timing report holds: when, on which machine, how it was run, the files' bytes and the rows."""
    return {
        "date": str(datetime.now(timezone.utc).date()),
        **sources,
        "rounds": rounds,
        "new_tokens": NEW_TOKENS,
        "cpus": os.cpu_count(),
        "cpu": cpu_name(),
        "gguf_bytes": sizes,
        "rows": rows,
    }


def timed_rounds(specs: list[tuple[str, dict]], rounds: int) -> dict[str, dict]:
    """Every configuration once per round, in turn; each figure the median over rounds (all kept)."""
    runs: dict[str, list[dict]] = {}
    for r in range(rounds):
        for name, spec in specs:
            runs.setdefault(name, []).append(run_child(spec))
            row = runs[name][-1]
            print(
                f"[{r + 1}/{rounds}] {name:48} {row['ms_per_token']:7.1f} ms/token  prompt {row['prompt_ms']:7.1f} ms  peak {row['peak_rss_bytes'] / 2**20:6.0f} MiB",
                flush=True,
            )
    return {name: median_row(parts) for name, parts in runs.items()}


def median_row(parts: list[dict]) -> dict:
    ms = statistics.median(p["ms_per_token"] for p in parts)
    return {
        "ms_per_token": ms,
        "tokens_per_s": 1000 / ms,
        "prompt_ms": statistics.median(p["prompt_ms"] for p in parts),
        "peak_rss_bytes": max(p["peak_rss_bytes"] for p in parts),
        "ms_per_token_rounds": [p["ms_per_token"] for p in parts],
    }


def write(report: dict, threads: list[int]) -> None:
    """The run's table (section device_speed) and the library's (device_speed_library), each on its own."""
    sys.path.insert(0, str(Path(__file__).parent))
    from sections import write_section

    rows = report["rows"]
    ratio = lambda a, b: rows[a]["tokens_per_s"] / rows[b]["tokens_per_s"]  # noqa: E731
    if report["run"]:
        lines = table(report, "Device runtimes side by side (`bench/device_speed.py`)", "")
        if 2 in threads:
            lines.append(
                f"At 2 threads llama.cpp gives {ratio('llamacpp lora (GGUF LoRA) @2', 'transformers lora (unmerged) @2'):.1f}x the "
                f"transformers device's tokens/s for the LoRA update and {ratio('llamacpp sft @2', 'transformers sft @2'):.1f}x for SFT; "
                f"a routed request (two LoRAs loaded, one applied) runs at {ratio('llamacpp routed: 2 LoRAs, 1 applied @2', 'llamacpp lora merged @2'):.0%} "
                "of the same update merged into one GGUF."
            )
            lines.append("")
        write_section("device_speed", lines)
    if report["library"]:
        lines = table(report, "A library on llama.cpp (`bench/device_speed.py --library`)", "library")
        if 2 in threads:
            routed = next(n for n in rows if n.startswith("library routed") and "1 applied @2" in n)
            idle = next(
                n for n in rows if n.startswith("library routed") and "all at 0" in n and n.endswith("@2")
            )
            lines += [
                f"At 2 threads a routed request runs at {ratio(routed, 'library: the expert merged @2'):.0%} of the same "
                f"expert merged into one GGUF and at {ratio(routed, 'library: 1 expert (GGUF LoRA) @2'):.0%} of that "
                f"expert loaded alone; the base route with every expert at scale 0 at {ratio(idle, 'library: base GGUF @2'):.0%} "
                "of the base GGUF alone.",
                "",
            ]
        write_section("device_speed_library", lines)


def table(report: dict, title: str, prefix: str) -> list[str]:
    """The rows whose name starts (or, with an empty prefix, does not start) with `prefix`; with more than
    one round, each figure's range over the rounds beside it."""
    rows = {
        n: r
        for n, r in report["rows"].items()
        if (n.startswith(prefix) if prefix else not n.startswith("library"))
    }
    sizes = {
        k: v for k, v in report["gguf_bytes"].items() if k.startswith(("library", "expert")) == bool(prefix)
    }
    source = f"the library `{report['library']}`" if prefix else f"the run `{report['run']}`"
    cpu = f" ({report['cpu']})" if report.get("cpu") else ""  # reports from before it was recorded lack it
    lines = [
        f"## {title}",
        "",
        f"- Date: {report['date']}; {report['cpus']} cores{cpu}; {source} (SmolLM2-135M-Instruct); greedy, batch 1, "
        f"{report['new_tokens']} tokens after a warm-up, median over {len(PROMPTS)} prompts; each row in a fresh process"
        + (
            f", {report['rounds']} rounds in turn (median; the range in brackets)"
            if report["rounds"] > 1
            else ""
        )
        + ". GGUF bytes: "
        + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in sizes.items())
        + ".",
        "",
        "| configuration | ms/token | tokens/s | prompt ms | peak memory MiB |",
        "|---|---|---|---|---|",
    ]
    for n, r in rows.items():
        spread = r.get("ms_per_token_rounds", [])
        ms = f"{r['ms_per_token']:.1f}" + (
            f" [{min(spread):.1f}-{max(spread):.1f}]" if len(spread) > 1 else ""
        )
        lines.append(
            f"| {n} | {ms} | {r['tokens_per_s']:.1f} | {r['prompt_ms']:.1f} | {r['peak_rss_bytes'] / 2**20:,.0f} |"
        )
    return lines + [""]


if __name__ == "__main__":
    sys.exit(main())
