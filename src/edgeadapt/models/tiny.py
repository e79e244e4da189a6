"""`tiny-random`: a 2-layer Llama with a byte-level tokenizer, built in code, for tests and smoke runs."""

from __future__ import annotations

import json
from pathlib import Path

from edgeadapt.models.loading import INFO_FILE, count_parameters


def tiny_tokenizer():
    """A byte-level BPE tokenizer with no merges and a ChatML template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):  # a set: its order changes per process
        vocab.setdefault(char, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer


def tiny_random_model(seed: int = 0, vocab_size: int = 259):
    """A 2-layer Llama (hidden 64, GQA 4/2 heads) with fixed random weights for `seed`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_tiny_random(out: Path) -> Path:
    tokenizer = tiny_tokenizer()
    model = tiny_random_model(vocab_size=len(tokenizer))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {
        "name": "tiny-random",
        "package": "",
        "dequantized_from_gguf": False,
        "dtype": "float32",
        "parameters": count_parameters(model),
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2))
    return out
