"""What every router shares: per request, which experts of an adapter library to apply (at most `top_k`,
mixed by weight), or none (the null expert: the base model, untouched).

Every router gives probabilities over the experts and the null class; `decide` keeps the `top_k` experts
whose probability reaches the threshold `tau`, weighted by their renormalized probabilities. `tau` is
calibrated on general prompts the router did not train on, for a stated maximum rate of general requests
sent to an adapter (`calibrate`).

The router kinds live in their own modules and register themselves (`routing.registry`): `scar` (the base
model's hidden states against learned keys), `classifier` (a sentence embedding and a logistic regression);
`OracleRouter` (`routing.oracle`) is the study's reference, not a kind a library ships.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeadapt.core.errors import UserError
from edgeadapt.routing.registry import ROUTER_SPEC

NULL = "null"  # the class of requests that stay on the base model
EXPERT_NAME_LIMIT = 64


@dataclass(frozen=True)
class Route:
    experts: tuple[str, ...]
    """The experts applied, by weight; empty: the base model."""
    weights: tuple[float, ...] = ()
    scores: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    """The router's probability of every expert and of `null`, for --explain."""

    @property
    def label(self) -> str:
        return "+".join(self.experts) if self.experts else NULL


@dataclass
class Request:
    ids: list[int]
    """The prompt's token ids, as the model reads it."""
    text: str
    """The prompt as text, for routers that read text."""


RULES = ("null_competes", "threshold")
"""How a route follows from the probabilities. `null_competes` (the default): the base answers whenever the
null class is the most probable of all, and otherwise the top_k experts whose probability reaches tau.
`threshold` (routers trained before the rule existed): tau alone decides, so an expert ranked below null
but over tau still took the request."""


def decide(
    probs: torch.Tensor, experts: list[str], tau: float, top_k: int, rule: str = "null_competes"
) -> list[Route]:
    """Routes from probabilities over `experts` + null (the last column), by `rule`."""
    routes = []
    for row in probs.tolist():
        scores = dict(zip([*experts, NULL], row))
        ranked = sorted(range(len(experts)), key=lambda i: -row[i])[:top_k]
        null_wins = rule == "null_competes" and row[-1] >= max(row[:-1], default=0.0)
        kept = [] if null_wins else [i for i in ranked if row[i] >= tau]
        total = sum(row[i] for i in kept)
        routes.append(
            Route(tuple(experts[i] for i in kept), tuple(row[i] / total for i in kept), scores)
            if kept
            else Route((), (), scores)
        )
    return routes


def calibrate(
    general_probs: torch.Tensor, max_rate: float, floor: float, rule: str = "null_competes"
) -> float:
    """The threshold that sends at most `max_rate` of these general prompts to an adapter (never below
    `floor`), under `rule`: a prompt whose null class wins goes to the base whatever tau is."""
    best_expert = general_probs[:, :-1].max(dim=1).values
    if rule == "null_competes":  # those already on the base cannot reach an adapter at any tau
        best_expert = torch.where(
            general_probs[:, -1] >= best_expert, torch.zeros_like(best_expert), best_expert
        )
    best_expert = best_expert.sort(descending=True).values
    allowed = int(max_rate * len(best_expert))
    tau = float(best_expert[allowed]) + 1e-6 if allowed < len(best_expert) else 0.0
    return max(tau, floor)


def class_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=classes).float()
    return torch.where(counts > 0, counts.sum() / (classes * counts.clamp(min=1)), torch.zeros_like(counts))


class ThresholdRouter:
    """What every router shares: its experts, threshold and top-k, and routing from probabilities."""

    kind = "threshold"

    def __init__(self, experts: list[str], tau: float = 0.5, top_k: int = 1, rule: str = "null_competes"):
        self.experts, self.tau, self.top_k, self.rule = list(experts), tau, top_k, rule

    def probabilities(self, requests: list[Request]) -> torch.Tensor:
        raise NotImplementedError

    def route(self, requests: list[Request]) -> list[Route]:
        return decide(self.probabilities(requests), self.experts, self.tau, self.top_k, self.rule)

    def bind(self, model, tokenizer) -> ThresholdRouter:
        """The base model a router reads (its own hidden states); nothing for a router that reads text."""
        return self

    def bind_queries(self, queries) -> ThresholdRouter:
        """Where a router that reads the base's hidden states gets them without the model (a llama.cpp
        device: `queries(prompt ids, layer) -> tensor`); nothing for a router that reads text."""
        return self

    def spec(self) -> dict[str, Any]:
        """router.json's fields every router writes; a kind adds its own."""
        return {
            "kind": self.kind,
            "experts": self.experts,
            "tau": self.tau,
            "top_k": self.top_k,
            "rule": self.rule,
        }

    def identity(self) -> str:
        """What makes this router's keys comparable with another's (its kind and settings, not its experts):
        an expert's key joins only a router of the same identity."""
        import hashlib

        settings = {
            k: v for k, v in self.spec().items() if k not in ("experts", "tau", "top_k", "keywords", "rule")
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]

    def problems(self) -> list[str]:
        """What is wrong with the router's parameters, for a device's health check: a router that would route
        nothing, or everything, or to experts it does not name once."""
        out = []
        if not isinstance(self.tau, float | int) or not math.isfinite(self.tau) or not 0 < self.tau < 1:
            out.append(f"threshold tau {self.tau!r} is not in (0, 1)")
        if self.top_k not in (1, 2):
            out.append(f"top_k {self.top_k!r} is not 1 or 2")
        if self.rule not in RULES:
            out.append(f"rule {self.rule!r} is not one of {', '.join(RULES)}")
        if not self.experts or len(set(self.experts)) != len(self.experts):
            out.append(f"experts {self.experts!r}: a non-empty list naming each expert once")
        if NULL in self.experts:
            out.append(f"an expert is named '{NULL}', the base route's name")
        return out


def read_spec(folder: Path, kind: str) -> dict[str, Any]:
    """A library's router.json for a router of `kind`, with its common fields checked for type."""
    path = Path(folder) / ROUTER_SPEC
    try:
        spec = json.loads(path.read_text())
        if not isinstance(spec, dict) or spec.get("kind") != kind:
            raise ValueError(f"not a '{kind}' router")
        experts, top_k, tau = spec["experts"], spec["top_k"], spec["tau"]
        if not isinstance(experts, list) or not all(
            isinstance(e, str) and 0 < len(e) <= EXPERT_NAME_LIMIT for e in experts
        ):
            raise TypeError("experts must be a list of names")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not isinstance(tau, float | int):
            raise TypeError("top_k must be an integer and tau a number")
        spec.setdefault("rule", "threshold")  # a router saved before the rule was explicit keeps its rule
        if spec["rule"] not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UserError(f"{path}: no readable router ({exc})") from None
    return spec


def write_spec(folder: Path, spec: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ROUTER_SPEC).write_text(json.dumps(spec, indent=1))
