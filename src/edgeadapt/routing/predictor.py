"""A routed model: the base with every expert of a library loaded as a separate PEFT adapter, and a router
that picks, per request, the experts to apply (mixed by weight) or none. Nothing is merged into the shared
base, so a request routed to no expert runs the base model's exact computation (adapters switched off).

It is a `Predictor` like any other, so the evaluation suite scores it as it scores a single model. Requests
are grouped by their route; each group runs with its experts active: one adapter as is, two with their
scalings multiplied by the routing weights (PEFT sums the outputs of active adapters).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

from torch import nn

from edgeadapt.inference.generation import greedy
from edgeadapt.inference.perplexity import row_nll
from edgeadapt.routing.queries import base_weights
from edgeadapt.routing.router import Request, Route, ThresholdRouter

ROUTING_PREFIX_TOKENS = 64  # a text row with no prompt is routed on its first tokens


@contextlib.contextmanager
def experts_active(model: nn.Module, route: Route) -> Iterator[nn.Module]:
    """The model with the route's experts applied: the base for no expert, one adapter, or several with
    their scales multiplied by the routing weights (PEFT's `set_scale`; restored on exit)."""
    if not route.experts:
        with base_weights(model):
            yield model
        return
    from peft.tuners.lora import LoraLayer

    model.base_model.set_adapter(list(route.experts), inference_mode=True)  # frozen: it only answers
    weighted = len(route.experts) > 1
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)] if weighted else []
    for layer in layers:
        for name, weight in zip(route.experts, route.weights):
            layer.set_scale(name, weight)  # weight x alpha / r (a layer without this adapter ignores it)
    try:
        yield model
    finally:
        for layer in layers:
            for name in route.experts:
                layer.set_scale(name, 1.0)


def switch_seconds(model: nn.Module, route: Route, repeats: int = 20) -> float:
    """Median seconds to switch the model to a route and back (what changing experts costs per request)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with experts_active(model, route):
            pass
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


class RoutedPredictor:
    """A `Predictor` over a PeftModel holding every expert, routing each request."""

    def __init__(self, model: nn.Module, tokenizer, router: ThresholdRouter, name: str = "routed"):
        self.model, self.tokenizer, self.router, self.name = model.eval(), tokenizer, router, name
        self.log: list[tuple[list[int], Route]] = []
        """Every request routed so far and its route (for confusion matrices and --explain)."""

    def requests(self, prompts: list[list[int]]) -> list[Request]:
        return [Request(p, self.tokenizer.decode(p, skip_special_tokens=True)) for p in prompts]

    def routes(self, prompts: list[list[int]]) -> list[Route]:
        routes = self.router.route(self.requests(prompts))
        self.log += list(zip(prompts, routes))
        return routes

    def _groups(self, routes: list[Route]) -> dict[Route, list[int]]:
        groups: dict[Route, list[int]] = defaultdict(list)
        for index, route in enumerate(routes):
            groups[Route(route.experts, tuple(round(w, 3) for w in route.weights))].append(index)
        return groups

    def generate(self, prompts, max_new_tokens, batch_size, desc="generating"):
        answers = [""] * len(prompts)
        for route, index in self._groups(self.routes(prompts)).items():
            with experts_active(self.model, route) as model:
                out = greedy(
                    model,
                    self.tokenizer,
                    [prompts[i] for i in index],
                    max_new_tokens,
                    batch_size,
                    f"{desc} [{route.label}]",
                )
            for i, answer in zip(index, out):
                answers[i] = answer
        return answers

    def loglikelihood(self, rows, batch_size, desc="perplexity"):
        prompts = [routing_prompt(row) for row in rows]
        scores: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        for route, index in self._groups(self.routes(prompts)).items():
            with experts_active(self.model, route) as model:
                out = row_nll(
                    model, self.tokenizer, [rows[i] for i in index], batch_size, f"{desc} [{route.label}]"
                )
            for i, score in zip(index, out):
                scores[i] = score
        return scores


def routing_prompt(row: dict[str, list[int]]) -> list[int]:
    """What a router reads of an encoded row: its unscored prompt, or the first tokens of a text row."""
    labels, ids = row["labels"], row["input_ids"]
    first_scored = next((i for i, label in enumerate(labels) if label != -100), len(ids))
    return ids[:first_scored] if first_scored > 1 else ids[:ROUTING_PREFIX_TOKENS]
