"""What routing costs and how it scales (part of `edgeadapt route eval`).

- `cost`: router latency per request at batch 1 (p50/p95) and as a share of a 32-token answer; the time to
  switch experts; generation tokens/s of a routed request (adapter applied, not merged) against the same
  expert merged into the base; memory of the weights with every expert loaded;
- `scale`: the library repeated `router.scale_copies` times (6 experts -> 24): memory with all of them
  loaded, a router over every copy (a domain's prompts split among its copies), its routing accuracy, and
  the domain accuracy of the system it routes (a copy answers as its original);
- `new_expert`: a router trained without the last expert, which then joins with its key at its prompts'
  centroid while the other keys stay: routing accuracy of the new domain and of the others.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from edgeadapt.core.config import RunConfig
from edgeadapt.evaluation.routing_metrics import accuracy
from edgeadapt.evaluation.suite import scores_by_domain
from edgeadapt.inference.timing import answer_seconds, decode_times
from edgeadapt.models.quantize import weight_bytes
from edgeadapt.routing import get_router
from edgeadapt.routing.predictor import RoutedPredictor, experts_active, switch_seconds
from edgeadapt.routing.router import Request, Route, ThresholdRouter, decide
from edgeadapt.studies.router_data import RouterData
from edgeadapt.updates.library import Library

NEW_TOKENS = 32
TIMED_PROMPTS = 40


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def router_latency(router: ThresholdRouter, requests: list[Request]) -> dict[str, float]:
    router.route(requests[:2])  # warm-up
    times = []
    for request in requests:
        start = time.perf_counter()
        router.route([request])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95), "n": len(times)}


def tokens_per_second(model, prompts: list[list[int]]) -> float:
    decode_times(model, prompts[0], 4)  # warm-up
    seconds = [sum(decode_times(model, p, NEW_TOKENS)) for p in prompts]
    return NEW_TOKENS / statistics.median(seconds)


def cost(library: Library, data: RouterData, peft, router: ThresholdRouter, first) -> dict[str, Any]:
    tests = data.tests()
    requests = [p.request() for p in (tests["domain"][::3] + tests["general"])[:TIMED_PROMPTS]]
    expert = next(iter(library.experts))
    prompts = [p.ids for p in tests["domain"][:4]]
    with experts_active(peft, Route(())) as base:
        base_answer = (
            statistics.median(answer_seconds(base, p, NEW_TOKENS)["total_s"] for p in prompts) * 1000
        )
    with experts_active(peft, Route((expert,), (1.0,))) as routed:
        routed_tps = tokens_per_second(routed, prompts)
    merged = library.load(first.load_model(first.dtype), [expert]).merge_and_unload().eval()
    merged_tps = tokens_per_second(merged, prompts)
    del merged
    latency = router_latency(router, requests)
    two = tuple(list(library.experts)[:2])
    return {
        "router_latency": latency,
        "answer_ms": base_answer,
        "router_share_of_answer": latency["p50_ms"] / base_answer,
        "router_p95_share_of_answer": latency["p95_ms"] / base_answer,
        "switch_ms": {
            "one": switch_seconds(peft, Route((expert,), (1.0,))) * 1000,
            "two": switch_seconds(peft, Route(two, (0.5, 0.5))) * 1000,
        },
        "tokens_per_s": {
            "routed": routed_tps,
            "merged": merged_tps,
            "ratio": routed_tps / merged_tps,
            "expert": expert,
        },
        "weight_bytes": {
            "base": weight_bytes(first.load_model(first.dtype)),
            "with_experts": weight_bytes(peft),
            "experts": len(library.experts),
        },
    }


class CopiesRouter(ThresholdRouter):
    """A router over copies of the experts, whose routes name the original experts (a copy answers as it)."""

    def __init__(self, inner: ThresholdRouter, original: dict[str, str]):
        super().__init__(sorted(set(original.values())), inner.tau, inner.top_k, inner.rule)
        self.inner, self.original = inner, original

    def route(self, requests: list[Request]) -> list[Route]:
        routes = []
        for route in self.inner.route(requests):
            weights: dict[str, float] = {}
            for expert, weight in zip(route.experts, route.weights):  # two copies of one expert add up
                weights[self.original[expert]] = weights.get(self.original[expert], 0.0) + weight
            routes.append(Route(tuple(weights), tuple(weights.values()), route.scores))
        return routes


def copies_router(
    cfg: RunConfig, data: RouterData, copies: int, seed: int
) -> tuple[ThresholdRouter, dict[str, str]]:
    """A router of the library's kind over `copies` copies of every expert; each domain's prompts are split
    among its copies."""
    names = {f"{e}-copy{k}": e for e in data.experts for k in range(copies)}

    def relabel(train) -> torch.Tensor:
        seen: dict[str, int] = {}
        labels = []
        for p in train:
            if p.label in data.experts:
                k = seen.get(p.label, 0)
                seen[p.label] = k + 1
                labels.append(list(names).index(f"{p.label}-copy{k % copies}"))
            else:
                labels.append(len(names))
        return torch.tensor(labels)

    training = data.training(seed, relabel)
    training.experts = list(names)
    router = get_router(cfg.router.kind).fit(training, cfg.router, seed, cfg.router.layer)
    return router, names


def scale(cfg: RunConfig, library: Library, data: RouterData, peft, sets: dict, first, log) -> dict[str, Any]:
    copies, seed = cfg.router.scale_copies, cfg.router.seeds[0]
    log(f"[scale] {len(library.experts) * copies} experts: memory, routing and domain accuracy")
    big = library.load(first.load_model(first.dtype), list(library.experts))
    for name in library.experts:
        for k in range(1, copies):
            big.load_adapter(str(library.expert_dir(name)), adapter_name=f"{name}-copy{k}")
    memory = weight_bytes(big)
    del big
    router, original = copies_router(cfg, data, copies, seed)
    tests = data.tests()["domain"]
    routes = decide(
        router.probabilities([p.request() for p in tests]), router.experts, router.tau, router.top_k
    )
    mapped = [tuple(dict.fromkeys(original[e] for e in r.experts)) for r in routes]
    predictor = RoutedPredictor(peft, first.tokenizer, CopiesRouter(router, original))
    domains = scores_by_domain(predictor, sets, cfg.eval)
    return {
        "experts": len(library.experts) * copies,
        "weight_bytes": memory,
        "routing_accuracy_domain": accuracy([p.label for p in tests], mapped),
        "domains": domains,
        "mean_accuracy": statistics.fmean(d["domain_accuracy"] for d in domains.values()),
    }


def new_expert(cfg: RunConfig, data: RouterData, seed: int) -> dict[str, Any] | None:
    """Train on all experts but the last, let the last join with its key while the others stay, and route
    the test prompts (for a router kind that takes new experts; None for one that does not)."""
    kind = get_router(cfg.router.kind)
    if not kind.capabilities.joins:
        return None
    *old, new = data.experts

    def without_new(train) -> torch.Tensor:
        labels = data.labels(train)
        return labels.where(labels < len(old), labels.new_tensor(len(old)))  # null keeps the last index

    training = data.training(seed, without_new)
    kept = [i for i, p in enumerate(data.split("train", seed)) if p.label != new]
    training.train = [training.train[i] for i in kept]
    training.labels, training.experts = training.labels[kept], list(old)
    router = kind.fit(training, cfg.router, seed, cfg.router.layer)
    joining = [p.request() for p in data.split("train", seed) if p.label == new]
    router.join(new, joining, training)
    tests = data.tests()["domain"]
    routes = [r.experts for r in router.route([p.request() for p in tests])]
    on_new = [i for i, p in enumerate(tests) if p.label == new]
    on_old = [i for i, p in enumerate(tests) if p.label != new]
    return {
        "expert": new,
        "accuracy_new": accuracy([tests[i].label for i in on_new], [routes[i] for i in on_new]),
        "accuracy_others": accuracy([tests[i].label for i in on_old], [routes[i] for i in on_old]),
        "retrained_keys": 0,
    }


def cost_and_scale(
    cfg: RunConfig, library: Library, data: RouterData, peft, router: ThresholdRouter, first, sets: dict, log
) -> dict[str, Any]:
    log("[cost] router latency, switching, tokens/s, memory")
    return {
        "cost": cost(library, data, peft, router, first),
        "scale": scale(cfg, library, data, peft, sets, first, log),
        "new_expert": new_expert(cfg, data, cfg.router.seeds[0]),
    }
