"""Frozen low-precision linear layers, and the bytes a model's weights hold in memory.

4 and 8 bit come from bitsandbytes (NF4/FP4 `Linear4bit`, LLM.int8 `Linear8bitLt`), which run forward and
backward on the CPU and on CUDA; 16 bit stores the weight in bf16 and computes in the input's dtype; 32 bit
leaves the layer as it is. Quantized layers are frozen: gradients flow through them to earlier layers,
never into them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeadapt.models.quant_choices import BITS


class Linear16(nn.Module):
    """A frozen linear layer stored in bf16 that computes in the dtype of its input."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        bias = linear.bias
        self.bias = (
            None if bias is None else nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


def quantized(linear: nn.Linear, bits: int, quant_type: str = "nf4") -> nn.Module:
    """A frozen copy of `linear` at `bits` (the weights are quantized when placed on their device)."""
    if bits == 32:
        linear.requires_grad_(False)
        return linear
    if bits == 16:
        return Linear16(linear)
    import bitsandbytes as bnb

    device, weight = linear.weight.device, linear.weight.detach()
    has_bias = linear.bias is not None
    if bits == 4:
        # Compute in bf16 on CUDA (as training autocasts) and fp32 on the CPU.
        compute = torch.bfloat16 if device.type == "cuda" else torch.float32
        layer = bnb.nn.Linear4bit(
            linear.in_features, linear.out_features, has_bias, compute, quant_type=quant_type, device="meta"
        )
        layer.weight = bnb.nn.Params4bit(weight.to("cpu"), requires_grad=False, quant_type=quant_type)
        # On CPUs with AVX512-BF16, bitsandbytes repacks the weight at the first inference-only forward and
        # computes with bf16 block scales from then on: eval would then run other numerics than training,
        # and the figures would depend on which CPU measured them. One path everywhere.
        layer.support_avx512bf16_for_cpu = False
    elif bits == 8:
        layer = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, has_bias, has_fp16_weights=False, device="meta"
        )
        layer.weight = bnb.nn.Int8Params(weight.to("cpu"), requires_grad=False, has_fp16_weights=False)
    else:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    if has_bias:
        layer.bias = nn.Parameter(linear.bias.detach().to("cpu"), requires_grad=False)
    return layer.to(device)  # bitsandbytes quantizes on this move


def dequantized_weight(layer: nn.Module) -> torch.Tensor:
    """A frozen linear layer's weight in fp32, whatever precision `quantized` stored it in."""
    weight = layer.weight
    if getattr(weight, "quant_state", None) is not None:  # 4 bit
        import bitsandbytes.functional as bnbf

        return bnbf.dequantize_4bit(weight.data, weight.quant_state).float()
    if getattr(weight, "SCB", None) is not None:  # 8 bit: int8 rows with one absmax scale each
        return weight.data.float() * weight.SCB.float().unsqueeze(1) / 127
    return weight.detach().float()


def quantize_linears(module: nn.Module, bits: int, quant_type: str = "nf4") -> int:
    """Replace every nn.Linear inside `module` by its frozen `bits` version; return how many."""
    count = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear:
            setattr(module, name, quantized(child, bits, quant_type))
            count += 1
        else:
            count += quantize_linears(child, bits, quant_type)
    return count


def quantize_blocks(model: nn.Module, bits: int = 4, quant_type: str = "nf4") -> nn.Module:
    """Every linear layer of the decoder blocks frozen at `bits` (embeddings and LM head stay as they are)."""
    from edgeadapt.models.structure import decoder_layers

    for block in decoder_layers(model):
        quantize_linears(block, bits, quant_type)
    return model


def _quant_stats(param: torch.Tensor, module: nn.Module) -> list[torch.Tensor]:
    """Quantization statistics kept beside a quantized weight: block absmax and code maps, or row scales."""
    tensors = []
    state = getattr(param, "quant_state", None)
    while state is not None:  # 4 bit: the block scales are quantized too (nested state)
        tensors += [t for t in (state.absmax, state.code) if isinstance(t, torch.Tensor)]
        state = getattr(state, "state2", None)  # absent once bitsandbytes repacked it for the CPU
    for owner in (param, getattr(module, "state", None)):
        scb = getattr(owner, "SCB", None)
        if isinstance(scb, torch.Tensor):
            tensors.append(scb)
            break
    return tensors


def weight_bytes(model: nn.Module) -> int:
    """Bytes the model's parameters occupy in memory as stored, with quantization statistics.

    Tensors shared between modules (tied embeddings, a code map used by many layers) count once.
    """
    seen, total = set(), 0
    for module in model.modules():
        for param in module._parameters.values():
            if param is None:
                continue
            for tensor in [param, *_quant_stats(param, module)]:
                if tensor.data_ptr() not in seen:
                    seen.add(tensor.data_ptr())
                    total += tensor.numel() * tensor.element_size()
    return total
