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


DTYPES = ("f16", "f32", "q8_0", "q4_0")
LORA_DTYPES = {"f16": np.float16, "f32": np.float32}
"""A GGUF LoRA's types: f16 (the default, as llama.cpp's own converter writes them) halves the bytes sent
over the air; llama.cpp's quantized types need rows of 32 values, which a rank-8 B matrix does not have."""
QUANTIZED = {"q8_0": "Q8_0", "q4_0": "Q4_0"}
UNAVAILABLE = {
    "q4_k_m": "q4_k_m needs llama.cpp's llama-quantize, which neither the gguf package nor the xllamacpp wheel "
    "ships: export f16 and quantize with llama.cpp's tool, or use q4_0, the 4-bit type written here"
}


def file_type(dtype: str):
    import gguf

    return {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "f32": gguf.LlamaFileType.ALL_F32,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[dtype]


def check_dtype(dtype: str, adapter: bool = False) -> None:
    """A GGUF type this writes: for a model any of DTYPES, for an adapter (a GGUF LoRA) f16 or f32."""
    if dtype in UNAVAILABLE:
        raise UserError(UNAVAILABLE[dtype])
    if dtype not in DTYPES:
        raise UserError(f"--dtype for GGUF must be one of {', '.join(DTYPES)}, got '{dtype}'")
    if adapter and dtype not in LORA_DTYPES:
        raise UserError(f"a GGUF LoRA is written f16 or f32, not {dtype}: give --dtype f16 or f32")


def add_tensor(writer, name: str, array: np.ndarray, dtype: str) -> None:
    """Norms and biases stay f32; weights in the file's type (quantized by the gguf package's own code)."""
    import gguf

    if array.ndim == 1 or dtype == "f32":
        writer.add_tensor(name, array.astype(np.float32))
    elif dtype == "f16":
        writer.add_tensor(name, array.astype(np.float16))
    else:
        qtype = getattr(gguf.GGMLQuantizationType, QUANTIZED[dtype])
        writer.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), qtype), raw_dtype=qtype)


def add_architecture(writer, cfg) -> None:
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


def never_applied_merge(tok: dict[str, Any]) -> list[str]:
    """llama.cpp refuses a gpt2 vocabulary without merges, and the gguf writer drops (or refuses) an empty
    list. A byte-level vocabulary without merges (the tiny test tokenizer) gets one merge of two control
    tokens: BPE merges symbols inside a word, and those two can never be adjacent symbols, so tokenization
    is unchanged (tested against transformers in llama.cpp itself)."""
    controls = [t for t, kind in zip(tok["tokens"], tok["types"]) if kind == TOKEN_CONTROL]
    if len(controls) < 2:
        raise UserError(
            "GGUF export: this BPE vocabulary has no merges and too few control tokens to stand in for them"
        )
    return [f"{controls[0]} {controls[1]}"]


def add_tokenizer(writer, tokenizer, pre: str) -> None:
    tok = tokenizer_fields(tokenizer, pre)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"] or never_applied_merge(tok))
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
    # The tokenizer whole, as GGUF's spec allows: `models convert` rebuilds exactly this one from it (a
    # vocabulary without merges cannot be rebuilt from the gpt2 fields, whose stand-in merge is not a token).
    import gguf

    writer.add_string(gguf.Keys.Tokenizer.HF_JSON, tokenizer.backend_tokenizer.to_str())


def check_supported(model) -> None:
    if type(model).__name__ not in SUPPORTED:
        raise UserError(f"GGUF export supports {', '.join(SUPPORTED)}; this model is {type(model).__name__}.")


def finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write(
    model: torch.nn.Module, tokenizer, out: Path, dtype: str = "f16", name: str = "", pre: str = "default"
) -> Path:
    """Write `model` (a plain llama-architecture transformers model) and its tokenizer to `out`."""
    import gguf

    check_supported(model)
    check_dtype(dtype)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(name or "edgeadapt model")
    writer.add_file_type(file_type(dtype))
    add_architecture(writer, model.config)
    add_tokenizer(writer, tokenizer, pre)
    for tensor_name, array in gguf_tensors(model).items():
        add_tensor(writer, tensor_name, array, dtype)
    finish(writer)
    return out


def lora_tensors(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """An unmerged PEFT LoRA model's adapter as llama.cpp's LoRA tensors: `NAME.lora_a` (rank x in) and
    `NAME.lora_b` (out x rank) under the base tensor's llama.cpp name, PEFT's scaling folded into B, and
    q/k output rows permuted as the base weights are."""
    cfg, out = model.config, {}
    hf_to_gguf = {hf: name for hf, name in BLOCK_TENSORS.items() if "proj" in hf}
    for module_name, module in model.named_modules():
        adapters = list(getattr(module, "lora_A", {}))
        if not adapters:
            continue
        (adapter,) = adapters
        parts = module_name.removeprefix("base_model.model.").split(".")
        layer, hf = int(parts[2]), ".".join(parts[3:])
        a = module.lora_A[adapter].weight.detach().float().cpu().numpy()
        b = (module.lora_B[adapter].weight.detach().float() * module.scaling[adapter]).cpu().numpy()
        name = hf_to_gguf[hf]
        if name == "attn_q":
            b = permute(b, cfg.num_attention_heads)
        elif name == "attn_k":
            b = permute(b, cfg.num_key_value_heads)
        out[f"blk.{layer}.{name}.weight.lora_a"] = a
        out[f"blk.{layer}.{name}.weight.lora_b"] = b
    return out


def write_lora(model: torch.nn.Module, out: Path, name: str = "", dtype: str = "f16") -> Path:
    """A LoRA adapter as a GGUF file llama.cpp applies at run time to the base it holds (`--lora`)."""
    import gguf

    check_dtype(dtype, adapter=True)
    check_supported(model.get_base_model())
    if any(getattr(cfg, "use_dora", False) for cfg in model.peft_config.values()):
        raise UserError(
            "a DoRA adapter's magnitude vectors have no GGUF LoRA form: export the merged model instead"
        )
    tensors = lora_tensors(model)
    if not tensors:
        raise UserError("No LoRA layers in this model: --adapter exports an adapter method's update.")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(
        gguf.Keys.Adapter.LORA_ALPHA, 0.0
    )  # 0: llama.cpp applies B·A at scale 1; PEFT's scaling is in B
    writer.add_name(name or "edgeadapt adapter")
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array.astype(LORA_DTYPES[dtype]))
    finish(writer)
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


def export_run(
    run_dir: str, variant: str, out: Path, dtype: str = "f16", adapter: bool = False
) -> dict[str, Any]:
    """`edgeadapt export gguf`: the variant's update merged into the base as one GGUF model, or with
    `adapter` the update alone as a GGUF LoRA that llama.cpp applies to the base it already holds."""
    check_dtype(dtype, adapter)
    run, results = reopen(run_dir, [], "export")
    check_variants(run, results, [variant], allow_base=not adapter)
    if variant != "base":
        trained_results(run)
        capabilities = run.method(variant).capabilities
        refusal = capabilities.gguf or (
            None if capabilities.lora_family or not adapter else f"{variant} is not an adapter"
        )
        if adapter and not refusal and capabilities.gguf_lora:
            refusal = f"{capabilities.gguf_lora}; export the merged model (without --adapter)"
        if refusal:
            raise UserError(f"{variant}: {refusal}.")
    if adapter:
        name = f"{run.cfg.model.name} + {variant}"
        write_lora(run.open(variant, torch.float32, merge=False).model, out, name, dtype)
        return {
            "path": str(out),
            "bytes": out.stat().st_size,
            "dtype": dtype,
            "variant": variant,
            "kind": "lora adapter",
        }
    model = run.open(None if variant == "base" else variant, torch.float32).model
    write(
        model,
        run.tokenizer,
        out,
        dtype,
        f"{run.cfg.model.name} + {variant}",
        source_pre_tokenizer(run.cfg.model.name),
    )
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "dtype": dtype,
        "variant": variant,
        "kind": "merged model",
    }
