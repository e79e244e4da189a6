"""Topic assignment of answers: each probe topic is represented by the mean embedding of its probe prompts,
the trained domain by the mean embedding of domain training rows (all-MiniLM-L6-v2, see
`edgeadapt.inference.embedder`). An answer is assigned to the topic whose centroid is nearest (cosine).
"""

from __future__ import annotations

import torch

from edgeadapt.inference.embedder import Embedder


class TopicSpace:
    """Topic centroids: one per probe topic plus one for the trained domain."""

    def __init__(
        self, embed: Embedder, topic_texts: dict[str, list[str]], domain: str, domain_texts: list[str]
    ):
        self.embed, self.domain = embed, domain
        self.names = list(topic_texts) + [domain]
        groups = list(topic_texts.values()) + [domain_texts]
        self.centroids = torch.nn.functional.normalize(
            torch.stack([embed(g).mean(0) for g in groups]), dim=-1
        )

    def assign(self, answers: list[str]) -> list[str]:
        # An empty answer has no topic; embed a placeholder so it lands nowhere in particular.
        vectors = self.embed([a if a.strip() else "(no answer)" for a in answers])
        return [self.names[i] for i in (vectors @ self.centroids.T).argmax(1).tolist()]
