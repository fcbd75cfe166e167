"""Smoothness regularisers of a displacement field ``(B, ndim, *spatial)`` in mm along the grid axes.

``spacing`` is mm per voxel along ``(i, j[, k])``: derivatives are taken in mm, so first derivatives are
dimensionless and the penalties mean the same at any resolution. Each returns the mean over voxels.
"""

from __future__ import annotations

import abc

import torch

from learnreg.field import spatial_gradient
from learnreg.options import REGULARISER_NAMES


class TotalVariation(torch.nn.Module):
    """Isotropic total variation: mean over voxels of ``sqrt(sum_{c,a} (du_c/dx_a)^2 + eps)`` (R2N2)."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, field: torch.Tensor, spacing) -> torch.Tensor:
        squared = sum((g ** 2).sum(dim=1) for g in spatial_gradient(field, spacing))
        return torch.sqrt(squared + self.eps).mean()


class QuadraticRegulariser(torch.nn.Module, abc.ABC):
    """A regulariser that is a sum of squared linear derivatives of the field: a transformation model that
    offers ``quadratic_energy`` (the B-spline) computes it from its parameters instead of its dense field."""

    @abc.abstractmethod
    def terms(self, ndim: int) -> list:
        """``(weight, orders)`` per squared derivative: ``orders`` counts the differentiations per axis."""

    def of_model(self, model: torch.nn.Module, field: torch.Tensor, spacing) -> torch.Tensor:
        """The regulariser of ``model``, whose dense field is ``field``."""
        if hasattr(model, "quadratic_energy"):
            return model.quadratic_energy(self.terms(field.dim() - 2), spacing)
        return self(field, spacing)


class Diffusion(QuadraticRegulariser):
    """Diffusion (membrane energy): mean over voxels of ``sum_{c,a} (du_c/dx_a)^2``."""

    def terms(self, ndim: int) -> list:
        return [(1.0, tuple(int(a == b) for b in range(ndim))) for a in range(ndim)]

    def forward(self, field: torch.Tensor, spacing) -> torch.Tensor:
        return sum((g ** 2).sum(dim=1) for g in spatial_gradient(field, spacing)).mean()


class BendingEnergy(QuadraticRegulariser):
    """Bending energy: mean over voxels of ``sum_c sum_{a,b} (d2u_c/dx_a dx_b)^2`` (in 1/mm^2 x mm^2 = 1/mm)."""

    def terms(self, ndim: int) -> list:
        out = []
        for a in range(ndim):
            for b in range(a, ndim):
                orders = [0] * ndim
                orders[a] += 1
                orders[b] += 1
                out.append((1.0 if a == b else 2.0, tuple(orders)))
        return out

    def forward(self, field: torch.Tensor, spacing) -> torch.Tensor:
        first = spatial_gradient(field, spacing)
        total = 0.0
        for a, da in enumerate(first):
            second = spatial_gradient(da, spacing)
            for b, dab in enumerate(second):
                # mixed terms appear twice in the sum over (a, b); compute them once, weight 2
                if b < a:
                    continue
                total = total + (1.0 if a == b else 2.0) * (dab ** 2).sum(dim=1)
        return total.mean()


REGULARISERS = dict(zip(REGULARISER_NAMES, (TotalVariation, Diffusion, BendingEnergy)))
