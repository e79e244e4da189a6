"""`edgeadapt sweep CONFIG`: every method at several learning rates (and step budgets, and seeds), then the
frontier of domain skill against forgetting and each method's forgetting at matched skill.

Each (steps, seed) pair is one run, OUT_DIR/NAME/steps{S}-seed{K}/, holding one variant per method and
learning rate (`{variant}-lr{lr}`): the ordinary compare pipeline, resumed, so finished trainings and
evaluations are reused. Points are averaged over seeds (the spread is their standard deviation); per method
the Pareto frontier of domain accuracy against general degradation starts at the base model (no update:
0% degradation, the base accuracy), which every method reaches by scaling its update to 0.
"""

from __future__ import annotations

import copy
import itertools
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeadapt.core.config import RunConfig, apply_override, parse, to_dict
from edgeadapt.core.files import write_json_atomic
from edgeadapt.evaluation.frontier import compare_at_target, pareto_frontier
from edgeadapt.runs import results as results_io
from edgeadapt.runs.run import Run
from edgeadapt.studies.evaluate import eval_key, evaluate_run
from edgeadapt.studies.train import train_run
from edgeadapt.updates import method_of, parse_configs

RESULTS = "sweep.json"


SETTING = "setting"  # a grid point's key naming one of sweep.settings


def grid_points(cfg: RunConfig) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of `sweep.grid`'s values (and of `sweep.settings`, by name), as ((key, value), ...);
    one empty point without either."""
    keys = list(cfg.sweep.grid)
    points = [tuple(zip(keys, values)) for values in itertools.product(*(cfg.sweep.grid[k] for k in keys))]
    if not cfg.sweep.settings:
        return points
    return [point + ((SETTING, name),) for point in points for name in cfg.sweep.settings]


def point_label(point: tuple[tuple[str, Any], ...]) -> str:
    return "".join(
        f"{value}-" if key == SETTING else f"{key.rsplit('.', 1)[-1]}{value}-" for key, value in point
    )


def method_label(cfg: RunConfig, variant: str, point: tuple[tuple[str, Any], ...]) -> str:
    """A variant under a non-empty setting is a method of its own on the frontier: `sft+kl`."""
    setting = dict(point).get(SETTING)
    return f"{variant}+{setting}" if setting and cfg.sweep.settings.get(setting) else variant


def budget(cfg: RunConfig, steps: int) -> tuple[str, str]:
    """What bounds training, as (unit, amount): train.epochs where set (the steps then follow from the rows),
    else the steps. A grid may sweep train.epochs itself, so `cfg` is the grid point's config."""
    return ("epochs", f"{cfg.train.epochs:g}") if cfg.train.epochs else ("steps", str(steps))


def with_point(cfg: RunConfig, point: tuple[tuple[str, Any], ...]) -> RunConfig:
    """The config with a grid point's values set, validated like a config file (an unknown key is named)."""
    if not point:
        return copy.deepcopy(cfg)
    data = to_dict(cfg)
    for key, value in point:
        values = cfg.sweep.settings[value].items() if key == SETTING else [(key, value)]
        for name, setting in values:
            apply_override(data, f"{name}={json.dumps(setting)}")
    return parse(data, "sweep.grid: ")


def grid_configs(cfg: RunConfig) -> dict[tuple, RunConfig]:
    """One run config per (grid point, steps, seed), each with every method at every learning rate."""
    parsed = parse_configs(cfg.methods)  # validate the methods once, before any work
    methods = {}
    for variant, options in cfg.methods.items():
        for factor in cfg.sweep.lr_factors:
            lr = parsed[variant].lr * factor
            methods[f"{variant}-lr{lr:.3g}"] = {
                **(options or {}),
                "method": method_of(variant, options),
                "lr": lr,
            }
    runs = {}
    for point in grid_points(cfg):
        for steps in cfg.sweep.steps or [cfg.train.steps]:
            for seed in cfg.sweep.seeds:
                sub = with_point(cfg, point)
                sub.out_dir = str(cfg.run_dir())
                unit, amount = budget(sub, steps)
                sub.name = f"{point_label(point)}{unit}{amount}-seed{seed}"
                sub.train.steps, sub.train.seed, sub.methods = steps, seed, methods
                sub.base_dir = cfg.base_dir
                runs[(point, steps, seed)] = sub
    return runs


def collect_points(cfg: RunConfig, results: dict[tuple, dict]) -> list[dict[str, Any]]:
    """One point per method, learning rate, grid point and step budget, averaged over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for (point, steps, _seed), run_results in results.items():
        for name, m in run_results["methods"].items():
            variant, lr = name.rsplit("-lr", 1)
            label = method_label(cfg, variant, point)
            groups.setdefault((label, f"{label}-lr{lr}", point, steps), []).append(m)
    points = []
    for (variant, name, point, steps), runs in groups.items():

        def mean(key, runs=runs):
            values = [r[key] for r in runs if r.get(key) is not None]
            return statistics.fmean(values) if values else None

        degradations = [r["general_degradation_pct"] for r in runs]
        points.append(
            {
                "method": variant,
                "point": name,
                "lr": runs[0]["lr"],
                "steps": runs[0].get("steps", steps),
                "grid": dict(point),
                "seeds": len(runs),
                "accuracy": mean("domain_accuracy"),
                "degradation": mean("general_degradation_pct"),
                "spread": statistics.stdev(degradations) if len(runs) > 1 else 0.0,
                "accuracy_spread": statistics.stdev(r["domain_accuracy"] for r in runs)
                if len(runs) > 1
                else 0.0,
                "topic_retention": mean("topic_retention"),
                "fact_recall": mean("fact_recall"),
            }
        )
    return points


def summarize(
    points: list[dict[str, Any]], base: dict[str, Any], targets: list[float], seeds: int = 1
) -> dict[str, Any]:
    """Frontier per method and forgetting at matched skill (targets as shares of the best accuracy)."""
    origin = {"point": "base", "accuracy": base["domain_accuracy"], "degradation": 0.0, "spread": 0.0}
    frontiers = {
        method: pareto_frontier([origin] + [p for p in points if p["method"] == method])
        for method in dict.fromkeys(p["method"] for p in points)
    }
    best = max(p["accuracy"] for p in points)
    matched = []
    for share in targets:
        target = share * best
        if (
            target <= origin["accuracy"]
        ):  # the base model already has it: no update needed, nothing to compare
            row = {"target_accuracy": target, "methods": {m: None for m in frontiers}}
            row["verdict"] = "at or below the base model's accuracy: no update needed"
            row["no_update_needed"] = True
        else:
            row = compare_at_target(frontiers, target)
        if seeds == 1 and row["verdict"].endswith("forgets least"):
            row["verdict"] += " (one seed: no spread measured)"
        matched.append(row | {"share_of_best": share})
    return {"best_accuracy": best, "frontiers": frontiers, "matched": matched}


def sweep_run(cfg: RunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate every grid point (resuming), then write sweep.json."""
    configs = grid_configs(cfg)
    out_dir = cfg.run_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    # the previous summary stays until the new one replaces it whole: a stopped study loses nothing
    runs = {key: Run(sub) for key, sub in configs.items()}  # every run's inputs are checked first
    results, base_evaluated_in = {}, {}
    for (point, steps, seed), run in runs.items():
        where = ", ".join(f"{k} {v}" for k, v in point)
        unit, amount = budget(run.cfg, steps)
        log(
            f"== {len(run.method_cfgs)} points at {where + ', ' if where else ''}{unit} {amount}, seed {seed}"
        )
        train_run(run, resume=True, log=log)
        share_base_evaluation(run, base_evaluated_in, log)
        results[(point, steps, seed)] = evaluate_run(run, log, reuse=True)
        base_evaluated_in.setdefault(eval_key(run.cfg), run.dir)
    first = next(iter(results.values()))
    points = collect_points(cfg, results)
    sweep = {
        "config": to_dict(cfg),
        "model": first["model"],
        "data": first["data"],
        "device": first["device"],
        "versions": first["versions"],
        "seeds": cfg.sweep.seeds,
        "base": {
            k: first["base"].get(k)
            for k in ("domain_accuracy", "general_ppl", "fact_recall", "on_topic_rate")
        },
        "points": points,
        **summarize(points, first["base"], cfg.sweep.targets, len(cfg.sweep.seeds)),
    }
    if cfg.sweep.grid:
        sweep["curves"] = grid_curves(points, list(cfg.sweep.grid))
    write_json_atomic(out_dir / RESULTS, sweep)
    return sweep


def share_base_evaluation(run: Run, evaluated_in: dict[str, Path], log: Callable[[str], None]) -> None:
    """The base model's evaluation, taken from an earlier run of this sweep measured under the same model,
    data and eval settings (`eval_key`: seeds and settings that change only training share it) instead of
    measured again: a few minutes per run on the real model, the same numbers."""
    key = eval_key(run.cfg)
    if key not in evaluated_in or results_io.read_cache(run.dir, key) is not None:
        return
    base = results_io.read_cache(evaluated_in[key], key)
    if base is not None:
        run.dir.mkdir(parents=True, exist_ok=True)
        results_io.write_cache(run.dir, key, base)
        log(f"[base] the evaluation of {evaluated_in[key].name}, same model, data and eval settings")


def grid_curves(points: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Per grid key, per method point (variant at one lr), the outcomes against the key's values: the curve a
    data-size study draws (accuracy and each forgetting signal against data.train_rows)."""
    curves: dict[str, Any] = {}
    for key in keys:
        per_point: dict[str, list[dict[str, Any]]] = {}
        for p in points:
            per_point.setdefault(p["point"], []).append(
                {
                    "value": p["grid"].get(key),
                    "steps": p["steps"],
                    **{
                        k: p[k]
                        for k in (
                            "accuracy",
                            "degradation",
                            "spread",
                            "accuracy_spread",
                            "topic_retention",
                            "fact_recall",
                        )
                    },
                }
            )
        curves[key] = {name: sorted(rows, key=lambda r: r["value"]) for name, rows in per_point.items()}
    return curves
