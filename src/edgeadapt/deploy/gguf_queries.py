"""The router's query on a llama.cpp device, read from the base GGUF with no transformers model: the mean
hidden state of a prompt at layer 0 (the token embeddings) or layer 1 (after the first decoder block,
computed here in PyTorch from that block's GGUF tensors). The same numbers `routing.queries` gives from the
transformers model, so a router trained on the workstation routes the same on the device (tested).

The GGUF keeps q and k in llama.cpp's layout (rows permuted for its RoPE on adjacent pairs), so the block
here rotates adjacent pairs, as llama.cpp does, instead of undoing the permutation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from edgeadapt.core.errors import UserError

BLOCK = (
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
)


def read_tensors(path: Path, names: set[str]) -> dict[str, torch.Tensor]:
    """The named tensors of a GGUF file, dequantized to float32, in PyTorch's (out, in) layout."""
    import gguf

    out = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        if tensor.name in names:
            shape = tuple(reversed([int(n) for n in tensor.shape]))
            data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            out[tensor.name] = torch.from_numpy(np.asarray(data, dtype=np.float32).reshape(shape).copy())
    missing = names - set(out)
    if missing:
        raise UserError(f"{path}: no tensor {sorted(missing)[0]} (not a llama GGUF this router can read)")
    return out


def metadata(path: Path) -> dict[str, float]:
    import gguf

    fields = gguf.GGUFReader(str(path)).fields

    def value(key: str, default=None):
        field = fields.get(key)
        return field.contents() if field is not None else default

    return {
        "heads": int(value("llama.attention.head_count")),
        "kv_heads": int(value("llama.attention.head_count_kv")),
        "rope_base": float(value("llama.rope.freq_base", 10000.0)),
        "eps": float(value("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "layers": int(value("llama.block_count")),
    }


class GgufQueries:
    """prompt ids -> the router's queries at `layer` (0 or 1), from a llama GGUF base."""

    def __init__(self, path: Path, layer: int):
        if layer not in (0, 1):
            raise UserError(
                f"router.layer {layer}: a llama.cpp device computes the router's query at layer 0 or 1 only "
                "(train the library's router with router.layer=0 or 1)"
            )
        self.layer, self.meta = layer, metadata(path)
        names = {"token_embd.weight"} | ({f"blk.0.{n}.weight" for n in BLOCK} if layer == 1 else set())
        self.w = read_tensors(path, names)

    def __call__(self, prompts: list[list[int]], layer: int | None = None) -> torch.Tensor:
        if layer is not None and layer != self.layer:
            raise UserError(f"this device's router reads layer {self.layer}, not {layer}")
        rows = [self.hidden(torch.tensor(p, dtype=torch.long)).mean(0) for p in prompts]
        return torch.stack(rows) if rows else torch.zeros(0, self.w["token_embd.weight"].shape[1])

    @torch.no_grad()
    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.w["token_embd.weight"][ids]
        return x if self.layer == 0 else self.block(x)

    def block(self, x: torch.Tensor) -> torch.Tensor:
        """Llama's first decoder block: RMSNorm, causal GQA attention with RoPE on adjacent pairs, SwiGLU."""
        w, m = lambda n: self.w[f"blk.0.{n}.weight"], self.meta  # noqa: E731
        h = rms_norm(x, w("attn_norm"), m["eps"])
        q, k, v = h @ w("attn_q").T, h @ w("attn_k").T, h @ w("attn_v").T
        n, heads, kv = x.shape[0], m["heads"], m["kv_heads"]
        dim = q.shape[-1] // heads
        q, k = (
            rope_pairs(q.view(n, heads, dim), m["rope_base"]),
            rope_pairs(k.view(n, kv, dim), m["rope_base"]),
        )
        v = v.view(n, kv, dim)
        k, v = k.repeat_interleave(heads // kv, dim=1), v.repeat_interleave(heads // kv, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(dim)
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
        attended = torch.einsum("hqk,khd->qhd", torch.softmax(scores, -1), v).reshape(n, heads * dim)
        x = x + attended @ w("attn_output").T
        h = rms_norm(x, w("ffn_norm"), m["eps"])
        return x + (torch.nn.functional.silu(h @ w("ffn_gate").T) * (h @ w("ffn_up").T)) @ w("ffn_down").T


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_pairs(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary position embedding on adjacent pairs (x0, x1), (x2, x3), ... as llama.cpp applies it to the
    permuted q and k rows of a llama GGUF. x: (tokens, heads, dim)."""
    n, _, dim = x.shape
    freqs = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = torch.arange(n, dtype=torch.float32)[:, None] * freqs[None, :]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
