"""A run: what every stage shares (config, validated method options, device, model path, tokenizer and
data), and reopening a finished run to add a section without retraining.

The data are read when first asked for: a fresh run reads them at once, so bad input surfaces before any
work; a reopened run (`package export`, `export gguf`, `edge-check`) reads them only if it needs them.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from edgeadapt import models, updates
from edgeadapt.core.config import RunConfig, apply_override, check_override_key, parse
from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.core.resources import set_threads
from edgeadapt.data.run_data import RunData
from edgeadapt.inference.predictor import ModelPredictor, open_model
from edgeadapt.runs import results as results_io
from edgeadapt.training.loop import TrainResult


class Run:
    """A run's config, methods, device, model path and (on demand) tokenizer and data."""

    def __init__(self, cfg: RunConfig, only: list[str] | None = None, read_data: bool = True):
        self.cfg = cfg
        method_cfgs = updates.parse_configs(cfg.methods)  # every config problem surfaces before any work
        missing = [m for m in only or () if m not in method_cfgs]
        if missing:
            raise UserError(
                f"Method '{missing[0]}' is not in this config's methods.{did_you_mean(missing[0], method_cfgs)} "
                f"Its methods: {', '.join(method_cfgs)}."
            )
        self.method_cfgs = {m: method_cfgs[m] for m in only} if only else method_cfgs
        self.method_names = {v: updates.method_of(v, cfg.methods[v]) for v in self.method_cfgs}
        set_threads(cfg.train.threads)
        self.device = models.pick_device()
        self.model_path = models.resolve(cfg.model.name, cfg.base_dir)
        self.dir = cfg.run_dir()
        if read_data:
            _ = self.data, self.tokenizer
        self.dir.mkdir(parents=True, exist_ok=True)

    @cached_property
    def data(self) -> RunData:
        return RunData(self.cfg)

    @cached_property
    def tokenizer(self):
        return models.load_tokenizer(self.model_path)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype models are evaluated in (fp32 on the CPU, bf16 on CUDA, unless the config names one)."""
        return models.pick_dtype(self.cfg.model.dtype, self.device)

    def method(self, variant: str) -> updates.Method:
        """The method a variant of this run's `methods:` runs."""
        return updates.get(self.method_names[variant])

    def update_dir(self, variant: str) -> Path:
        return self.dir / variant / "update"

    def load_model(self, dtype: torch.dtype):
        """A fresh copy of the base model."""
        return models.load(self.model_path, dtype, self.device)[0]

    def open(
        self, variant: str | None = None, dtype: torch.dtype | None = None, merge: bool = True
    ) -> ModelPredictor:
        """The base model (variant None) or a variant's tuned model, merged as a device runs it."""
        method = self.method_names[variant] if variant else None
        return open_model(
            self.model_path,
            dtype or self.dtype,
            self.device,
            method,
            self.update_dir(variant) if variant else None,
            merge,
            self.tokenizer,
            variant or "base",
        )


def trained_results(run: Run) -> dict[str, TrainResult]:
    trained = {}
    for name in run.method_cfgs:
        trained[name] = TrainResult.load(run.dir / name)
        if trained[name] is None:
            raise UserError(
                f"Method '{name}' has not been trained in {run.dir}: run `edgeadapt train CONFIG "
                f"--method {name}` or `edgeadapt compare CONFIG`."
            )
    return trained


def non_defaults(method_cfg) -> dict[str, Any]:
    """A method config's options that differ from the method's defaults (what makes a variant)."""
    default = type(method_cfg)()
    return {
        f.name: getattr(method_cfg, f.name)
        for f in dataclasses.fields(method_cfg)
        if getattr(method_cfg, f.name) != getattr(default, f.name)
    }


def reopen(run_dir: str | Path, overrides: list[str], section: str) -> tuple[Run, dict[str, Any]]:
    """A finished run and its results, for adding a section (`recovery`, `analysis`, ...) afterwards.

    Only `SECTION.*` overrides are accepted (the rest of the run is fixed); they are recorded in the
    results' config, so results.json says which settings were used. The run's data are not read unless the
    section needs them.
    """
    results = results_io.read_results(Path(run_dir))
    data = results["config"]
    parse(data, f"{results_io.results_path(Path(run_dir))}: ")  # the recorded config's own problems
    for override in overrides:
        if not override.startswith(f"{section}."):
            raise UserError(
                f"Override '{override}': only {section}.* keys are accepted here (the run is fixed)."
            )
        check_override_key(override)
        apply_override(data, override)
    cfg = parse(data, f"command line ({' '.join(overrides)}): ") if overrides else parse(data)
    cfg.out_dir, cfg.name = str(Path(run_dir).parent), Path(run_dir).name  # the run may have moved
    run = Run(cfg, only=list(results["methods"]), read_data=False)  # the methods this run's results hold
    return run, results


def check_variants(run: Run, results: dict[str, Any], variants: list[str], allow_base: bool = False) -> None:
    """Every named variant is one of the run's methods (with a did-you-mean where it is not)."""
    for variant in variants:
        if variant not in results["methods"] and not (allow_base and variant == "base"):
            raise UserError(
                f"Method '{variant}' is not in {results_io.results_path(run.dir)}."
                f"{did_you_mean(variant, results['methods'])} Its methods: {', '.join(results['methods'])}"
                + (" (or base)." if allow_base else ".")
            )
