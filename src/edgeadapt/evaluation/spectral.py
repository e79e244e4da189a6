"""What an update looks like: spectra of weight updates, attention structure and representation drift.

Pure tensor functions, checked by hand in tests:
- `effective_rank` = exp(H(σ/Σσ)), the entropy-based rank of a singular value spectrum;
- `stable_rank` = ‖ΔW‖F² / ‖ΔW‖₂² = Σσ² / σ₁²;
- `subspace_overlap`: ‖U_ΔWᵀ U_W‖F² / k for the top-k left singular vectors of the update and of the base
  weight: 1 when the update acts in the base weight's dominant output directions, ~k/n for random ones;
- `attention_entropy`: mean entropy of attention rows (nats) per layer;
- `attention_js`: mean Jensen–Shannon divergence (nats, ≤ ln 2) between two models' attention rows;
- `linear_cka`: linear centred kernel alignment of two sets of hidden states (1 = same up to rotation and
  scale).
"""

from __future__ import annotations

import math

import torch


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values, with those below float32 rounding of the largest (as in matrix_rank) set to 0."""
    sv = torch.linalg.svdvals(matrix.detach().double().cpu())
    tolerance = max(matrix.shape) * torch.finfo(torch.float32).eps * (sv[0] if len(sv) else 0)
    return torch.where(sv > tolerance, sv, torch.zeros_like(sv))


def effective_rank(sv: torch.Tensor) -> float:
    p = sv[sv > 0] / sv.sum()
    return math.exp(float(-(p * p.log()).sum())) if len(p) else 0.0


def stable_rank(sv: torch.Tensor) -> float:
    return float((sv**2).sum() / sv[0] ** 2) if len(sv) and sv[0] > 0 else 0.0


def top_left_vectors(matrix: torch.Tensor, k: int) -> torch.Tensor:
    u, _, _ = torch.linalg.svd(matrix.detach().double().cpu(), full_matrices=False)
    return u[:, :k]


def subspace_overlap(update: torch.Tensor, base: torch.Tensor, k: int) -> float:
    """Share of the update's top-k output directions inside the base weight's top-k output subspace."""
    k = min(k, *update.shape)
    u_update, u_base = top_left_vectors(update, k), top_left_vectors(base, k)
    return float((u_update.T @ u_base).pow(2).sum() / k)


def _row_entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def attention_entropy(attention: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean entropy of the attention rows of one layer: `attention` [batch, heads, query, key]."""
    rows = _row_entropy(attention.double())  # [batch, heads, query]
    if mask is None:
        return float(rows.mean())
    weight = mask[:, None, :].double().expand_as(rows)
    return float((rows * weight).sum() / weight.sum())


def attention_js(p: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean Jensen–Shannon divergence between matching attention rows of two models (same shapes)."""
    p, q = p.double(), q.double()
    m = (p + q) / 2
    rows = _row_entropy(m) - (_row_entropy(p) + _row_entropy(q)) / 2
    if mask is None:
        return float(rows.mean())
    weight = mask[:, None, :].double().expand_as(rows)
    return float((rows * weight).sum() / weight.sum())


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of [n, d1] and [n, d2] representations of the same n inputs."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).pow(2).sum()
    return float(cross / ((x.T @ x).pow(2).sum().sqrt() * (y.T @ y).pow(2).sum().sqrt()))
