"""Label losses for (soft) segmentations ``(B, L, *spatial)``: one channel per label, values in [0, 1]."""

from __future__ import annotations

import torch


class SoftDice(torch.nn.Module):
    """``1 - `` mean soft Dice over labels (and batch)."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, fixed_labels: torch.Tensor, warped_labels: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, fixed_labels.dim()))
        overlap = (fixed_labels * warped_labels).sum(dim=dims)
        total = fixed_labels.sum(dim=dims) + warped_labels.sum(dim=dims)
        return 1.0 - ((2 * overlap + self.eps) / (total + self.eps)).mean()


class LabelMSE(torch.nn.Module):
    """Mean squared difference of label maps (ISTN's structure loss)."""

    def forward(self, fixed_labels: torch.Tensor, warped_labels: torch.Tensor) -> torch.Tensor:
        return ((fixed_labels - warped_labels) ** 2).mean()


def one_hot(labels: torch.Tensor, values) -> torch.Tensor:
    """Integer label map ``(B, 1, *spatial)`` to ``(B, len(values), *spatial)`` float channels."""
    return torch.cat([(labels == v).to(torch.float32) for v in values], dim=1)


def hard_dice(fixed_structures: torch.Tensor, warped_structures: torch.Tensor) -> torch.Tensor:
    """Dice per pair and structure ``(B, S)`` of maps thresholded at 0.5 (1 where both are empty)."""
    a, b = fixed_structures > 0.5, warped_structures > 0.5
    dims = tuple(range(2, a.dim()))
    overlap = (a & b).sum(dims).float()
    total = (a.sum(dims) + b.sum(dims)).float()
    return torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.ones_like(total))
