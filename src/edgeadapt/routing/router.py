"""Routers: per request, which experts of an adapter library to apply (at most `top_k`, mixed by weight),
or none (the null expert: the base model, untouched).

Every router gives probabilities over the experts and the null class; `decide` keeps the `top_k` experts
whose probability reaches the threshold `tau`, weighted by their renormalized probabilities. `tau` is
calibrated on general prompts the router did not train on, for a stated maximum rate of general requests
sent to an adapter (`calibrate`).

- `ScarRouter` (sparse cross-attention, after GEM/SCAR): the query is the base model's own mean hidden
  state of the prompt at one layer (`queries`); one learned key per expert and one for the null class,
  initialized at the class centroids; probabilities softmax(cos(query, key) / temperature).
- `ClassifierRouter` (baseline): all-MiniLM-L6-v2 sentence embedding + multinomial logistic regression.
- `OracleRouter` (baseline): the request's true domain, looked up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgeadapt.core.errors import UserError
from edgeadapt.routing.queries import prompt_queries

NULL = "null"  # the class of requests that stay on the base model
ROUTER_FILES = ("router.json", "router.safetensors")


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


def decide(probs: torch.Tensor, experts: list[str], tau: float, top_k: int) -> list[Route]:
    """Routes from probabilities over `experts` + null (the last column)."""
    routes = []
    for row in probs.tolist():
        scores = dict(zip([*experts, NULL], row))
        ranked = sorted(range(len(experts)), key=lambda i: -row[i])[:top_k]
        kept = [i for i in ranked if row[i] >= tau]
        total = sum(row[i] for i in kept)
        routes.append(
            Route(tuple(experts[i] for i in kept), tuple(row[i] / total for i in kept), scores)
            if kept
            else Route((), (), scores)
        )
    return routes


def calibrate(general_probs: torch.Tensor, max_rate: float, floor: float) -> float:
    """The threshold that sends at most `max_rate` of these general prompts to an adapter (never below `floor`)."""
    best_expert = general_probs[:, :-1].max(dim=1).values.sort(descending=True).values
    allowed = int(max_rate * len(best_expert))
    tau = float(best_expert[allowed]) + 1e-6 if allowed < len(best_expert) else 0.0
    return max(tau, floor)


def class_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=classes).float()
    return torch.where(counts > 0, counts.sum() / (classes * counts.clamp(min=1)), torch.zeros_like(counts))


class ThresholdRouter:
    """What every router shares: its experts, threshold and top-k, and routing from probabilities."""

    kind = "threshold"

    def __init__(self, experts: list[str], tau: float = 0.5, top_k: int = 1):
        self.experts, self.tau, self.top_k = list(experts), tau, top_k

    def probabilities(self, requests: list[Request]) -> torch.Tensor:
        raise NotImplementedError

    def route(self, requests: list[Request]) -> list[Route]:
        return decide(self.probabilities(requests), self.experts, self.tau, self.top_k)


class ScarRouter(ThresholdRouter):
    """Sparse cross-attention over expert keys from the base model's hidden states."""

    kind = "scar"

    def __init__(
        self,
        experts: list[str],
        keys: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        layer: int,
        temperature: float,
        tau: float = 0.5,
        top_k: int = 2,
    ):
        super().__init__(experts, tau, top_k)
        self.keys, self.mean, self.std = keys, mean, std  # keys: (experts + null, hidden)
        self.layer, self.temperature = layer, temperature
        self.model = self.tokenizer = None

    def bind(self, model: nn.Module, tokenizer) -> ScarRouter:
        """The model whose hidden states make the queries (its base weights; adapters are switched off)."""
        self.model, self.tokenizer = model, tokenizer
        return self

    def queries(self, requests: list[Request]) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError("bind the router to its base model first")
        return prompt_queries(self.model, self.tokenizer, [r.ids for r in requests], self.layer)

    def probabilities_of(self, queries: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self._logits(queries, self.keys), dim=-1)

    def probabilities(self, requests: list[Request]) -> torch.Tensor:
        return self.probabilities_of(self.queries(requests))

    def _normalized(self, queries: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize((queries - self.mean) / self.std, dim=-1)

    def _logits(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return self._normalized(queries) @ nn.functional.normalize(keys, dim=-1).T / self.temperature

    @classmethod
    def fit(
        cls,
        experts: list[str],
        queries: torch.Tensor,
        labels: torch.Tensor,
        layer: int,
        temperature: float,
        steps: int,
        lr: float,
        top_k: int,
        seed: int = 0,
    ) -> ScarRouter:
        """Keys initialized at each class's centroid (labels: expert index, len(experts) for null), then trained
        with class-weighted cross-entropy; the temperature is fixed."""
        torch.manual_seed(seed)
        classes = len(experts) + 1
        missing = [([*experts, NULL])[c] for c in range(classes) if not (labels == c).any()]
        if missing:
            raise UserError(f"The router has no training prompts for {', '.join(missing)}.")
        mean, std = queries.mean(0), queries.std(0).clamp(min=1e-4)
        router = cls(
            experts, torch.zeros(classes, queries.shape[1]), mean, std, layer, temperature, top_k=top_k
        )
        normalized = router._normalized(queries)
        keys = torch.stack([normalized[labels == c].mean(0) for c in range(classes)])
        keys = nn.Parameter(keys.clone())
        optimizer = torch.optim.Adam([keys], lr=lr)
        loss_fn = nn.CrossEntropyLoss(weight=class_weights(labels, classes))
        for _ in range(steps):
            optimizer.zero_grad()
            loss = loss_fn(normalized @ nn.functional.normalize(keys, dim=-1).T / temperature, labels)
            loss.backward()
            optimizer.step()
        router.keys = keys.detach()
        return router

    def add_expert(self, name: str, queries: torch.Tensor) -> None:
        """A new expert joins with its key at the centroid of its prompts' queries; the other keys stay."""
        self.add_key(name, self._normalized(queries).mean(0))

    def add_key(self, name: str, key: torch.Tensor) -> None:
        """A new expert with a given key (before the null key, which stays last); the other keys stay."""
        if name in self.experts:
            raise UserError(f"The router already has an expert named '{name}'.")
        self.keys = torch.cat([self.keys[:-1], key.reshape(1, -1), self.keys[-1:]])
        self.experts.append(name)

    def save(self, folder: Path) -> list[str]:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"keys": self.keys.contiguous(), "mean": self.mean.contiguous(), "std": self.std.contiguous()},
            str(folder / "router.safetensors"),
        )
        spec = {
            "kind": self.kind,
            "experts": self.experts,
            "layer": self.layer,
            "temperature": self.temperature,
            "tau": self.tau,
            "top_k": self.top_k,
        }
        (folder / "router.json").write_text(json.dumps(spec, indent=1))
        return list(ROUTER_FILES)

    @classmethod
    def load(cls, folder: Path) -> ScarRouter:
        from safetensors.torch import load_file

        try:
            spec = json.loads((folder / "router.json").read_text())
            tensors = load_file(str(folder / "router.safetensors"))
            router = cls(
                list(spec["experts"]),
                tensors["keys"],
                tensors["mean"],
                tensors["std"],
                int(spec["layer"]),
                float(spec["temperature"]),
                float(spec["tau"]),
                int(spec["top_k"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{folder}: no readable router ({exc})") from None
        if spec.get("kind") != cls.kind or router.keys.shape != (
            len(router.experts) + 1,
            router.mean.shape[0],
        ):
            raise UserError(f"{folder}: router.json and router.safetensors do not agree")
        return router


class ClassifierRouter(ThresholdRouter):
    """Baseline: a sentence embedding of the prompt text and a multinomial logistic regression."""

    kind = "classifier"

    def __init__(self, experts: list[str], embedder, linear: nn.Linear, tau: float = 0.5, top_k: int = 2):
        super().__init__(experts, tau, top_k)
        self.embedder, self.linear = embedder, linear

    @torch.no_grad()
    def probabilities(self, requests: list[Request]) -> torch.Tensor:
        return torch.softmax(self.linear(self.embedder([r.text for r in requests])), dim=-1)

    @classmethod
    def fit(
        cls,
        experts,
        embedder,
        texts: list[str],
        labels: torch.Tensor,
        steps: int = 300,
        seed: int = 0,
        top_k: int = 2,
    ):
        torch.manual_seed(seed)
        features = embedder(texts)
        linear = nn.Linear(features.shape[1], len(experts) + 1)
        optimizer = torch.optim.Adam(linear.parameters(), lr=0.05, weight_decay=1e-4)
        loss_fn = nn.CrossEntropyLoss(weight=class_weights(labels, len(experts) + 1))
        for _ in range(steps):
            optimizer.zero_grad()
            loss_fn(linear(features), labels).backward()
            optimizer.step()
        return cls(experts, embedder, linear.eval(), top_k=top_k)


class OracleRouter(ThresholdRouter):
    """Baseline: every request goes to its true domain's expert (or stays on the base if it has none)."""

    kind = "oracle"

    def __init__(self, experts: list[str], truth: dict[tuple[int, ...], str]):
        super().__init__(experts, tau=0.5, top_k=1)
        self.truth = truth

    def probabilities(self, requests: list[Request]) -> torch.Tensor:
        probs = torch.zeros(len(requests), len(self.experts) + 1)
        for row, request in enumerate(requests):
            label = self.truth.get(tuple(request.ids), NULL)
            probs[row, self.experts.index(label) if label in self.experts else -1] = 1.0
        return probs
