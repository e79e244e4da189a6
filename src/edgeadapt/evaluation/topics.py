"""Topic assignment of answers: each probe topic is represented by the mean embedding of its probe prompts,
the trained domain by the mean embedding of domain training rows (all-MiniLM-L6-v2, see
`edgeadapt.inference.embedder`). An answer is assigned to the topic whose centroid is nearest (cosine).
"""

from __future__ import annotations

import torch

from edgeadapt.inference.embedder import Embedder


class TopicSpace:
    """Topic centroids: one per probe topic plus one per trained domain (a run has one, a library several);
    an answer nearest a domain has leaked."""

    def __init__(self, embed: Embedder, topic_texts: dict[str, list[str]], domains: dict[str, list[str]]):
        self.embed, self.domains = embed, set(domains)
        self.names = list(topic_texts) + list(domains)
        groups = list(topic_texts.values()) + list(domains.values())
        self.centroids = torch.nn.functional.normalize(
            torch.stack([embed(g).mean(0) for g in groups]), dim=-1
        )

    def assign(self, answers: list[str]) -> list[str]:
        # An empty answer has no topic; embed a placeholder so it lands nowhere in particular.
        vectors = self.embed([a if a.strip() else "(no answer)" for a in answers])
        return [self.names[i] for i in (vectors @ self.centroids.T).argmax(1).tolist()]
