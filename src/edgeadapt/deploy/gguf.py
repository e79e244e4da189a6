"""`edgeadapt export gguf RUN --method NAME --out FILE.gguf`: the merged model as a GGUF file for llama.cpp.

Written with the `gguf` package in llama.cpp's layout for the llama architecture (SmolLM2 and the tiny test
model): tensor names `token_embd`, `blk.N.attn_q`, ...; q and k rows permuted the way llama.cpp's own
converter does; norms in f32, the rest in f16 or f32; the tokenizer as a `gpt2` BPE vocabulary (tokens,
types, merges, special ids, chat template). Read back by transformers' GGUF loader, it gives the same logits
as the merged model (tested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeadapt import models
from edgeadapt.core.errors import UserError
from edgeadapt.runs.run import check_variants, reopen, trained_results

SUPPORTED = ("LlamaForCausalLM",)
BLOCK_TENSORS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3


def permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for q/k (its rotary embedding pairs adjacent dimensions, HF's pairs halves)."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def gguf_tensors(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp names, q/k permuted, as float32 arrays."""
    cfg = model.config
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out = {
        "token_embd.weight": state["model.embed_tokens.weight"],
        "output_norm.weight": state["model.norm.weight"],
    }
    if not cfg.tie_word_embeddings:
        out["output.weight"] = state["lm_head.weight"]
    for i in range(cfg.num_hidden_layers):
        for hf, name in BLOCK_TENSORS.items():
            weight = state[f"model.layers.{i}.{hf}.weight"]
            if name == "attn_q":
                weight = permute(weight, cfg.num_attention_heads)
            elif name == "attn_k":
                weight = permute(weight, cfg.num_key_value_heads)
            out[f"blk.{i}.{name}.weight"] = weight
    return out


def tokenizer_fields(tokenizer, pre: str) -> dict[str, Any]:
    """A `gpt2` (byte-level BPE) vocabulary in GGUF's tokenizer keys."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if backend.get("type") != "BPE":
        raise UserError(f"GGUF export supports byte-level BPE tokenizers; this one is {backend.get('type')}.")
    vocab = {**backend["vocab"], **{t.content: i for i, t in tokenizer.added_tokens_decoder.items()}}
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    for token, index in vocab.items():
        tokens[index] = token
    special = set(tokenizer.added_tokens_decoder)
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend.get("merges", [])]
    return {
        "tokens": tokens,
        "types": [TOKEN_CONTROL if i in special else TOKEN_NORMAL for i in range(size)],
        "merges": merges,
        "pre": pre,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "pad": tokenizer.pad_token_id,
        "unk": tokenizer.unk_token_id,
        "chat_template": tokenizer.chat_template,
    }


def write(
    model: torch.nn.Module, tokenizer, out: Path, dtype: str = "f16", name: str = "", pre: str = "default"
) -> Path:
    """Write `model` (a plain llama-architecture transformers model) and its tokenizer to `out`."""
    import gguf

    cfg = model.config
    if type(model).__name__ not in SUPPORTED:
        raise UserError(f"GGUF export supports {', '.join(SUPPORTED)}; this model is {type(model).__name__}.")
    if dtype not in ("f16", "f32"):
        raise UserError(f"--dtype for GGUF must be f16 or f32, got '{dtype}'")
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(name or "edgeadapt model")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(rope_theta(cfg))
    writer.add_rope_dimension_count(
        getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    )
    writer.add_vocab_size(cfg.vocab_size)
    tok = tokenizer_fields(tokenizer, pre)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"])
    for key, add in (
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("pad", writer.add_pad_token_id),
        ("unk", writer.add_unk_token_id),
    ):
        if tok[key] is not None:
            add(tok[key])
    writer.add_add_bos_token(False)
    if tok["chat_template"]:
        writer.add_chat_template(tok["chat_template"])
    for tensor_name, array in gguf_tensors(model).items():
        keep_f32 = array.ndim == 1 or dtype == "f32"
        writer.add_tensor(tensor_name, array.astype(np.float32 if keep_f32 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def rope_theta(cfg) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    return float(params.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0))


def source_pre_tokenizer(model_name: str) -> str:
    """The pre-tokenizer name llama.cpp knows this model's vocabulary by, from the GGUF it came from."""
    spec = models.BUILTIN.get(model_name)
    if spec is None or not spec.package:
        return "default"
    import gguf

    try:
        field = gguf.GGUFReader(str(spec.locate())).fields.get("tokenizer.ggml.pre")
    except (ImportError, UserError, OSError):
        return "default"
    return field.contents() if field is not None else "default"


def export_run(run_dir: str, variant: str, out: Path, dtype: str = "f16") -> dict[str, Any]:
    """`edgeadapt export gguf`: merge the variant's update into the base and write the GGUF file."""
    run, results = reopen(run_dir, [], "export")
    check_variants(run, results, [variant], allow_base=True)
    if variant != "base":
        trained_results(run)
        refusal = run.method(variant).capabilities.gguf
        if refusal:
            raise UserError(f"{variant}: {refusal}.")
    model = run.open(None if variant == "base" else variant, torch.float32).model
    write(
        model,
        run.tokenizer,
        out,
        dtype,
        f"{run.cfg.model.name} + {variant}",
        source_pre_tokenizer(run.cfg.model.name),
    )
    return {"path": str(out), "bytes": out.stat().st_size, "dtype": dtype, "variant": variant}
