"""`edgeadapt route eval CONFIG`: the adapter library and its router against every single-model method.

1. Routing: every router (SCAR for each of `router.seeds`, the text classifier, Arrow's own per-token
   choice, the oracle) on the held-out test prompts: accuracy and macro-F1 over the experts and null, the
   confusion matrix, the rate of general prompts sent to an adapter, per kind of hard case.
2. Systems: the routed model (per seed), the oracle, the base model and the single models made from the
   same data (`router.baselines`: merged adapters, the multi-task adapter, Arrow with and without
   GenKnowSub), each through the same evaluation suite: every domain's test set (accuracy, share of the
   oracle's, DSI, GG) and general ability (perplexity, topic retention, fact recall, leakage).
3. Cost and scale (`routing_cost`): router latency, switching, tokens/s against a merged adapter, memory
   with N and N x `router.scale_copies` experts, routing at that scale, and a new expert joining.

Writes OUT_DIR/NAME/routing.json; `edgeadapt.reports.routing` renders routing.md/.html.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch

from edgeadapt import __version__, models
from edgeadapt.core.config import RunConfig, to_dict
from edgeadapt.evaluation import routing_metrics as rm
from edgeadapt.evaluation.metrics import dsi, generalization_gap
from edgeadapt.evaluation.registry import versus_base
from edgeadapt.evaluation.sets import eval_sets, row_text
from edgeadapt.evaluation.suite import general_scores, scores_by_domain
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.embedder import Embedder
from edgeadapt.inference.predictor import ModelPredictor, Predictor
from edgeadapt.routing import baselines, get_router, router_key
from edgeadapt.routing.oracle import OracleRouter
from edgeadapt.routing.predictor import RoutedPredictor, routing_prompt
from edgeadapt.routing.router import ThresholdRouter, decide
from edgeadapt.runs import schema
from edgeadapt.runs.results import versions
from edgeadapt.studies import routing_systems as systems_of
from edgeadapt.studies.library import domain_runs, library_dir, train_router
from edgeadapt.studies.router_data import RouterData
from edgeadapt.studies.routing_cost import cost_and_scale
from edgeadapt.updates.library import Library

RESULTS = "routing.json"


def route_eval(cfg: RunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    started = time.perf_counter()
    systems_of.check(cfg)
    runs = domain_runs(cfg)
    first = next(iter(runs.values()))
    library = Library.read(library_dir(cfg))
    library.check_base(first.model_path)
    missing = [d for d in runs if d not in {e.domain for e in library.experts.values()}]
    if missing:
        raise_missing(missing)
    # the previous summary stays until the new one replaces it whole: a stopped study loses nothing
    peft = library.load(first.load_model(first.dtype))
    data = RouterData(cfg, runs, library, model=peft)
    log(
        f"route eval: {len(library.experts)} experts; queries of {len(data.tests()['domain'])} domain test prompts and more"
    )
    kinds = [cfg.router.kind, *systems_of.compared_kinds(cfg)]
    routers = {
        router_key(kind, seed): train_router(cfg, data, seed, log, kind=kind)
        for kind in kinds
        for seed in cfg.router.seeds
    }
    routing = {name: routing_report(router, data) for name, router in routers.items()}
    layers = layer_comparison(cfg, data, log)
    sets = {domain: eval_sets(run.data, run.tokenizer, run.cfg) for domain, run in runs.items()}
    general_sets = next(iter(sets.values()))
    topics = TopicSpace(
        Embedder(),
        topic_texts(first),
        {f"domain:{d}": [row_text(r) for r in run.data.train[:64]] for d, run in runs.items()},
    )
    experts = {library.experts[name].domain: name for name in library.experts}
    # The oracle knows each domain request, asked (its prompt) or scored (the prompt part of its row).
    truth = {tuple(p): experts[d] for d, s in sets.items() for p in s.domain_prompts}
    truth |= {tuple(routing_prompt(r)): experts[d] for d, s in sets.items() for r in s.domain_encoded}
    systems: dict[str, Any] = {}

    def evaluate(name: str, predictor: Predictor) -> None:
        log(f"[{name}] evaluating on {len(sets)} domains and general text")
        begin = time.perf_counter()
        systems[name] = system_metrics(predictor, sets, general_sets, topics, cfg)
        systems[name]["eval_seconds"] = round(time.perf_counter() - begin, 1)
        if isinstance(predictor, RoutedPredictor):
            systems[name]["routes"] = route_counts(predictor)

    base_plain = ModelPredictor(first.load_model(first.dtype), first.tokenizer)
    evaluate("base", base_plain)
    evaluate("oracle", RoutedPredictor(peft, first.tokenizer, OracleRouter(list(library.experts), truth)))
    # The library's own router as a system for every seed; a compared kind for its first seed only.
    evaluated = [router_key(cfg.router.kind, s) for s in cfg.router.seeds]
    evaluated += [router_key(kind, cfg.router.seeds[0]) for kind in kinds[1:]]
    for name in evaluated:
        evaluate(name, RoutedPredictor(peft, first.tokenizer, routers[name]))
    for name in cfg.router.baselines:
        predictor = systems_of.single_model(name, cfg, library, first, runs)
        if predictor is not None:
            if name in systems_of.PER_TOKEN_ROUTING:
                routing[name] = arrow_routing(predictor.model, data, list(library.experts))
            evaluate(name, predictor)
            del predictor
    add_relative(systems)
    results = {
        "schema_version": schema.SCHEMA_VERSION,
        "edgeadapt_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": first.device.type,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "model": models.model_info(first.model_path),
        "config": to_dict(cfg),
        "library": {"experts": {n: vars(e) for n, e in library.experts.items()}, "domains": list(runs)},
        "seeds": list(cfg.router.seeds),
        "routing": routing,
        "systems": systems,
        "summary": summarize(routing, systems, cfg.router.seeds, kinds),
        "layers": layers,
        **cost_and_scale(
            cfg,
            library,
            data,
            peft,
            routers[router_key(cfg.router.kind, cfg.router.seeds[0])],
            first,
            sets,
            log,
        ),
    }
    results["transfer"] = expert_transfer(peft, first.tokenizer, library, sets, general_sets, cfg, log)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return schema.write(cfg.run_dir() / RESULTS, results, schema.RoutingResults)


def raise_missing(missing: list[str]) -> None:
    from edgeadapt.core.errors import UserError

    raise UserError(
        f"The library has no expert for {', '.join(missing)}: run `edgeadapt library build CONFIG` first."
    )


def topic_texts(run) -> dict[str, list[str]]:
    topics: dict[str, list[str]] = {}
    for row in run.data.probes:
        topics.setdefault(row["topic"], []).append(row["prompt"])
    return topics


def layer_comparison(cfg: RunConfig, data: RouterData, log) -> dict[str, Any]:
    """A router (first seed) on each layer of router.compare_layers and router.layer: routing quality and
    latency per request, to choose the layer (for a router kind that reads the base model's layers)."""
    from edgeadapt.studies.routing_cost import TIMED_PROMPTS, router_latency

    if not get_router(cfg.router.kind).capabilities.reads_model:
        return {}
    tests = data.tests()
    timed = [p.request() for p in (tests["domain"][::3] + tests["general"])[:TIMED_PROMPTS]]
    out = {}
    for layer in sorted({*cfg.router.compare_layers, cfg.router.layer}):
        router = train_router(cfg, data, cfg.router.seeds[0], log, layer)
        report = routing_report(router, data)
        keys = ("accuracy", "macro_f1", "general_to_adapter_rate", "unknown_to_base_rate", "tau")
        out[str(layer)] = {k: report[k] for k in keys}
        out[str(layer)]["by_kind"] = {k: v["accuracy"] for k, v in report["by_kind"].items()}
        out[str(layer)]["latency"] = router_latency(router, timed)
    return out


def routing_report(router: ThresholdRouter, data: RouterData) -> dict[str, Any]:
    """Routing quality of one router on every kind of test prompt, with router latency per request."""
    tests = data.tests()
    prompts = [p for kind in tests.values() for p in kind]
    probs = router.probabilities([p.request() for p in prompts])
    routes = [r.experts for r in decide(probs, router.experts, router.tau, router.top_k, router.rule)]
    return routes_report([p.label for p in prompts], routes, [p.kind for p in prompts], data.experts) | {
        "tau": router.tau,
        "to_adapter": base_prompts_to_adapter(prompts, routes, probs, [*router.experts, rm.NULL]),
    }


def base_prompts_to_adapter(prompts, routes, probs, classes: list[str]) -> list[dict[str, Any]]:
    """Every prompt that belongs on the base but reached an adapter, with the probabilities of the classes
    that mattered (the chosen experts' and null's): what to read when a general rate misses its goal."""
    return [
        {
            "kind": p.kind,
            "text": p.asked,
            "route": list(route),
            "p": {c: round(float(probs[i, classes.index(c)]), 3) for c in (*route, rm.NULL)},
        }
        for i, (p, route) in enumerate(zip(prompts, routes))
        if p.label == rm.NULL and route
    ]


def routes_report(
    labels: list[str], routes: list[tuple[str, ...]], kinds: list[str], experts: list[str]
) -> dict[str, Any]:
    classes = [*experts, rm.NULL]
    matrix = rm.confusion(labels, routes, classes)
    by_kind = {}
    for kind in dict.fromkeys(kinds):
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        by_kind[kind] = {
            "n": len(chosen),
            "accuracy": rm.accuracy([labels[i] for i in chosen], [routes[i] for i in chosen]),
        }
    general = [routes[i] for i, k in enumerate(kinds) if k == "general"]
    general_new = [routes[i] for i, k in enumerate(kinds) if k == "general_new"]
    unknown = [routes[i] for i, k in enumerate(kinds) if k == "unknown"]
    return {
        "accuracy": rm.accuracy(labels, routes),
        "macro_f1": rm.macro_f1(matrix),
        "general_to_adapter_rate": rm.to_adapter_rate(general),
        "unknown_to_base_rate": 1 - rm.to_adapter_rate(unknown) if unknown else None,
        "general_new_to_adapter_rate": rm.to_adapter_rate(general_new) if general_new else None,
        "by_kind": by_kind,
        "confusion": {"classes": classes, "matrix": matrix},
    }


def arrow_routing(model, data: RouterData, experts: list[str]) -> dict[str, Any]:
    """Arrow's prompt-level leaning (it has no null: every request reaches an adapter)."""
    prompts = [p for kind in data.tests().values() for p in kind]
    chosen = baselines.arrow_choices(model, data.tokenizer, [p.ids for p in prompts], experts)
    return routes_report(
        [p.label for p in prompts], [(c,) for c in chosen], [p.kind for p in prompts], experts
    )


def system_metrics(
    predictor: Predictor, sets: dict, general_sets, topics: TopicSpace, cfg: RunConfig
) -> dict[str, Any]:
    metrics = general_scores(predictor, general_sets, cfg.eval, topics)
    metrics["domains"] = scores_by_domain(predictor, sets, cfg.eval)
    metrics["mean_accuracy"] = statistics.fmean(d["domain_accuracy"] for d in metrics["domains"].values())
    return metrics


def route_counts(predictor: RoutedPredictor) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, route in predictor.log:
        counts[route.label] = counts.get(route.label, 0) + 1
    return counts


def add_relative(systems: dict[str, Any]) -> None:
    """Against the base model and the oracle: general degradation, retention, share of the oracle's
    accuracy per domain, DSI and GG (S = 1/PPL)."""
    base, oracle = systems["base"], systems["oracle"]
    for m in systems.values():
        m.update(versus_base(m, base))
        s_g, s_g0 = 1 / m["general_ppl"], 1 / base["general_ppl"]
        m["gg"] = generalization_gap(s_g, s_g0)
        for domain, d in m["domains"].items():
            reference = oracle["domains"][domain]["domain_accuracy"]
            d["share_of_oracle"] = d["domain_accuracy"] / reference if reference else None
            d["dsi"] = dsi(1 / d["domain_ppl"], 1 / base["domains"][domain]["domain_ppl"], s_g, s_g0)
        shares = [d["share_of_oracle"] for d in m["domains"].values() if d["share_of_oracle"] is not None]
        m["mean_share_of_oracle"] = statistics.fmean(shares) if shares else None
        m["min_share_of_oracle"] = min(shares) if shares else None


def spread(values: list[float | None]) -> dict[str, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


ROUTING_KEYS = (
    "accuracy",
    "macro_f1",
    "general_to_adapter_rate",
    "unknown_to_base_rate",
    "general_new_to_adapter_rate",
)
SYSTEM_KEYS = (
    "mean_accuracy",
    "mean_share_of_oracle",
    "min_share_of_oracle",
    "general_degradation_pct",
    "topic_retention",
    "fact_recall",
    "domain_leakage",
)


def summarize(routing: dict, systems: dict, seeds: list[int], kinds: list[str]) -> dict[str, Any]:
    """Mean and spread across seeds of each router kind's figures, and of the library's own routed systems
    (`kinds[0]`, evaluated for every seed)."""
    out: dict[str, Any] = {"routing": {}, "systems": {}}
    for kind in kinds:
        runs = [routing[router_key(kind, s)] for s in seeds if router_key(kind, s) in routing]
        if runs:  # the figures these routers have (a study from before a figure existed lacks it)
            out["routing"][kind] = {k: spread([r[k] for r in runs]) for k in ROUTING_KEYS if k in runs[0]}
    own = [systems[router_key(kinds[0], s)] for s in seeds if router_key(kinds[0], s) in systems]
    if own:
        out["systems"][kinds[0]] = {k: spread([m.get(k) for m in own]) for k in SYSTEM_KEYS}
    return out


def expert_transfer(
    peft, tokenizer, library: Library, sets: dict, general_sets, cfg: RunConfig, log
) -> dict[str, Any]:
    """Each expert alone on every domain's test responses (perplexity): the CDTR matrix of the library."""
    from edgeadapt.evaluation.metrics import cdtr
    from edgeadapt.inference.predictor import perplexity
    from edgeadapt.routing.predictor import experts_active
    from edgeadapt.routing.router import Route

    log("[experts] perplexity of every expert on every domain (transfer)")
    ppl = {}
    for name, expert in library.experts.items():
        with experts_active(peft, Route((name,), (1.0,))) as model:
            alone = ModelPredictor(model, tokenizer)
            ppl[expert.domain] = {
                d: perplexity(alone, s.domain_encoded, cfg.eval.batch_size) for d, s in sets.items()
            }
    with experts_active(peft, Route(())) as model:
        base = ModelPredictor(model, tokenizer)
        base_ppl = {d: perplexity(base, s.domain_encoded, cfg.eval.batch_size) for d, s in sets.items()}
    domains = list(sets)
    return {
        "domain_ppl": ppl,
        "base_domain_ppl": base_ppl,
        "cdtr": {
            i: {j: cdtr(1 / ppl[i][j], 1 / base_ppl[j], 1 / ppl[j][j]) for j in domains if j != i}
            for i in domains
            if i in ppl
        },
    }
