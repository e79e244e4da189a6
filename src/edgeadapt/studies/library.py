"""`edgeadapt library build CONFIG`: one expert per domain of `library.domains`, trained by the ordinary
training loop (the variant `library.expert` of the config's `methods:`), collected with its description into
an adapter library (`edgeadapt.updates.library`), and a router trained on the domains' prompts and
calibrated on general ones, saved into the library.

Each domain is a sub-run OUT_DIR/NAME/on-DOMAIN/ (resumable, as in `transfer`). Two single-model baselines
train on the same data when the config asks: `multitask` (one adapter on every domain's rows, for
`library.multitask_steps`) and `general` (an adapter on general prose no evaluation reads, for GenKnowSub).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path

from edgeadapt.core.config import RunConfig
from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.data import packs
from edgeadapt.data.format import encode
from edgeadapt.routing import get_router
from edgeadapt.routing.router import RULES
from edgeadapt.runs.run import Run
from edgeadapt.studies.router_data import RouterData
from edgeadapt.studies.train import curve_sets, train_run, train_variant
from edgeadapt.training.loop import TrainResult
from edgeadapt.updates.library import Expert, Library, expert_name
from edgeadapt.updates.sizes import adapter_rank

LIBRARY = "library"
MULTITASK, GENERAL = "multitask", "general"


def library_dir(cfg: RunConfig) -> Path:
    return cfg.run_dir() / LIBRARY


def domain_runs(cfg: RunConfig, read_data: bool = True) -> dict[str, Run]:
    """One run per library domain under OUT_DIR/NAME/on-DOMAIN/, training only the expert variant."""
    if cfg.library.expert not in cfg.methods:
        raise UserError(
            f"library.expert: '{cfg.library.expert}' is not in methods ({', '.join(cfg.methods)})."
        )
    kind = get_router(cfg.router.kind, "router.kind")  # an unknown kind is an error before any training
    if cfg.router.rule not in RULES:
        raise UserError(
            f"router.rule: one of {', '.join(RULES)}, got '{cfg.router.rule}'.{did_you_mean(cfg.router.rule, RULES)}"
        )
    if not kind.capabilities.ships:
        raise UserError(
            f"router.kind: a '{kind.name}' router cannot be saved into a library (a study baseline)."
        )
    runs = {}
    for domain in cfg.library.domains:
        sub = copy.deepcopy(cfg)
        sub.data.domain, sub.out_dir, sub.name = domain, str(cfg.run_dir()), f"on-{domain}"
        sub.methods = {cfg.library.expert: cfg.methods[cfg.library.expert]}
        sub.train.steps = cfg.library.expert_steps.get(domain, cfg.train.steps)
        runs[domain] = Run(sub, read_data=read_data)
    method = next(iter(runs.values())).method(cfg.library.expert)
    if not method.capabilities.lora_family:
        raise UserError(
            f"library.expert: {method.name} is not a LoRA-family method; experts must be adapters."
        )
    return runs


def description(cfg: RunConfig, domain: str) -> str:
    if domain in cfg.library.descriptions:
        return cfg.library.descriptions[domain]
    return packs.PACKS[domain][1] if domain in packs.PACKS else f"domain data in {domain}"


def build_library(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print) -> Library:
    """Train (or, with `resume`, reuse) every expert and the baselines, write the library and its router."""
    runs = domain_runs(cfg)  # every domain's data and the expert's options are checked before any work
    trained = {domain: train_run(run, resume, log)[cfg.library.expert] for domain, run in runs.items()}
    first = next(iter(runs.values()))
    library = Library.create(library_dir(cfg), cfg.model.name, first.model_path)
    for domain, run in runs.items():
        result = trained[domain]
        library.add(
            expert_name(domain),
            Expert(
                domain=run.data.domain_name,
                description=description(cfg, domain),
                method=run.method_names[cfg.library.expert],
                rank=adapter_rank(run.update_dir(cfg.library.expert)),
                train=expert_record(run, result),
            ),
            run.update_dir(cfg.library.expert),
        )
    if cfg.library.multitask:
        train_multitask(cfg, runs, resume, log)
    if cfg.library.general_adapter:
        train_general(cfg, first, resume, log)
    data = RouterData(cfg, runs, library)
    router = train_router(cfg, data, cfg.router.seeds[0], log)
    library.router, library.router_id = router.save(library.folder), router.identity()
    library.save()
    log(f"library: {len(library.experts)} experts and a router in {library.folder}")
    return library


def expert_record(run: Run, result: TrainResult) -> dict:
    return {
        "steps": result.steps,
        "lr": result.lr,
        "seconds": result.seconds,
        "train_rows": len(run.data.train),
        "options": dict(run.cfg.methods[run.cfg.library.expert] or {}),
        "seed": run.cfg.train.seed,
    }


def extra_run(cfg: RunConfig, name: str, base: Run) -> Run:
    """A sub-run OUT_DIR/NAME/NAME-of-extra for an adapter trained on other rows than one domain's."""
    sub = copy.deepcopy(base.cfg)
    sub.name, sub.methods = (
        name,
        {name: {**(cfg.methods[cfg.library.expert] or {}), "method": base.method_names[cfg.library.expert]}},
    )
    return Run(sub, read_data=False)


def train_multitask(cfg: RunConfig, runs: dict[str, Run], resume: bool, log) -> TrainResult:
    """The "one adapter for everything" baseline: every domain's training rows, shuffled together."""
    first = next(iter(runs.values()))
    run = extra_run(cfg, MULTITASK, first)
    rows = [row for r in runs.values() for row in r.data.train]
    random.Random(cfg.train.seed).shuffle(rows)
    val = [row for r in runs.values() for row in r.data.val[: max(1, cfg.data.val_rows // len(runs))]]
    encoded = [encode(first.tokenizer, r, cfg.data.max_length) for r in rows]
    steps = cfg.library.multitask_steps or cfg.train.steps * len(runs)
    return train_variant(
        run,
        MULTITASK,
        run.method_cfgs[MULTITASK],
        encoded,
        curve_sets(first, val),
        encoded,
        steps,
        resume,
        log,
    )


def train_general(cfg: RunConfig, first: Run, resume: bool, log) -> TrainResult:
    run = extra_run(cfg, GENERAL, first)
    texts = first.data.unread_text()
    rows = [encode(first.tokenizer, {"text": t}, cfg.data.max_length) for t in texts]
    val = [{"text": t} for t in texts[:8]]
    return train_variant(
        run,
        GENERAL,
        run.method_cfgs[GENERAL],
        rows,
        curve_sets(first, val),
        rows,
        cfg.train.steps,
        resume,
        log,
    )


def train_router(cfg: RunConfig, data: RouterData, seed: int, log, layer: int | None = None, kind: str = ""):
    """A router of `kind` (default: router.kind) on this seed's training prompts, its threshold calibrated on
    held-out general prompts; queries from `layer` (default: router.layer) for a router that reads the base."""
    kind = get_router(kind or cfg.router.kind)
    layer = cfg.router.layer if layer is None else layer
    router = kind.fit(data.training(seed), cfg.router, seed, layer)
    where = f", layer {layer}" if kind.capabilities.reads_model else ""
    log(f"router {kind.name} (seed {seed}{where}): threshold {router.tau:.3f}")
    return router
