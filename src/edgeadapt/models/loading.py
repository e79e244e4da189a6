"""Loading any causal LM and its tokenizer onto a device, and facts about a loaded model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeadapt.core.errors import UserError

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    import torch

INFO_FILE = "edgeadapt_model.json"  # provenance written beside a fetched checkpoint


def pick_device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """The weights' dtype (`model.dtype`): auto is fp32 on the CPU (evaluation there has not been measured in
    bf16), bf16 on CUDA. Training multiplies in what `train.precision` says."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def load_tokenizer(path: Path):
    """The model's tokenizer, with a pad token and left padding (for batched generation)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except OSError as exc:
        raise UserError(f"Could not load a tokenizer from {path}: {str(exc).splitlines()[0]}") from None
    return padded_left(tokenizer)


def load_tokenizer_files(path: Path):
    """The tokenizer from its files alone (tokenizer.json, its config and chat template) as transformers'
    fast tokenizer: what a llama.cpp device formats prompts and reads answers with. AutoTokenizer would
    import the model classes it maps, and with them torch (1.4 s a command); the ids are the same (tested
    on the real model)."""
    from transformers import PreTrainedTokenizerFast

    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"Could not load a tokenizer from {path}: {str(exc).splitlines()[0]}") from None
    return padded_left(tokenizer)


def padded_left(tokenizer):
    """A pad token (the end-of-sequence one where it has none) and left padding, for batched generation."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load(path: Path, dtype: torch.dtype | None = None, device: torch.device | None = None):
    """Load a causal LM (fp32 unless `dtype` says) and its tokenizer (see `load_tokenizer`)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32)
    except OSError as exc:
        raise UserError(f"Could not load model from {path}: {str(exc).splitlines()[0]}") from None
    return model.to(device or pick_device()), tokenizer


def model_info(path: Path) -> dict[str, Any]:
    """Provenance of the weights: which package and GGUF they came from, or the folder / hub id."""
    info_file = Path(path) / INFO_FILE
    if info_file.is_file():
        return json.loads(info_file.read_text())
    return {"name": str(path), "dequantized_from_gguf": False}


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Parameters counted once each (tied embeddings are one tensor). A weight packed into 4-bit storage
    (bitsandbytes, two values per byte) counts as the weights it holds, not as its storage bytes."""
    seen, total = set(), 0
    for param in model.parameters():
        if id(param) in seen or (trainable_only and not param.requires_grad):
            continue
        seen.add(id(param))
        state = getattr(param, "quant_state", None)  # bitsandbytes' Params4bit: the unpacked shape
        total += math.prod(state.shape) if state is not None else param.numel()
    return total
