"""The SCAR router (sparse cross-attention, after GEM/SCAR): the query is the base model's own mean hidden
state of the prompt at one layer (`queries`); one learned key per expert and one for the null class,
initialized at the class centroids and trained with class-weighted cross-entropy; probabilities
softmax(cos(query, key) / temperature). A new expert joins with its key at its prompts' centroid.

Files in a library: router.json (kind, experts, layer, temperature, tau, top_k) and router.safetensors
(keys, and the mean and std that normalize a query).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from edgeadapt.core.config import RouterConfig
from edgeadapt.core.errors import UserError
from edgeadapt.routing.queries import prompt_queries
from edgeadapt.routing.registry import RouterCapabilities, RouterTraining, register_router
from edgeadapt.routing.router import (
    NULL,
    Request,
    ThresholdRouter,
    calibrate,
    class_weights,
    read_spec,
    write_spec,
)

TENSORS = "router.safetensors"


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
        rule: str = "null_competes",
    ):
        super().__init__(experts, tau, top_k, rule)
        self.keys, self.mean, self.std = keys, mean, std  # keys: (experts + null, hidden)
        self.layer, self.temperature = layer, temperature
        self.model = self.tokenizer = self.query_fn = None

    def bind(self, model: nn.Module, tokenizer) -> ScarRouter:
        """The model whose hidden states make the queries (its base weights; adapters are switched off)."""
        self.model, self.tokenizer = model, tokenizer
        return self

    def bind_queries(self, queries) -> ScarRouter:
        self.query_fn = queries
        return self

    def queries(self, requests: list[Request]) -> torch.Tensor:
        if self.query_fn is not None:
            return self.query_fn([r.ids for r in requests], self.layer)
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

    def join(self, name: str, requests: list[Request], training: RouterTraining) -> None:
        """A new expert joins from its prompts (their queries at this router's layer)."""
        self.add_expert(name, training.queries(requests, self.layer))

    def key_of(self, name: str) -> torch.Tensor:
        """An expert's key, as an expert package carries it to a library that already holds this router."""
        return self.keys[self.experts.index(name)]

    def add_key(self, name: str, key: torch.Tensor) -> None:
        """A new expert with a given key (before the null key, which stays last); the other keys stay."""
        if name in self.experts:
            raise UserError(f"The router already has an expert named '{name}'.")
        if key.shape != self.keys.shape[1:] or not bool(torch.isfinite(key).all()):
            raise UserError(f"expert '{name}': its router key does not fit this router (shape or values)")
        self.keys = torch.cat([self.keys[:-1], key.reshape(1, -1), self.keys[-1:]])
        self.experts.append(name)

    def identity(self) -> str:
        """Kind, layer, temperature and the query normalization (mean, std): keys made under another
        normalization mean nothing to this router."""
        import hashlib

        digest = hashlib.sha256(super().identity().encode())
        for tensor in (self.mean, self.std):
            digest.update(tensor.float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:32]

    def spec(self) -> dict:
        return {**super().spec(), "layer": self.layer, "temperature": self.temperature}

    def problems(self) -> list[str]:
        out = super().problems()
        finite = lambda t: bool(torch.isfinite(t).all())  # noqa: E731
        if not (
            isinstance(self.temperature, float | int)
            and math.isfinite(self.temperature)
            and self.temperature > 0
        ):
            out.append(f"temperature {self.temperature!r} is not a number > 0")
        if not isinstance(self.layer, int) or self.layer < 0:
            out.append(f"layer {self.layer!r} is not a layer number")
        if (
            self.keys.shape != (len(self.experts) + 1, self.mean.shape[0])
            or self.std.shape != self.mean.shape
        ):
            out.append("keys, mean and std do not have the shapes the experts and the hidden size make")
        elif not (finite(self.keys) and finite(self.mean) and finite(self.std)):
            out.append("keys, mean or std hold values that are not finite")
        elif not bool((self.std > 0).all()) or not bool((self.keys.norm(dim=-1) > 0).all()):
            out.append("a zero std or a zero key (the cosine is undefined)")
        return out

    def save(self, folder: Path) -> list[str]:
        from safetensors.torch import save_file

        write_spec(folder, self.spec())
        save_file(
            {"keys": self.keys.contiguous(), "mean": self.mean.contiguous(), "std": self.std.contiguous()},
            str(folder / TENSORS),
        )
        return list(SCAR.files)

    @classmethod
    def load(cls, folder: Path) -> ScarRouter:
        from safetensors.torch import load_file

        spec = read_spec(folder, cls.kind)
        try:
            tensors = load_file(str(Path(folder) / TENSORS))
            router = cls(
                list(spec["experts"]),
                tensors["keys"].float(),
                tensors["mean"].float(),
                tensors["std"].float(),
                int(spec["layer"]),
                float(spec["temperature"]),
                float(spec["tau"]),
                int(spec["top_k"]),
                spec["rule"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{folder}: no readable router ({exc})") from None
        if router.keys.shape != (len(router.experts) + 1, router.mean.shape[0]):
            raise UserError(f"{folder}: router.json and {TENSORS} do not agree")
        return router


def fit(training: RouterTraining, cfg: RouterConfig, seed: int, layer: int) -> ScarRouter:
    """A SCAR router on the training requests' queries at `layer`, calibrated, bound to the base model."""
    router = ScarRouter.fit(
        training.experts,
        training.queries(training.train, layer),
        training.labels,
        layer,
        cfg.temperature,
        cfg.steps,
        cfg.lr,
        cfg.top_k,
        seed,
    )
    router.rule = cfg.rule
    calibration = router.probabilities_of(training.queries(training.calibration, layer))
    router.tau = calibrate(calibration, cfg.max_general_rate, cfg.min_threshold, cfg.rule)
    return router.bind(training.model, training.tokenizer)


SCAR = register_router(
    name="scar",
    description="the base model's mean hidden state at router.layer against a learned key per expert and null",
    fit=fit,
    load=ScarRouter.load,
    files=("router.json", TENSORS),
    capabilities=RouterCapabilities(reads_model=True, ships=True, joins=True),
)
