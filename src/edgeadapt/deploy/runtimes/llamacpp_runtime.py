"""The `llamacpp` device runtime: the base as a GGUF file in llama.cpp (`device init --runtime llamacpp
[--gguf-type f16|q8_0]`), updates as GGUF files (a LoRA llama.cpp applies at run time, or a whole model for
SFT and DoRA), a library's experts as GGUF LoRAs loaded at scale 0 and switched per request by the router,
whose query is computed from the base GGUF's own tensors (`deploy.gguf_queries`). No transformers model
runs on the device: the tokenizer files beside base.gguf format prompts.

    DIR/base/base.gguf        the base model for llama.cpp
    DIR/base/tokenizer*.json  the tokenizer and its chat template

The health check loads the update in llama.cpp in a child process (`llamacpp_check`): a file llama.cpp
refuses, or one that crashes its loader, never becomes active and never takes the device down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.runtime import register_runtime
from edgeadapt.deploy.runtimes import gguf_files

BASE_GGUF = "base.gguf"
GGUF_TYPES = ("f16", "q8_0")
CHECK_TIMEOUT_S = 900


def init_base(base_dir: Path, model_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    import torch

    from edgeadapt import models
    from edgeadapt.deploy.gguf import source_pre_tokenizer, write
    from edgeadapt.models.fingerprint import fingerprint

    gguf_type = options.get("gguf_type") or "f16"
    if gguf_type not in GGUF_TYPES:
        raise PackageError(f"--gguf-type must be one of {', '.join(GGUF_TYPES)}, got '{gguf_type}'")
    model, tokenizer = models.load(model_dir, torch.float32, torch.device("cpu"))
    # The built-in model's name picks the pre-tokenizer llama.cpp splits text with (its source GGUF's).
    name = options.get("model") or models.model_info(model_dir)["name"]
    write(
        model,
        tokenizer,
        Path(base_dir) / BASE_GGUF,
        gguf_type,
        f"{name} (device base)",
        source_pre_tokenizer(name),
    )
    tokenizer.save_pretrained(base_dir)
    return {"base_fingerprint": fingerprint(model_dir), "gguf_type": gguf_type}


def update_kind(manifest: dict[str, Any]) -> str:
    return (manifest.get("gguf") or {}).get("kind", "")


def check(folder: Path, manifest: dict[str, Any], device_dir: Path) -> None:
    """Every GGUF file against the base GGUF, a library's names and router, then the health check in
    llama.cpp, in a child process."""
    base_gguf = Path(device_dir) / "base" / BASE_GGUF
    problems = file_problems(folder, manifest, base_gguf, Path(device_dir) / "base")
    if problems:
        raise PackageError(f"refused before activation: {problems[0]}")
    report = run_check(job(folder, manifest, Path(device_dir) / "base"))
    from edgeadapt.models.loading import load_tokenizer_files

    tokenizer = load_tokenizer_files(Path(device_dir) / "base")
    for part in (report["base"], report["update"]):
        part["answers"] = [tokenizer.decode(ids, skip_special_tokens=True) for ids in part["answer_ids"]]
    judge(report, manifest)


def file_problems(folder: Path, manifest: dict[str, Any], base_gguf: Path, base_dir: Path) -> list[str]:
    base = gguf_files.base_table(base_gguf)
    if manifest.get("kind", "update") != "update":
        from edgeadapt.deploy.health import library_problems
        from edgeadapt.deploy.runtime import device_info

        problems = library_problems(folder, base_dir, device_info(base_dir.parent)["base_fingerprint"])
        for expert in sorted((folder / "experts").iterdir()) if (folder / "experts").is_dir() else []:
            problems += [f"expert {expert.name}: {p}" for p in expert_problems(expert, base)]
        return problems + router_layer_problems(folder)
    names = sorted(p.name for p in folder.iterdir())
    kind = update_kind(manifest)
    wanted = {"adapter": ["adapter.gguf"], "model": ["model.gguf"]}.get(kind)
    if names != wanted:
        return [
            f"a llama.cpp update holds adapter.gguf or model.gguf (as its manifest says), not {', '.join(names)}"
        ]
    check_file = gguf_files.lora_problems if kind == "adapter" else gguf_files.model_problems
    return check_file(folder / wanted[0], base)


def expert_problems(expert: Path, base: dict) -> list[str]:
    names = sorted(p.name for p in expert.iterdir())
    if names != ["adapter.gguf"]:
        return [f"an expert holds adapter.gguf, not {', '.join(names)}"]
    return gguf_files.lora_problems(expert / "adapter.gguf", base)


def router_layer_problems(folder: Path) -> list[str]:
    """A router that reads the base's hidden states must read a layer this device computes from its GGUF
    (0 or 1); one that reads the prompt's text needs none."""
    from edgeadapt.routing import router_kind_of

    kind = router_kind_of(folder)
    if not kind.capabilities.reads_model:
        return []
    layer = kind.load(folder).layer
    if layer not in (0, 1):
        return [f"the router reads layer {layer}; a llama.cpp device computes its query at layer 0 or 1"]
    return []


def job(folder: Path, manifest: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """What the child process checks: files, token ids (the parent tokenizes), the scale."""
    from edgeadapt.deploy.health_rules import HEALTH_PROMPTS, HEALTH_TEXT, health_ids
    from edgeadapt.models.loading import load_tokenizer_files

    tokenizer = load_tokenizer_files(base_dir)
    update: dict[str, Any] = {"kind": update_kind(manifest) or "library"}
    if manifest.get("kind", "update") != "update":
        experts = json.loads((folder / "library.json").read_text())["experts"]
        update["adapters"] = [str(folder / "experts" / name / "adapter.gguf") for name in experts]
    elif update["kind"] == "adapter":
        update["adapters"] = [str(folder / "adapter.gguf")]
    else:
        update["model"] = str(folder / "model.gguf")
    return {
        "base": str(base_dir / BASE_GGUF),
        "update": update,
        "scale": float(manifest.get("scale", 1.0)),
        "prompts": [health_ids(tokenizer, p) for p in HEALTH_PROMPTS],
        "text": tokenizer(HEALTH_TEXT, add_special_tokens=False)["input_ids"],
    }


def run_check(spec: dict[str, Any]) -> dict[str, Any]:
    """The health check in a child process: a crash in native code is a refusal, not the device's end."""
    with tempfile.TemporaryDirectory(prefix="edgeadapt-llamacpp-") as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(spec))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "edgeadapt.deploy.runtimes.llamacpp_check", str(path)],
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise PackageError(
                f"refused before activation: llama.cpp took over {CHECK_TIMEOUT_S} s to load and answer"
            ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        how = f"crashed (signal {-done.returncode})" if done.returncode < 0 else f"failed ({last})"
        raise PackageError(f"refused before activation: llama.cpp {how} loading the update")
    return json.loads(done.stdout.strip().splitlines()[-1])


def judge(report: dict[str, Any], manifest: dict[str, Any]) -> None:
    """The same rules as the transformers runtime's health check, on llama.cpp's numbers."""
    from edgeadapt.deploy.health_rules import degenerate, max_ppl_ratio

    base, update = report["base"], report["update"]
    for name, finite in report.get("experts", {}).items():
        if not finite:
            raise PackageError(f"refused before activation: expert {name} gives non-finite log-probabilities")
    if not update["finite"]:
        raise PackageError("refused before activation: the model's log-probabilities are not finite")
    ratio = max_ppl_ratio(manifest)
    if update["ppl"] > ratio * base["ppl"]:
        raise PackageError(
            f"refused before activation: perplexity {update['ppl']:.1f} on the health text is over {ratio:g}x the "
            f"base model's ({base['ppl']:.1f}), the bound the package states"
        )
    base_degenerate = any(map(degenerate, base["answers"]))
    if not base_degenerate and any(map(degenerate, update["answers"])):
        raise PackageError("refused before activation: a degenerate answer to a health prompt")


class Served:
    """The active model in llama.cpp: the base, an update (a LoRA at its scale, or a whole model), or a
    library routed per request (every expert named with its scale on every request; the base route has
    every scale 0, which is the base GGUF's own computation, tested)."""

    def __init__(
        self,
        device_dir: Path,
        folder: Path | None,
        manifest: dict[str, Any] | None,
        scale: float,
        threads: int = 0,
    ):
        import os

        from edgeadapt.deploy.llamacpp import LlamaCpp
        from edgeadapt.models.loading import load_tokenizer_files

        base_dir = Path(device_dir) / "base"
        self.tokenizer = load_tokenizer_files(base_dir)
        threads = threads or os.cpu_count() or 1
        self.router = None
        kind = update_kind(manifest) if manifest else ""
        if manifest and manifest.get("kind", "update") != "update":
            from edgeadapt.deploy.gguf_queries import GgufQueries
            from edgeadapt.routing import router_kind_of

            experts = json.loads((folder / "library.json").read_text())["experts"]
            adapters = [folder / "experts" / name / "adapter.gguf" for name in experts]
            self.llama = LlamaCpp(base_dir / BASE_GGUF, adapters, threads)
            router_kind = router_kind_of(folder)
            self.router = router_kind.load(folder)
            # its query: the base's hidden states, computed from the GGUF (a text router reads the prompt)
            if router_kind.capabilities.reads_model:
                self.router.bind_queries(GgufQueries(base_dir / BASE_GGUF, self.router.layer))
            self.experts = list(experts)
        elif kind == "adapter":
            self.llama = LlamaCpp(base_dir / BASE_GGUF, folder / "adapter.gguf", threads, scale=scale)
        else:
            self.llama = LlamaCpp(
                folder / "model.gguf" if kind == "model" else base_dir / BASE_GGUF, None, threads
            )

    def generate(self, prompt: str, max_new_tokens: int) -> tuple[str, Any]:
        from edgeadapt.data.format import prompt_ids

        ids = prompt_ids(self.tokenizer, [{"role": "user", "content": prompt}])
        route, scales = None, None
        if self.router is not None:
            from edgeadapt.routing.router import Request

            route = self.router.route([Request(ids, prompt)])[0]
            weights = dict(zip(route.experts, route.weights))
            scales = [weights.get(name, 0.0) for name in self.experts]
        tokens, _, timings = self.llama.greedy_timed(ids, max_new_tokens, scales)
        # the prompt's processing apart from the answer's tokens: per-token speed is the second
        self.timings = {
            "prompt_tokens": timings.get("prompt_n"),
            "prompt_ms": timings.get("prompt_ms"),
            "answer_tokens": timings.get("predicted_n"),
            "answer_ms": timings.get("predicted_ms"),
        }
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip(), route


def serve(
    device_dir: Path, folder: Path | None, manifest: dict[str, Any] | None, scale: float = 1.0
) -> Served:
    return Served(device_dir, folder, manifest, scale)


def _run_sources(run, variant, tmp, options):
    from edgeadapt.deploy.gguf_packages import run_sources

    return run_sources(run, variant, tmp, options.get("gguf_type") or "f16")


def _library_sources(library, tmp, names=None):
    from edgeadapt.deploy.gguf_packages import library_sources

    return library_sources(library, tmp, names)


def _adapter_sources(folder, method, base_dir, tmp):
    from edgeadapt.deploy.gguf_packages import adapter_folder_sources

    return adapter_folder_sources(folder, method, base_dir, tmp)


LLAMACPP = register_runtime(
    name="llamacpp",
    description="GGUF files in llama.cpp: the base, GGUF LoRAs applied per request, whole GGUF models for SFT",
    init_base=init_base,
    check=check,
    serve=serve,
    run_sources=_run_sources,
    library_sources=_library_sources,
    adapter_sources=_adapter_sources,
)
