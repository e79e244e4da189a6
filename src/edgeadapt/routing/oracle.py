"""The oracle (the routing study's reference, not a router a library ships): every request goes to its
true domain's expert, looked up, or stays on the base when it has none."""

from __future__ import annotations

import torch

from edgeadapt.routing.router import NULL, Request, ThresholdRouter


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
