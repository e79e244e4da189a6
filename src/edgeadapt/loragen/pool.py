"""The pool generator: LoRA-Gen's own design (`loragen.kind: pool`).

A frozen reader (a causal LM other than, or the same as, the edge model) reads the task description followed
by M learned meta tokens; its last hidden state at meta token m(l) drives, for each target module of edge
layer l, a gate over that layer's K LoRA experts (A_k, B_k of rank r). The top k experts are kept, their
gates renormalized, and the layer's adapter is the gated sum

    ΔW_l = scaling · Σ_{j in top-k} g_j B_j A_j

which is itself a LoRA of rank k·r: A = [A_j stacked], B = [g_j B_j side by side]. So a generated adapter is
a plain PEFT LoRA folder (r = k·r, alpha scaled to keep the experts' scaling), and packaging, GGUF export and
the device take it as they take any LoRA; the description leaves the prompt.

The reader may instead be a sentence embedder (`loragen.encoder: minilm`, the hypernetwork's): then there are
no meta tokens, and every layer's gate reads the one embedding, computed once per training description. It
is not LoRA-Gen's design; it tells apart what the reader contributes from what the gated pool does. Between
the two, `minilm-tokens` keeps the sentence embedder's token states (computed once per description) and lets
M learned queries, the meta tokens' part, attend over them: a mean that learns which words to weigh (the
mean-pooled embedding weighs a task's 2-3 naming words as little as its sentence frame; RESULTS).

Only the meta tokens, the gates and the experts learn; the reader's weights do not, but the gradient flows
back through it to the meta tokens. The reader is causal, so the description's keys and values do not
depend on the meta tokens: each distinct description is read once (`prefixes`), and a training step runs
only the meta tokens of its descriptions, in one batch, on those cached prefixes (left-padded, masked).
A load-balancing term (Switch Transformer's K · Σ_k f_k P_k, 1 when balanced) keeps the experts from
collapsing to a few: the training loop adds it like any regularizer (`BalanceTerm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from edgeadapt.core.errors import UserError
from edgeadapt.loragen.encoders import DescriptionEncoder, ModelEncoder, open_encoder
from edgeadapt.loragen.registry import GeneratorSetup, read_generator, register_generator, save_generator
from edgeadapt.training.regularizers import Regularizer

Prefix = tuple[list[tuple[torch.Tensor, torch.Tensor]], int]
"""A description read by the reader: its keys and values per reader layer, and its token count."""


ATTENDING_READER = "minilm-tokens"


def reads_with_meta_tokens(encoder: str) -> bool:
    """Whether a reader spec is a causal LM read through meta tokens (`model:NAME`; else a sentence embedder)."""
    return encoder.startswith("model:")


def attends(encoder: str) -> bool:
    """Whether learned queries attend over a sentence embedder's token states (`minilm-tokens`)."""
    return encoder == ATTENDING_READER


@dataclass
class PoolConfig:
    kind: ClassVar[str] = "pool"
    encoder: str
    """The reader: `model:NAME` (a causal LM, with meta tokens) or `minilm` (a sentence embedding)."""
    reader_dim: int
    modules: dict[str, list[int]]
    module_paths: dict[str, list[str]]
    experts: int = 8
    expert_rank: int = 4
    top_k: int = 2
    alpha: float = 8.0
    meta_tokens: int = 0
    """Meta tokens the reader reads after the description; edge layer l reads token l·M // layers."""
    balance_weight: float = 0.01
    base_model: str = ""
    training_descriptions: list[str] = field(default_factory=list)
    familiar_similarity: float = 0.0

    @property
    def layers(self) -> int:
        return len(next(iter(self.module_paths.values())))

    @property
    def rank(self) -> int:
        """The materialized adapter's rank: k experts side by side."""
        return self.expert_rank * self.top_k

    @property
    def scaling(self) -> float:
        return self.alpha / self.expert_rank

    @property
    def causal(self) -> bool:
        return reads_with_meta_tokens(self.encoder)

    @property
    def attends(self) -> bool:
        return attends(self.encoder)

    def meta_of_layers(self) -> list[int]:
        return [layer * self.meta_tokens // self.layers for layer in range(self.layers)]


def balance_term(probs: torch.Tensor, chosen: torch.Tensor, experts: int) -> torch.Tensor:
    """K · Σ_k f_k · P_k per layer, averaged over layers: f_k the share of the top-k slots expert k took over
    the batch, P_k its mean gate probability. 1 when every expert is chosen and weighted equally; up to K/k
    when the batch uses k experts only. (probs: (n, layers, K); chosen: (n, layers, k) indices.)"""
    top_k = chosen.shape[-1]
    share = F.one_hot(chosen, experts).sum(2).float().mean(0) / top_k  # (layers, K), sums to 1 over K
    return (experts * (share * probs.mean(0)).sum(-1)).mean()


def top_k_gates(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probabilities over all experts, the top-k gates renormalized to sum to 1, their expert indices)."""
    probs = logits.softmax(-1)
    top, chosen = probs.topk(top_k, dim=-1)
    return probs, top / top.sum(-1, keepdim=True), chosen


class PoolLoRA(nn.Module):
    def __init__(self, cfg: PoolConfig, reader: DescriptionEncoder | None = None, meta_std: float = 0.02):
        super().__init__()
        self.cfg = cfg
        layers, experts, r, dim = cfg.layers, cfg.experts, cfg.expert_rank, cfg.reader_dim
        if cfg.causal or cfg.attends:  # the meta tokens, or the attending reader's queries
            self.meta = nn.Parameter(torch.randn(cfg.meta_tokens, dim) * meta_std)
        else:
            self.register_parameter("meta", None)
        self.norm = nn.LayerNorm(dim)
        self.gates = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(layers, experts, dim) * 0.02) for m in cfg.modules}
        )
        # LoRA's own start: A Kaiming-uniform, B zero, so the first generated adapter is the base model
        self.lora_A = nn.ParameterDict(
            {
                m: nn.Parameter(torch.empty(layers, experts, r, fan_in).uniform_(-1, 1) / math.sqrt(fan_in))
                for m, (fan_in, _) in cfg.modules.items()
            }
        )
        self.lora_B = nn.ParameterDict(
            {
                m: nn.Parameter(torch.zeros(layers, experts, fan_out, r))
                for m, (_, fan_out) in cfg.modules.items()
            }
        )
        object.__setattr__(self, "reader", reader)  # frozen and not ours: never checkpointed
        self.prefixes: list[Prefix] = []
        self.last_balance: torch.Tensor | None = None

    # --- reading
    def check(self, text: str, where: str = "description") -> str:
        return self.reader.check(text, where)

    def token_ids(self, text: str) -> torch.Tensor:
        return self.reader.tokenizer(text, return_tensors="pt", add_special_tokens=True)["input_ids"]

    @property
    def reading_device(self) -> torch.device:
        """Where the frozen reader runs: every tensor it reads goes there, and what it returns comes back to
        the pool's own device (the trainer keeps both on one; a reader on another device still works)."""
        return self.reader.model.device

    @torch.no_grad()
    def prefix(self, text: str) -> Prefix:
        ids = self.token_ids(text)
        cache = self.reader.body(input_ids=ids.to(self.reading_device), use_cache=True).cache
        return [(layer.keys, layer.values) for layer in cache.layers], ids.shape[1]

    def meta_states(self, prefixes: list[Prefix]) -> torch.Tensor:
        """The reader's last hidden states at the meta tokens after each prefix: (n, M, reader_dim). One batch:
        prefixes left-padded with zeros that the attention mask hides, positions continuing each prefix."""
        from transformers import DynamicCache

        n, m, device = len(prefixes), self.cfg.meta_tokens, self.reading_device
        longest = max(length for _, length in prefixes)
        padded = []
        for layer in range(len(prefixes[0][0])):
            keys, values = [], []
            for kv, length in prefixes:
                pad = (0, 0, longest - length, 0)
                keys.append(F.pad(kv[layer][0].to(device), pad))
                values.append(F.pad(kv[layer][1].to(device), pad))
            padded.append((torch.cat(keys), torch.cat(values)))
        lengths = torch.tensor([length for _, length in prefixes], device=device)
        mask = torch.ones(n, longest + m, dtype=torch.long, device=device)
        mask[:, :longest] = (
            torch.arange(longest, device=mask.device)[None] >= (longest - lengths)[:, None]
        ).long()
        positions = lengths[:, None] + torch.arange(m, device=mask.device)[None]
        out = self.reader.body(
            inputs_embeds=self.meta[None].expand(n, -1, -1).to(device),
            attention_mask=mask,
            position_ids=positions,
            cache=DynamicCache(ddp_cache_data=padded, config=self.reader.model.config),
            use_cache=True,
            output_hidden_states=True,
        )
        return out.hidden_states[-1].to(self.meta.device)

    @torch.no_grad()
    def read(self, texts: list[str]) -> torch.Tensor:
        """(n, M, dim): the meta-token states, or a sentence reader's embedding as one state (M = 1). Making
        an adapter reads each description and its meta tokens in one pass: the same states as a cached prefix
        (tested), in one call instead of two (Gemma-3-270M: 124 ms against 194 on two cores)."""
        if self.cfg.attends:
            states, mask = self.reader.tokens(texts)
            return self.attend(states.to(self.meta.device), mask.to(self.meta.device))
        if not self.cfg.causal:
            return self.reader(texts).float()[:, None]
        embed = self.reader.model.get_input_embeddings()
        states = []
        for text in texts:
            ids = self.token_ids(text)
            device = self.reading_device
            embeds = torch.cat([embed(ids.to(device)), self.meta[None].to(device)], dim=1)
            out = self.reader.body(inputs_embeds=embeds, output_hidden_states=True)
            states.append(out.hidden_states[-1][:, ids.shape[1] :].to(self.meta.device))
        return torch.cat(states)

    def attention(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, M, tokens): each query's weights over the token states (n, tokens, dim) where the mask (n,
        tokens) is true. Keys are the layer-normed states; the queries start small, so training starts from
        about the plain mean, `minilm`'s reading."""
        keys = F.layer_norm(states, states.shape[-1:])
        scores = torch.einsum("ntd,md->nmt", keys, self.meta)
        return scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1)

    def attend(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, M, dim): each query's attention-weighted mean of the token states."""
        return torch.einsum("nmt,ntd->nmd", self.attention(states, mask), states)

    def fingerprint(self, read: torch.Tensor) -> torch.Tensor:
        return F.normalize(read.mean(1), dim=-1)

    # --- the adapter
    def gate_choices(self, read: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per module, each layer's gate over its experts: `top_k_gates`' (probabilities, top-k gates, their
        expert indices), each (n, layers, ...)."""
        states = self.norm(read[:, self.cfg.meta_of_layers()])  # (n, layers, dim)
        return {
            name: top_k_gates(torch.einsum("nld,lkd->nlk", states, self.gates[name]), self.cfg.top_k)
            for name in self.cfg.modules
        }

    def weights(self, read: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per module, the gated sums as LoRA pairs: A (n, layers, k·r, in), B (n, layers, out, k·r)."""
        cfg = self.cfg
        layer = torch.arange(cfg.layers, device=read.device)[None, :, None]
        out, balance = {}, []
        for name, (probs, gates, chosen) in self.gate_choices(read).items():
            a = self.lora_A[name][layer, chosen]  # (n, layers, k, r, in)
            b = self.lora_B[name][layer, chosen] * gates[..., None, None]  # (n, layers, k, out, r)
            n, layers, k, r, fan_in = a.shape
            out[name] = (
                a.reshape(n, layers, k * r, fan_in),
                b.permute(0, 1, 3, 2, 4).reshape(n, layers, b.shape[3], k * r),
            )
            balance.append(balance_term(probs, chosen, cfg.experts))
        self.last_balance = torch.stack(balance).mean()
        return out

    def for_descriptions(self, indices: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Training: each distinct description of the batch read once (meta tokens on its cached prefix)."""
        if self.cfg.attends:  # token states per description, computed once (`build`)
            return self.weights(self.attend(self.token_states[indices], self.token_mask[indices]))
        if not self.cfg.causal:  # a frozen embedding per description, computed once (`build`)
            return self.weights(self.descriptions[indices])
        distinct, inverse = torch.unique(indices, return_inverse=True)
        states = self.meta_states([self.prefixes[int(i)] for i in distinct])
        return self.weights(states[inverse])

    def save(self, folder: Path) -> None:
        save_generator(self, folder)

    @classmethod
    def load(cls, folder: Path, base_dir: str = "", encoder: DescriptionEncoder | None = None) -> PoolLoRA:
        cfg, state = read_generator(folder, PoolConfig)
        reader = encoder or open_reader(cfg.encoder, base_dir)
        if reader.dim != cfg.reader_dim:
            raise UserError(f"{folder}: the generator reads {cfg.reader_dim}-d states, not {reader.dim}.")
        model = cls(cfg, reader)
        model.load_state_dict(state)
        return model.eval()


def open_reader(spec: str, base_dir: str = "") -> DescriptionEncoder:
    if spec in ("minilm", ATTENDING_READER):
        return open_encoder(spec)
    if not spec.startswith("model:") or len(spec) == len("model:"):
        raise UserError(
            f"loragen.encoder: the pool generator reads with a causal model (model:NAME, e.g. model:gemma3-270m) "
            f"or the sentence embedder minilm (minilm-tokens: attending over its token states), not '{spec}'."
        )
    reader = ModelEncoder(spec[len("model:") :], base_dir)
    for p in reader.model.parameters():
        p.requires_grad_(False)
    return reader


class BalanceTerm(Regularizer):
    """The pool's load-balancing term, read from the generator's last forward pass (1 when balanced)."""

    name = "expert_balance"

    def term(self, model: nn.Module, step: int = 0) -> torch.Tensor:
        return model.generator.last_balance


def build(setup: GeneratorSetup) -> PoolLoRA:
    """An untrained pool over the setup's reader, every training description read once (its prefix cached, or
    its sentence embedding kept)."""
    from edgeadapt.loragen.generated import target_modules

    g = setup.cfg
    reader = setup.encoder_object or open_reader(setup.encoder, setup.base_dir)
    causal = reads_with_meta_tokens(setup.encoder)
    if setup.device is not None and causal:  # a sentence reader runs once, here
        reader.model.to(setup.device)
    texts = [reader.check(text, "a training description") for text in setup.texts]
    shapes, paths = target_modules(setup.base, g.targets)
    layers = len(next(iter(paths.values())))
    cfg = PoolConfig(
        encoder=setup.encoder,
        reader_dim=reader.dim,
        modules=shapes,
        module_paths=paths,
        experts=g.experts,
        expert_rank=g.rank,
        top_k=g.top_k,
        alpha=g.alpha,
        meta_tokens=(g.meta_tokens or layers) if causal or attends(setup.encoder) else 1,
        balance_weight=g.balance_weight,
        base_model=setup.base_model,
        training_descriptions=texts,
    )
    from transformers import set_seed

    if cfg.attends:
        set_seed(setup.seed)
        model = PoolLoRA(cfg, reader)
        states, mask = reader.tokens(texts)
        model.register_buffer("token_states", states, persistent=False)
        model.register_buffer("token_mask", mask, persistent=False)
        return model
    if not causal:
        set_seed(setup.seed)
        model = PoolLoRA(cfg, reader)
        model.register_buffer("descriptions", reader(texts).float()[:, None], persistent=False)
        return model
    with torch.no_grad():  # meta tokens start at the scale of the reader's own input embeddings
        ids = reader.tokenizer(texts[0], return_tensors="pt")["input_ids"].to(reader.model.device)
        scale = float(reader.model.get_input_embeddings()(ids).std())
    set_seed(setup.seed)
    model = PoolLoRA(cfg, reader, meta_std=scale)
    model.prefixes = [model.prefix(text) for text in texts]
    return model


def regularizers(generator: PoolLoRA, cfg: Any) -> tuple:
    weight = generator.cfg.balance_weight
    return (BalanceTerm(weight),) if weight > 0 else ()


register_generator(
    name="pool",
    description="LoRA-Gen's design: a frozen reader's meta-token states gate a pool of LoRA experts per layer",
    build=build,
    load=PoolLoRA.load,
    regularizers=regularizers,
    reads=("experts", "top_k", "meta_tokens", "balance_weight"),
)
