"""`edgeadapt loragen make GENERATOR "description" --out DIR`: a trained generator of any registered kind
(its folder's generator.json says which), its reader, and what it needs to judge a new description (the
training descriptions' fingerprints)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeadapt.loragen.encoders import DescriptionEncoder
from edgeadapt.loragen.generated import adapter_tensors, write_adapter
from edgeadapt.loragen.registry import WEIGHTS, generator_kind_of

DESCRIPTIONS = "descriptions.safetensors"


def nearest_other_task(embeddings: torch.Tensor, task_of: list[int]) -> float:
    """The lowest, over training descriptions, of the similarity to the nearest description of another task."""
    sims = embeddings @ embeddings.T
    same = torch.tensor(task_of)[:, None] == torch.tensor(task_of)[None, :]
    sims[same] = -2.0
    return float(sims.max(dim=1).values.min())


@dataclass
class Generator:
    folder: Path
    net: Any
    """The generator module (its kind's class: `hypernet.HyperLoRA`, `pool.PoolLoRA`)."""
    training_embeddings: torch.Tensor | None

    @classmethod
    def open(cls, folder: Path, base_dir: str = "", encoder: DescriptionEncoder | None = None) -> Generator:
        from safetensors.torch import load_file

        net = generator_kind_of(folder).load(Path(folder), base_dir, encoder)
        known = (
            load_file(str(Path(folder) / DESCRIPTIONS))["embeddings"]
            if (Path(folder) / DESCRIPTIONS).is_file()
            else None
        )
        return cls(Path(folder), net, known)

    @property
    def cfg(self) -> Any:
        return self.net.cfg

    def familiarity(self, embedding: torch.Tensor) -> dict[str, Any]:
        """How close a description is to the ones the generator trained on."""
        if self.training_embeddings is None or not len(self.training_embeddings):
            return {"nearest": None, "similarity": None, "familiar": True}
        sims = self.training_embeddings @ embedding.reshape(-1)
        index = int(sims.argmax())
        similarity = float(sims[index])
        return {
            "nearest": self.cfg.training_descriptions[index],
            "similarity": round(similarity, 4),
            "familiar": similarity >= self.cfg.familiar_similarity,
        }

    def generate(self, description: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
        """(PEFT tensors, the description's fingerprint, seconds): reading the description and the
        generator's forward pass timed together, as a server would run them."""
        text = self.net.check(description)
        start = time.perf_counter()
        read = self.net.read([text])
        tensors = adapter_tensors(self.net, read)
        seconds = time.perf_counter() - start
        return tensors, self.net.fingerprint(read)[0], seconds

    def read_seconds(self, description: str) -> float:
        """Seconds the reader (or encoder) alone takes on a description: its share of `generate`."""
        start = time.perf_counter()
        self.net.read([description])
        return time.perf_counter() - start

    def make(self, description: str, out: Path, log=print) -> dict[str, Any]:
        tensors, embedding, seconds = self.generate(description)
        near = self.familiarity(embedding)
        if not near["familiar"]:
            log(
                f"warning: this description is unlike every one the generator was trained on (nearest, at "
                f"similarity {near['similarity']:.2f} < {self.cfg.familiar_similarity:.2f}: "
                f'"{near["nearest"][:80]}"); expect an adapter that does little for it.'
            )
        info = {
            "made_by": "loragen",
            "description": description.strip(),
            "encoder": self.cfg.encoder,
            "generator_sha256": hashlib.sha256((self.folder / WEIGHTS).read_bytes()).hexdigest(),
            "generation_ms": round(seconds * 1000, 2),
            "familiarity": near,
        }
        write_adapter(self.net, tensors, Path(out), info)
        return info
