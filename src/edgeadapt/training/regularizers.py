"""Terms added to the training loss that pull a model back toward its base on general text: the KL to the
base (`train.kl_to_base`) and EWC (`train.ewc`). Both are regularizers of the one training loop (the
Trainer adds `penalty(model)` to each step's loss, see `training.loop`), so every method can use them.

Each keeps what it cost: the seconds it added (setup and per step) and the memory it holds, which the run's
train_result.json reports beside the training time.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeadapt.core.errors import UserError
from edgeadapt.data.collate import labelled_positions


def kl_to_reference(
    tuned_logits: torch.Tensor, base_logits: torch.Tensor, mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 x KL(p_base || p_tuned) at temperature T, averaged over the positions where `mask` is true."""
    t = temperature
    base_logp = F.log_softmax(base_logits.float() / t, dim=-1)
    tuned_logp = F.log_softmax(tuned_logits.float() / t, dim=-1)
    per_position = (base_logp.exp() * (base_logp - tuned_logp)).sum(-1)
    return per_position[mask].mean() * t * t


def adapter_off(model: nn.Module):
    """PEFT's public context manager that runs the base without the adapter (None for a plain model)."""
    return getattr(model, "disable_adapter", None)


class Regularizer:
    name = ""

    def __init__(self, weight: float):
        self.weight = weight
        self.setup_seconds = 0.0
        self.step_seconds = 0.0
        self.steps = 0
        self.penalty_sum = 0.0
        self.memory_bytes = 0

    def penalty(self, model: nn.Module, step: int = 0) -> torch.Tensor:
        """The weighted term at optimizer step `step` (which general batch it reads: a resumed run reads the
        batches an uninterrupted one would)."""
        start = time.perf_counter()
        value = self.term(model, step)
        self.steps += 1
        self.penalty_sum += float(value.detach())
        self.step_seconds += time.perf_counter() - start
        return self.weight * value

    def term(self, model: nn.Module, step: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "mean_term": self.penalty_sum / self.steps if self.steps else None,
            "setup_seconds": round(self.setup_seconds, 2),
            "seconds_per_step": round(self.step_seconds / self.steps, 4) if self.steps else None,
            "memory_bytes": self.memory_bytes,
        }


class KLToBase(Regularizer):
    """KL(base || tuned) on batches of general rows, one per optimizer step in turn. The base is the model
    with its adapter off when that gives the model training starts from (checked on one batch: LoRA's adapter
    starts at zero); otherwise (full fine-tuning; PiSSA, whose adapter starts from the base's principal part;
    ADAPT-Q, whose adapter starts compensating its quantization) a frozen copy of the starting model."""

    name = "kl_to_base"

    def __init__(
        self,
        model: nn.Module,
        rows: list[dict],
        collate: Callable,
        weight: float,
        temperature: float,
        batch_size: int,
    ):
        super().__init__(weight)
        start = time.perf_counter()
        if not rows:
            raise UserError("train.kl_to_base: no general rows to compare with the base")
        self.temperature = temperature
        self.batches = [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
        self.frozen = None if self.adapter_is_base(model, collate(rows[:1])) else frozen_copy(model)
        if self.frozen is not None:
            self.memory_bytes = sum(p.numel() * p.element_size() for p in self.frozen.parameters())
        self.setup_seconds = time.perf_counter() - start

    @staticmethod
    @torch.no_grad()
    def adapter_is_base(model: nn.Module, batch: dict[str, torch.Tensor]) -> bool:
        off = adapter_off(model)
        if off is None:
            return False
        inputs = to_device(batch, model)
        was_training = model.training
        model.eval()
        with_adapter = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        with off():
            without = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        model.train(was_training)
        return torch.allclose(with_adapter, without, rtol=1e-4, atol=1e-4)

    def base_logits(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        reference = self.frozen if self.frozen is not None else model
        context = adapter_off(model)() if self.frozen is None else nullcontext()
        with torch.no_grad(), context:
            return reference(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits

    def term(self, model: nn.Module, step: int = 0) -> torch.Tensor:
        inputs = to_device(self.batches[step % len(self.batches)], model)
        base = self.base_logits(model, inputs)
        tuned = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return kl_to_reference(tuned, base, labelled_positions(inputs["labels"]), self.temperature)


class EWC(Regularizer):
    """Elastic weight consolidation: the diagonal (empirical) Fisher of the starting model on general rows,
    one backward pass per row, scaled to mean 1 over the trained parameters; the term is
    1/2 x sum F (theta - theta0)^2, zero where training starts."""

    name = "ewc"

    def __init__(self, model: nn.Module, rows: list[dict], collate: Callable, weight: float):
        super().__init__(weight)
        start = time.perf_counter()
        if not rows:
            raise UserError("train.ewc: no general rows to estimate the Fisher from")
        trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in trained.items()}
        was_training = model.training
        model.eval()
        for row in rows:
            model.zero_grad(set_to_none=True)
            inputs = to_device(collate([row]), model)
            model(**inputs).loss.backward()
            for n, p in trained.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach().float() ** 2
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        total = sum(f.sum() for f in fisher.values())
        count = sum(f.numel() for f in fisher.values())
        if not count or not torch.isfinite(total) or total <= 0:
            raise UserError(
                "train.ewc: the Fisher is zero or not finite on these rows; EWC cannot weigh them"
            )
        scale = count / total
        self.fisher = {n: f * scale for n, f in fisher.items()}
        self.anchor = {n: p.detach().clone() for n, p in trained.items()}
        self.memory_bytes = sum(
            f.numel() * 4 + self.anchor[n].numel() * self.anchor[n].element_size()
            for n, f in self.fisher.items()
        )
        self.setup_seconds = time.perf_counter() - start

    def term(self, model: nn.Module, step: int = 0) -> torch.Tensor:
        named = dict(model.named_parameters())
        return 0.5 * sum(
            (self.fisher[n] * (named[n].float() - self.anchor[n].float()) ** 2).sum() for n in self.fisher
        )


def frozen_copy(model: nn.Module) -> nn.Module:
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def to_device(batch: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}
