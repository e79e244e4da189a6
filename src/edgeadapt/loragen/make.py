"""`edgeadapt loragen make GENERATOR "description" --out DIR`: a trained generator, its encoder, and what it
needs to judge a new description (the training descriptions' embeddings)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeadapt.core.errors import UserError
from edgeadapt.loragen.encoders import DescriptionEncoder, open_encoder
from edgeadapt.loragen.generated import adapter_tensors, write_adapter
from edgeadapt.loragen.hypernet import WEIGHTS, HyperLoRA

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
    hypernet: HyperLoRA
    encoder: DescriptionEncoder
    training_embeddings: torch.Tensor

    @classmethod
    def open(cls, folder: Path, base_dir: str = "", encoder: DescriptionEncoder | None = None) -> Generator:
        from safetensors.torch import load_file

        hypernet = HyperLoRA.load(folder)
        encoder = encoder or open_encoder(hypernet.cfg.encoder, base_dir)
        if encoder.dim != hypernet.cfg.encoder_dim:
            raise UserError(
                f"{folder}: the generator reads {hypernet.cfg.encoder_dim}-d embeddings, not {encoder.dim}."
            )
        known = (
            load_file(str(Path(folder) / DESCRIPTIONS))["embeddings"]
            if (Path(folder) / DESCRIPTIONS).is_file()
            else None
        )
        return cls(Path(folder), hypernet, encoder, known)

    def familiarity(self, embedding: torch.Tensor) -> dict[str, Any]:
        """How close a description is to the ones the generator trained on."""
        if self.training_embeddings is None or not len(self.training_embeddings):
            return {"nearest": None, "similarity": None, "familiar": True}
        sims = self.training_embeddings @ embedding.reshape(-1)
        index = int(sims.argmax())
        similarity = float(sims[index])
        return {
            "nearest": self.hypernet.cfg.training_descriptions[index],
            "similarity": round(similarity, 4),
            "familiar": similarity >= self.hypernet.cfg.familiar_similarity,
        }

    def generate(self, description: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
        """(PEFT tensors, the description's embedding, seconds): encoding and the hypernetwork's forward pass
        timed together, as a device would run them."""
        text = self.encoder.check(description)
        start = time.perf_counter()
        embedding = self.encoder([text])[0]
        tensors = adapter_tensors(self.hypernet, embedding)
        return tensors, embedding, time.perf_counter() - start

    def make(self, description: str, out: Path, log=print) -> dict[str, Any]:
        tensors, embedding, seconds = self.generate(description)
        near = self.familiarity(embedding)
        if not near["familiar"]:
            log(
                f"warning: this description is unlike every one the generator was trained on (nearest, at "
                f"similarity {near['similarity']:.2f} < {self.hypernet.cfg.familiar_similarity:.2f}: "
                f'"{near["nearest"][:80]}"); expect an adapter that does little for it.'
            )
        info = {
            "made_by": "loragen",
            "description": description.strip(),
            "encoder": self.hypernet.cfg.encoder,
            "generator_sha256": hashlib.sha256((self.folder / WEIGHTS).read_bytes()).hexdigest(),
            "generation_ms": round(seconds * 1000, 2),
            "familiarity": near,
        }
        write_adapter(self.hypernet, tensors, Path(out), info)
        return info
