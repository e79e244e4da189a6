"""Models and rows for speed measurements: each architecture built from its config with random weights (speed
does not depend on the values), and random token rows whose last share is scored."""

from __future__ import annotations

import torch

ARCHS = {
    "smollm2-135m": (
        "llama",
        dict(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            tie_word_embeddings=True,
        ),
    ),
    "gemma3-270m": (
        "gemma3_text",
        dict(
            vocab_size=262144,
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
        ),
    ),
    "qwen2.5-0.5b": (
        "qwen2",
        dict(
            vocab_size=151936,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            tie_word_embeddings=True,
        ),
    ),
}
SCORED = 0.25  # share of each row's tokens that carry a label (an SFT row's response)


def build(arch: str, device: torch.device):
    from transformers import AutoConfig, AutoModelForCausalLM

    kind, kwargs = ARCHS[arch]
    config = AutoConfig.for_model(kind, max_position_embeddings=4096, **kwargs)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device)


def rows(vocab: int, seq: int, count: int, share: float = SCORED) -> list[dict[str, list[int]]]:
    """`count` random rows of `seq` tokens whose last `share` of tokens is scored."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        ids = torch.randint(3, vocab, (seq,), generator=generator).tolist()
        scored = int(seq * share)
        out.append(
            {"input_ids": ids, "attention_mask": [1] * seq, "labels": [-100] * (seq - scored) + ids[-scored:]}
        )
    return out
