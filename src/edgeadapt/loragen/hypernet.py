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

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgeadapt.core.errors import UserError


@dataclass
class HyperConfig:
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
    def __init__(self, cfg: HyperConfig):
        super().__init__()
        self.cfg = cfg
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

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS))
        (folder / CONFIG).write_text(json.dumps(asdict(self.cfg), indent=1))

    @classmethod
    def load(cls, folder: Path) -> HyperLoRA:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
            raise UserError(
                f"{folder}: not a generator ({CONFIG} and {WEIGHTS}); `edgeadapt loragen train CONFIG` makes one."
            )
        try:
            cfg = HyperConfig(**json.loads((folder / CONFIG).read_text()))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{folder / CONFIG}: not a generator config ({exc}).") from None
        model = cls(cfg)
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
        return model.eval()


WEIGHTS, CONFIG = "generator.safetensors", "generator.json"


def target_modules(model: nn.Module, names: list[str]) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """The base model's linear layers named `names` (q_proj, v_proj), one per decoder layer, in order."""
    from edgeadapt.models.structure import decoder_layers

    layers = decoder_layers(model)
    prefix = {id(layer): i for i, layer in enumerate(layers)}
    full = {module: name for name, module in model.named_modules()}
    shapes: dict[str, list[int]] = {}
    paths: dict[str, list[str]] = {n: [""] * len(layers) for n in names}
    for layer in layers:
        index = prefix[id(layer)]
        for sub_name, sub in layer.named_modules():
            short = sub_name.rsplit(".", 1)[-1]
            if short in names and isinstance(sub, nn.Linear):
                shapes[short] = [sub.in_features, sub.out_features]
                paths[short][index] = full[sub]
    missing = [n for n in names if n not in shapes or "" in paths[n]]
    if missing:
        raise UserError(
            f"loragen.targets: the model has no linear '{missing[0]}' in every decoder layer "
            "(SmolLM2 and Gemma: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)."
        )
    return shapes, paths
