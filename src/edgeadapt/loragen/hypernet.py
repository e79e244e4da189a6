"""The generator: a hypernetwork that turns a task description's embedding into LoRA weights for every
target module of every decoder layer, in one forward pass (Text-to-LoRA's "M" design: one shared MLP, told
which layer and which module it is writing by learned embeddings, and one output head per module shape).

    z      = MLP(embedding)                                  the task, in the generator's own space
    h[l,m] = MLP(z + layer_embedding[l] + module_embedding[m])
    A, B   = head_m(h[l,m]) split into (rank x in) and (out x rank)

Why this design rather than LoRA-Gen's gates over a pool of shared experts: it emits the adapter itself, so
its output is an ordinary LoRA that merges, packages and exports unchanged, and a description can move any
direction of the update, not only mix a fixed pool (docs/LORAGEN.md). The heads start so that A is a
description-independent random projection and B is zero: the first generated adapter is the base model, as
a freshly initialized LoRA is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from edgeadapt.core.errors import UserError
from edgeadapt.loragen.encoders import DescriptionEncoder, open_encoder
from edgeadapt.loragen.registry import GeneratorSetup, read_generator, register_generator, save_generator


@dataclass
class HyperConfig:
    kind: ClassVar[str] = "hypernet"
    encoder: str
    """The description encoder (`minilm`, or `model:NAME` for a model's mean hidden state)."""
    encoder_dim: int
    modules: dict[str, list[int]]
    """Target module name (q_proj, v_proj) -> [in_features, out_features]."""
    module_paths: dict[str, list[str]]
    """Target module name -> its full module path in the base model, one per decoder layer."""
    rank: int = 4
    alpha: float = 8.0
    hidden: int = 256
    dropout: float = 0.05
    base_model: str = ""
    training_descriptions: list[str] = field(default_factory=list)
    familiar_similarity: float = 0.0
    """A new description less similar than this to every training description is unlike what the generator
    learned from: the lowest similarity of a training description to its nearest one of another task."""

    @property
    def layers(self) -> int:
        return len(next(iter(self.module_paths.values())))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


class HyperLoRA(nn.Module):
    def __init__(self, cfg: HyperConfig, encoder: DescriptionEncoder | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        h = cfg.hidden
        self.task = nn.Sequential(
            nn.Linear(cfg.encoder_dim, h),
            nn.LayerNorm(h),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(h, h),
        )
        self.layer_embedding = nn.Embedding(cfg.layers, h)
        self.module_embedding = nn.Embedding(len(cfg.modules), h)
        self.mix = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU())
        self.heads = nn.ModuleDict(
            {m: nn.Linear(h, cfg.rank * (fan_in + fan_out)) for m, (fan_in, fan_out) in cfg.modules.items()}
        )
        self.reset_heads()

    @torch.no_grad()
    def reset_heads(self) -> None:
        """A: LoRA's own initialization (Kaiming-uniform) in the bias, B: zero, small weights on both."""
        r = self.cfg.rank
        for name, head in self.heads.items():
            fan_in = self.cfg.modules[name][0]
            nn.init.normal_(head.weight, std=1e-3)
            head.bias.zero_()
            bound = 1 / math.sqrt(fan_in)
            head.bias[: r * fan_in].uniform_(-bound, bound)

    def forward(self, embeddings: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(tasks, encoder_dim) -> per module, A (tasks, layers, rank, in) and B (tasks, layers, out, rank)."""
        z = self.task(embeddings)
        out = {}
        for index, (name, (fan_in, fan_out)) in enumerate(self.cfg.modules.items()):
            h = z[:, None, :] + self.layer_embedding.weight[None] + self.module_embedding.weight[index]
            flat = self.heads[name](self.mix(h))
            r, tasks, layers = self.cfg.rank, embeddings.shape[0], self.cfg.layers
            a = flat[..., : r * fan_in].reshape(tasks, layers, r, fan_in)
            b = flat[..., r * fan_in :].reshape(tasks, layers, fan_out, r)
            out[name] = (a, b)
        return out

    # The generator interface (loragen.registry): the description is read by the frozen encoder once.
    def check(self, text: str, where: str = "description") -> str:
        return self.encoder.check(text, where)

    @torch.no_grad()
    def read(self, texts: list[str]) -> torch.Tensor:
        return self.encoder(texts)

    def weights(self, read: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self(read.float())

    def fingerprint(self, read: torch.Tensor) -> torch.Tensor:
        return read  # the encoders' embeddings are L2-normalized already

    def for_descriptions(self, indices: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self(self.descriptions[indices])

    def save(self, folder: Path) -> None:
        save_generator(self, folder)

    @classmethod
    def load(cls, folder: Path, base_dir: str = "", encoder: DescriptionEncoder | None = None) -> HyperLoRA:
        cfg, state = read_generator(folder, HyperConfig)
        encoder = encoder or open_encoder(cfg.encoder, base_dir)
        if encoder.dim != cfg.encoder_dim:
            raise UserError(
                f"{folder}: the generator reads {cfg.encoder_dim}-d embeddings, not {encoder.dim}."
            )
        model = cls(cfg, encoder)
        model.load_state_dict(state)
        return model.eval()


def build(setup: GeneratorSetup) -> HyperLoRA:
    """An untrained hypernetwork over the setup's encoder, every training description encoded once."""
    from edgeadapt.loragen.generated import target_modules

    g = setup.cfg
    encoder = setup.encoder_object or open_encoder(setup.encoder, setup.base_dir)
    texts = [encoder.check(text, "a training description") for text in setup.texts]
    shapes, paths = target_modules(setup.base, g.targets)
    cfg = HyperConfig(
        encoder=setup.encoder,
        encoder_dim=encoder.dim,
        modules=shapes,
        module_paths=paths,
        rank=g.rank,
        alpha=g.alpha,
        hidden=g.hidden,
        dropout=g.dropout,
        base_model=setup.base_model,
        training_descriptions=texts,
    )
    from transformers import set_seed

    set_seed(setup.seed)
    model = HyperLoRA(cfg, encoder)
    # not persistent: the folder keeps the embeddings apart (descriptions.safetensors), for familiarity
    model.register_buffer("descriptions", encoder(texts).float(), persistent=False)
    return model


register_generator(
    name="hypernet",
    description="Text-to-LoRA's M design: one MLP turns a sentence embedding into every layer's A and B",
    build=build,
    load=HyperLoRA.load,
    reads=("hidden", "dropout"),
)
