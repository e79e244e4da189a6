"""Packages from a finished run: `edgeadapt package export` and `edgeadapt package sizes`.

A package's manifest carries the run's metrics for its update, and for bf16 or int8 what the smaller dtype
costs: domain and general perplexity of the model with the update as the device restores it (the package
extracted for real) against the fp32 update, on the run's own test sets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeadapt import __version__, models
from edgeadapt.deploy import archive, build
from edgeadapt.deploy.gguf_packages import with_tmp
from edgeadapt.deploy.runtime import DEFAULT_RUNTIME, check_package_dtype, get_runtime
from edgeadapt.evaluation.metrics import degradation_pct
from edgeadapt.evaluation.sets import eval_sets
from edgeadapt.inference.predictor import ModelPredictor, perplexity
from edgeadapt.models.fingerprint import fingerprint as base_fingerprint
from edgeadapt.runs.results import add_section
from edgeadapt.runs.run import Run, check_variants, reopen, trained_results
from edgeadapt.updates.sizes import adapter_rank

SCALAR_METRICS = (
    "domain_accuracy",
    "domain_ppl",
    "general_ppl",
    "general_degradation_pct",
    "fact_recall",
    "trainable_params",
    "update_params",
)
PAPER = {"full_bytes": 1.4e9, "update_bytes": 96e6}  # H-LoRA paper: 1.4 GB model, 96 MB adapter


def manifest_fields(run: Run, results: dict[str, Any], variant: str, fingerprint: str) -> dict[str, Any]:
    metrics = results["methods"][variant]
    return {
        "edgeadapt_version": __version__,
        "method": run.method_names[variant],
        "variant": variant,
        "loader": run.method(variant).loader,
        "rank": adapter_rank(run.update_dir(variant)),
        "base_model": {"name": run.cfg.model.name, "fingerprint": fingerprint},
        "metrics": {k: metrics[k] for k in SCALAR_METRICS if isinstance(metrics.get(k), (int, float))},
    }


def dtype_cost(run: Run, variant: str, package: Path, sets) -> dict[str, float]:
    """Domain and general perplexity with the package's update (extracted) against the fp32 update."""
    method, batch = run.method(variant), run.cfg.eval.batch_size
    figures = {}
    with tempfile.TemporaryDirectory(prefix="edgeadapt-cost-") as tmp:
        verified = build.verify(package, allow_unsigned=True)
        try:
            build.extract(verified, Path(tmp))
        finally:
            verified.opened.close()
        for label, folder in (("fp32", run.update_dir(variant)), ("package", Path(tmp))):
            # Loaded by the loader the manifest names, as the device loads it (unmerged, as before merging).
            model = ModelPredictor(method.load_tuned(run.load_model(run.dtype), folder), run.tokenizer)
            figures[f"domain_ppl_{label}"] = perplexity(model, sets.domain_encoded, batch)
            figures[f"general_ppl_{label}"] = perplexity(model, sets.general_chunks, batch)
            del model
    figures["domain_ppl_change_pct"] = degradation_pct(
        figures["domain_ppl_package"], figures["domain_ppl_fp32"]
    )
    figures["general_ppl_change_pct"] = degradation_pct(
        figures["general_ppl_package"], figures["general_ppl_fp32"]
    )
    return figures


def export(
    run: Run,
    results: dict[str, Any],
    variant: str,
    out: Path,
    dtype: str = "fp32",
    sign_key: Path | None = None,
    compress: bool = False,
    fingerprint: str | None = None,
    sets=None,
    release: dict[str, Any] | None = None,
    runtime: str = DEFAULT_RUNTIME,
    gguf_type: str = "f16",
) -> dict[str, Any]:
    """One package for a variant of the run, for a device of `runtime`; bf16/int8 packages record their
    measured cost. `release`: version, channel, created, expires (default `build.release()`), a key list to
    carry, the health bound and a recommended scale."""
    check_variants(run, results, [variant])
    trained_results(run)  # every update is complete
    fingerprint = fingerprint or base_fingerprint(run.model_path)
    fields = manifest_fields(run, results, variant, fingerprint) | (release or build.release())
    engine = get_runtime(runtime)
    if engine.run_sources is not None:  # the runtime's own files (GGUF), made in a temporary folder
        check_package_dtype(dtype, runtime, "update")

        def make(tmp: Path) -> dict[str, Any]:
            sources, extra = engine.run_sources(run, variant, tmp, {"gguf_type": gguf_type})
            return build.build_members(sources, out, fields | extra, "fp32", sign_key, compress)

        return with_tmp(make)
    update_dir = run.dir / variant / "update"
    if dtype != "fp32":
        build.build(update_dir, out, fields, dtype)  # a first build, to measure what the device will load
        fields["dtype_cost"] = dtype_cost(
            run, variant, out, sets or eval_sets(run.data, run.tokenizer, run.cfg)
        )
    return build.build(update_dir, out, fields, dtype, sign_key, compress)


def export_run(
    run_dir: str,
    variant: str,
    out: Path,
    dtype: str,
    sign_key: Path | None,
    compress: bool,
    release: dict[str, Any] | None = None,
    runtime: str = DEFAULT_RUNTIME,
    gguf_type: str = "f16",
) -> dict:
    """`edgeadapt package export RUN --method NAME --dtype D [--sign KEY] [--compress] [--runtime R] --out FILE`."""
    run, results = reopen(run_dir, [], "package")
    return export(
        run,
        results,
        variant,
        Path(out),
        dtype,
        sign_key,
        compress,
        release=release,
        runtime=runtime,
        gguf_type=gguf_type,
    )


def full_model_bytes(run: Run) -> dict[str, int]:
    model = run.load_model(models.pick_dtype("float32", run.device))
    params = models.count_parameters(model)
    return {"params": params, "fp32": params * 4, "bf16": params * 2}


def package_sizes(
    run_dir: str,
    dtypes: tuple[str, ...] = ("fp32", "bf16", "int8"),
    log: Callable[[str], None] = print,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """`edgeadapt package sizes RUN`: every method's package in every dtype, plain and zstd, with the cost of
    bf16/int8; written to results.json (`packages`) and the report."""
    run, results = reopen(run_dir, [], "package")
    folder = run.dir / "packages"
    folder.mkdir(exist_ok=True)
    fingerprint = base_fingerprint(run.model_path)
    sets = eval_sets(run.data, run.tokenizer, run.cfg)
    rows = []
    check_variants(run, results, only or [])
    for variant in only or results["methods"]:
        for dtype in dtypes:
            log(f"[{variant}] {dtype} package")
            plain = export(
                run,
                results,
                variant,
                folder / f"{variant}-{dtype}.eaupd",
                dtype,
                fingerprint=fingerprint,
                sets=sets,
                runtime="transformers",  # the dtype study weighs PyTorch packages (bf16, int8)
            )
            packed = archive.compress(
                folder / f"{variant}-{dtype}.eaupd", folder / f"{variant}-{dtype}.eaupd.zst"
            )
            rows.append(
                {
                    "variant": variant,
                    "dtype": dtype,
                    "raw_bytes": plain["raw_bytes"],
                    "package_bytes": plain["package_bytes"],
                    "compressed_bytes": packed.stat().st_size,
                    "dtype_cost": plain["manifest"].get("dtype_cost"),
                }
            )
    packages = {"full_model": full_model_bytes(run), "paper": PAPER, "rows": rows}
    return add_section(run.dir, results, "packages", packages)
