"""`edgeadapt edge-check RUN`: does each model, as it would be deployed, fit an edge budget?

For the base and every tuned model (merged; adaptq keeps its frozen blocks quantized) a fresh process loads
the model on the CPU, warms up, then generates `edge.new_tokens` tokens greedily at batch 1 with a KV cache,
timing every decoding step. Recorded: parameters, bytes of weights as stored, the process's peak resident
memory while generating (and over its whole life, loading included), median and p90 ms per token. A fresh
process per model keeps one model's memory out of another's figure.

Run a single probe by hand: `python -m edgeadapt.deploy.edge '{"model_path": ..., "method": null, ...}'`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from edgeadapt.core.config import EdgeConfig
from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.inference.timing import decode_times
from edgeadapt.runs.results import add_section
from edgeadapt.runs.run import reopen, trained_results

MARK = "EDGE_PROBE_RESULT "


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one deployed model; runs inside the fresh process."""
    import gc

    import torch

    from edgeadapt import models
    from edgeadapt.core.resources import peak_rss, set_threads
    from edgeadapt.data.format import prompt_ids
    from edgeadapt.inference.predictor import open_model
    from edgeadapt.models.quantize import weight_bytes

    set_threads(spec["threads"])
    update = Path(spec["update_dir"]) if spec["method"] else None
    predictor = open_model(
        Path(spec["model_path"]), torch.float32, torch.device("cpu"), spec["method"], update
    )
    model, tokenizer = predictor.model, predictor.tokenizer
    gc.collect()
    prompt = prompt_ids(tokenizer, [{"role": "user", "content": spec["prompt"]}])
    decode_times(model, prompt, 4)  # warm-up: first calls allocate and pick kernels
    with peak_rss() as seen:
        times = decode_times(model, prompt, spec["new_tokens"])
    ms = sorted(t * 1000 for t in times)
    return {
        **llamacpp_speed(model, tokenizer, prompt, spec),
        "params": models.count_parameters(model),
        "weight_bytes": weight_bytes(model),
        "peak_rss_bytes": seen["peak"],
        "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "ms_per_token": statistics.median(ms),
        "ms_per_token_p90": ms[int(0.9 * (len(ms) - 1))],
        "tokens": len(ms),
    }


def llamacpp_speed(model, tokenizer, prompt: list[int], spec: dict[str, Any]) -> dict[str, Any]:
    """The same model exported to GGUF (f16) and timed in llama.cpp on the same prompt, where it can be
    exported: llama.cpp's own timing of the generated tokens and of the prompt, at the probe's threads and
    at edge.llamacpp_threads, and the GGUF's bytes."""
    import tempfile

    from edgeadapt.deploy.gguf import SUPPORTED, write
    from edgeadapt.deploy.llamacpp import LlamaCpp

    if not spec.get("gguf") or type(model).__name__ not in SUPPORTED:
        return {"llamacpp_tokens_per_s": None}
    threads = spec["threads"] or os.cpu_count() or 1
    per_threads = {}
    with tempfile.TemporaryDirectory(prefix="edgeadapt-edge-") as tmp:
        path = write(model, tokenizer, Path(tmp) / "model.gguf", "f16", pre=spec.get("pre", "default"))
        for n in sorted({threads, *spec.get("llamacpp_threads", [])}):
            with LlamaCpp(path, threads=n) as llama:
                llama.complete(prompt, 4)  # warm-up
                timings = llama.complete(prompt, spec["new_tokens"], ignore_eos=True)["timings"]
            per_threads[str(n)] = {
                "ms_per_token": timings["predicted_per_token_ms"],
                "prompt_ms": timings["prompt_ms"],
            }
        size = path.stat().st_size
    speed = 1000 / per_threads[str(threads)]["ms_per_token"]
    return {
        "llamacpp_tokens_per_s": speed,
        "llamacpp_ms_per_token": 1000 / speed,
        "llamacpp_dtype": "f16",
        "llamacpp_gguf_bytes": size,
        "llamacpp_by_threads": per_threads,
    }


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """`probe` in a fresh Python process; its last marked output line is the result."""
    done = subprocess.run(
        [sys.executable, "-m", "edgeadapt.deploy.edge", json.dumps(spec)], capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"edge probe failed for {spec}: {done.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len(MARK) :])


def verdict(metrics: dict[str, Any], profile: dict[str, float]) -> dict[str, Any]:
    limits = {
        "params": (metrics["params"], profile["max_params"]),
        "memory": (metrics["peak_rss_bytes"] / 2**20, profile["max_memory_mb"]),
        "ms/token": (metrics["ms_per_token"], profile["max_ms_per_token"]),
    }
    failed = [f"{k} {v:,.1f} > {limit:,.0f}" for k, (v, limit) in limits.items() if v > limit]
    return {"passed": not failed, "failed": failed}


def edge_check(
    run_dir: str,
    overrides: list[str] = (),
    log: Callable[[str], None] = print,
    methods: list[str] | None = None,
) -> dict[str, Any]:
    """Probe the base and every trained model of a finished run (or the base and `methods`); add the `edge`
    section to its results, keeping what an earlier check measured for models not probed again."""
    run, results = reopen(run_dir, overrides, "edge")
    for name in methods or []:
        if name not in results["methods"]:
            raise UserError(
                f"--method: the run has no evaluated method '{name}'.{did_you_mean(name, results['methods'])}"
            )
    edge: EdgeConfig = run.cfg.edge
    trained_results(run)
    profile = edge.profiles[edge.profile]
    from edgeadapt.deploy.gguf import source_pre_tokenizer

    spec = {
        "model_path": str(run.model_path),
        "prompt": edge.prompt,
        "new_tokens": edge.new_tokens,
        "threads": edge.threads,
        "llamacpp_threads": list(edge.llamacpp_threads),
        "pre": source_pre_tokenizer(run.cfg.model.name),
    }
    entries = {"base": {**spec, "method": None, "gguf": True}} | {
        name: {
            **spec,
            "method": run.method_names[name],
            "update_dir": str(run.dir / name / "update"),
            "gguf": run.method(name).capabilities.gguf is None,
        }
        for name in methods or results["methods"]
    }
    earlier = (results.get("edge") or {}).get("models", {}) if methods else {}
    measured = {k: v for k, v in earlier.items() if k in results["methods"]}
    for name, entry in tqdm(entries.items(), desc="edge check", leave=False, disable=None):
        log(f"[{name}] generating {edge.new_tokens} tokens in a fresh process")
        metrics = run_probe(entry)
        measured[name] = {**metrics, **verdict(metrics, profile)}
    section = {
        "profile_name": edge.profile,
        "profile": profile,
        "new_tokens": edge.new_tokens,
        "threads": edge.threads or os.cpu_count(),
        "device": "cpu",
        "models": measured,
    }
    results["config"]["edge"] = {**results["config"].get("edge", {}), **vars(edge)}
    return add_section(run.dir, results, "edge", section)


if __name__ == "__main__":
    print(MARK + json.dumps(probe(json.loads(sys.argv[1]))))
