"""Description encoders: text -> one normalized vector the generator reads.

- `minilm`: the frozen sentence embedder all-MiniLM-L6-v2 (22M parameters, what Text-to-LoRA's smallest
  variant uses); reads at most 256 tokens. `minilm-tokens`: the same model's token states before the mean,
  for the pool generator's attending reader (a hypernetwork reads them as their mean, as `minilm`).
- `model:NAME`: a causal LM's mean last hidden state over the description (LoRA-Gen reads a larger "cloud"
  model's states; here any model of the registry or a local folder, e.g. the edge model itself or
  Gemma-3-270M); reads at most 512 tokens.

A description that is empty or longer than the encoder reads is refused: truncating it silently would make
an adapter for part of a task.
"""

from __future__ import annotations

import torch

from edgeadapt.core.errors import UserError


class DescriptionEncoder:
    name: str
    dim: int
    max_tokens: int

    def token_count(self, text: str) -> int:
        # verbose=False: the tokenizer's own warning names its model's limit, not the encoder's (below)
        return len(self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def check(self, text: str, where: str = "description") -> str:
        text = (text or "").strip()
        if not text:
            raise UserError(f"{where}: empty; describe the task in a sentence or a paragraph.")
        count = self.token_count(text)
        if count > self.max_tokens:
            raise UserError(
                f"{where}: {count} tokens, but the encoder '{self.name}' reads at most {self.max_tokens}; "
                "shorten it (the generator was trained on descriptions of one paragraph)."
            )
        return text

    def __call__(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError


class MiniLMEncoder(DescriptionEncoder):
    def __init__(self):
        from edgeadapt.inference.embedder import Embedder

        self.embedder = Embedder()
        self.tokenizer = self.embedder.tokenizer
        self.name, self.dim, self.max_tokens = "minilm", self.embedder.model.config.hidden_size, 256

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return self.embedder(texts)


class MiniLMTokenEncoder(MiniLMEncoder):
    """MiniLM's token states, not their mean (`minilm-tokens`): for a reader that learns which words to
    attend to. Called like `minilm` it gives the same sentence embedding (what a hypernetwork would read)."""

    def __init__(self):
        super().__init__()
        self.name = "minilm-tokens"

    def tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, tokens, dim) states, right-padded, and the (n, tokens) mask of real tokens."""
        states, mask = self.embedder.token_states(texts)
        return states.float(), mask.bool()


class ModelEncoder(DescriptionEncoder):
    """Mean of a causal LM's last hidden states over the description's tokens, L2-normalized."""

    def __init__(self, name: str, base_dir: str = ""):
        from edgeadapt.models import registry
        from edgeadapt.models.loading import load

        self.model, self.tokenizer = load(
            registry.resolve(name, base_dir), torch.float32, torch.device("cpu")
        )
        self.model.eval()
        # what reads: the transformer without its LM head. A reader wants states, not next-token logits, and
        # the head is most of the work on a short text (Gemma-3-270M's 262k-word head: 265 ms of reading 22
        # tokens on two cores, 117 without it); the states are the same tensors either way (tested).
        self.body = self.model.base_model
        self.name, self.dim = f"model:{name}", self.model.config.hidden_size
        self.max_tokens = 512

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 16) -> torch.Tensor:
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size], padding=True, return_tensors="pt", add_special_tokens=True
            )
            out = self.body(**batch, output_hidden_states=True)
            states = out.hidden_states[-1]
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
            parts.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(parts)


ENCODERS = ("minilm", "minilm-tokens", "model:NAME")


def open_encoder(spec: str, base_dir: str = "") -> DescriptionEncoder:
    if spec == "minilm":
        return MiniLMEncoder()
    if spec == "minilm-tokens":
        return MiniLMTokenEncoder()
    if spec.startswith("model:") and len(spec) > len("model:"):
        return ModelEncoder(spec[len("model:") :], base_dir)
    raise UserError(f"loragen.encoder: '{spec}' is not one of {', '.join(ENCODERS)}.")
