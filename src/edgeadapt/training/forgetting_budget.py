"""A forgetting budget during training (`train.forgetting_budget_pct`).

At every curve evaluation the general held-out loss is turned into a perplexity change against step 0:
degradation = (exp(loss - loss_0) - 1) x 100. Among the evaluations within the budget, the one with the best
domain validation loss is kept (its trainable weights are copied aside, then restored when training ends);
after `train.budget_patience` evaluations in a row over budget, training stops early. Step 0, the model
before training, is always within budget, so something is always kept.

The curve's losses are averages over batches (the Trainer's evaluation), an estimate of the final
`general_ppl`, which `edgeadapt eval` measures exactly. After `--resume`, the choice is made among the
evaluations made since the resume point, against the step-0 loss recorded in the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback


class ForgettingBudget(TrainerCallback):
    def __init__(self, model: nn.Module, budget_pct: float, patience: int):
        self.model, self.budget_pct, self.patience = model, budget_pct, patience
        self.general_0: float | None = None
        self.pending: dict[int, dict[str, float]] = {}
        self.best: dict[str, Any] | None = None
        self.snapshot: dict[str, torch.Tensor] = {}
        self.over = 0
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        for entry in state.log_history:  # resuming: the step-0 loss is in the restored history
            if entry.get("step") == 0 and "eval_general_loss" in entry:
                self.general_0 = entry["eval_general_loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        point = self.pending.setdefault(state.global_step, {})
        point.update(
            {k: v for k, v in (metrics or {}).items() if k in ("eval_domain_loss", "eval_general_loss")}
        )
        if len(point) < 2:
            return  # the Trainer evaluates domain and general one after the other
        self.pending.pop(state.global_step)
        if self.general_0 is None:
            self.general_0 = point["eval_general_loss"]
        degradation = (math.exp(point["eval_general_loss"] - self.general_0) - 1) * 100
        if degradation <= self.budget_pct:
            self.over = 0
            if self.best is None or point["eval_domain_loss"] < self.best["domain_loss"]:
                self.best = {
                    "step": state.global_step,
                    "domain_loss": point["eval_domain_loss"],
                    "general_degradation_pct": degradation,
                }
                self.snapshot = {
                    n: p.detach().to("cpu", copy=True)
                    for n, p in self.model.named_parameters()
                    if p.requires_grad
                }
        else:
            self.over += 1
            if self.over >= self.patience:
                self.stopped_at = state.global_step
                control.should_training_stop = True

    @torch.no_grad()
    def restore(self) -> None:
        """Put the kept evaluation's trainable weights back into the model."""
        params = dict(self.model.named_parameters())
        for name, value in self.snapshot.items():
            params[name].copy_(value.to(params[name].device))

    def summary(self, last_step: int) -> dict[str, Any]:
        kept = self.best or {}
        if not kept:
            reason = "no evaluation since the resume point was within budget; the last weights were kept"
        elif kept["step"] == last_step:
            reason = "the last evaluation was within budget and had the best domain validation loss"
        else:
            reason = (
                f"best domain validation loss among the evaluations within {self.budget_pct:g}% "
                "general degradation"
            )
        if self.stopped_at is not None:
            reason += (
                f"; stopped early at step {self.stopped_at} after {self.patience} evaluations over budget"
            )
        return {
            "budget_pct": self.budget_pct,
            "kept_step": kept.get("step"),
            "kept_domain_loss": kept.get("domain_loss"),
            "kept_general_degradation_pct": kept.get("general_degradation_pct"),
            "stopped_early_at": self.stopped_at,
            "reason": reason,
        }
