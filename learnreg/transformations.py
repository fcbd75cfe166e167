"""Transformation models as small torch modules (AirLab style): each produces a pull displacement field.

Every model evaluates to a field ``(1, ndim, *spatial)`` in mm along the axes of its current grid,
components ordered ``(i, j[, k])``. :meth:`set_grid` moves a model to another grid over the same field
of view (a pyramid level) without changing the transformation it describes, except the dense model,
which is resampled.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from learnreg.image import Grid
from learnreg.warp import axis_coordinate_tensor


class AffineTransformation(torch.nn.Module):
    """``u(x) = (A - I)(x - c) + t`` in the grid's axis frame (mm), about the grid centre ``c``.

    Args:
        grid: the grid to evaluate on.
        initial_translation: ``t`` at the start, mm along the grid axes (e.g. aligning image centres).
        translation_scale: mm per unit of the translation parameter, so matrix and translation take
            steps of similar size under one learning rate.
    """

    def __init__(self, grid: Grid, initial_translation=None, translation_scale: float = 10.0) -> None:
        super().__init__()
        nd = grid.ndim
        self.translation_scale = float(translation_scale)
        self.matrix_offset = torch.nn.Parameter(torch.zeros(nd, nd))  # A - I
        t0 = torch.zeros(nd) if initial_translation is None else torch.as_tensor(initial_translation, dtype=torch.float32)
        self.translation = torch.nn.Parameter(t0 / self.translation_scale)
        self.set_grid(grid)

    def set_grid(self, grid: Grid) -> None:
        device = self.matrix_offset.device
        coords = axis_coordinate_tensor(grid, device=device)
        centre = torch.as_tensor(grid.extent_mm[: grid.ndim] / 2, dtype=torch.float32, device=device)
        self.register_buffer("centred", coords - centre.view(-1, *[1] * grid.ndim), persistent=False)

    @property
    def parameter_count(self) -> int:
        return self.matrix_offset.numel() + self.translation.numel()

    def matrix(self) -> torch.Tensor:
        """The linear part ``A`` (ndim x ndim) in the axis frame."""
        return self.matrix_offset + torch.eye(self.matrix_offset.shape[0], device=self.matrix_offset.device)

    def forward(self) -> torch.Tensor:
        nd = self.matrix_offset.shape[0]
        linear = torch.einsum("ab,b...->a...", self.matrix_offset, self.centred)
        t = (self.translation * self.translation_scale).view(-1, *[1] * nd)
        return (linear + t).unsqueeze(0)


def cubic_bspline_weights(f: torch.Tensor) -> torch.Tensor:
    """The four uniform cubic B-spline weights for fractional positions ``f`` in [0, 1): ``(..., 4)``."""
    f2, f3 = f * f, f * f * f
    return torch.stack([(1 - f) ** 3 / 6, (3 * f3 - 6 * f2 + 4) / 6, (-3 * f3 + 3 * f2 + 3 * f + 1) / 6, f3 / 6],
                       dim=-1)


def bspline_basis_matrix(positions_mm: np.ndarray, spacing_mm: float, count: int) -> torch.Tensor:
    """``(len(positions), count)`` matrix of cubic B-spline weights; control point m sits at ``(m-1) h``."""
    t = torch.as_tensor(positions_mm, dtype=torch.float64) / spacing_mm
    base = torch.floor(t).clamp(0, count - 4)
    weights = cubic_bspline_weights(t - base)
    basis = torch.zeros(len(positions_mm), count, dtype=torch.float64)
    rows = torch.arange(len(positions_mm))
    for o in range(4):
        basis[rows, base.long() + o] = weights[:, o]
    return basis


def control_point_count(extent_mm: float, spacing_mm: float) -> int:
    """Control points needed along an axis of the given extent (covering it with cubic support)."""
    return int(math.floor(extent_mm / spacing_mm + 1e-9)) + 4


class BSplineTransformation(torch.nn.Module):
    """Cubic B-spline free-form deformation with control points every ``control_spacing_mm``.

    Control points are placed in the grid's axis frame (mm from the first voxel), so the same
    coefficients describe the same deformation on every pyramid level. The dense field is evaluated
    separably: one basis matrix per axis.

    Args:
        grid: the grid to evaluate on.
        control_spacing_mm: distance between control points along each active axis ``(i, j[, k])``.
    """

    def __init__(self, grid: Grid, control_spacing_mm) -> None:
        super().__init__()
        nd = grid.ndim
        spacing = np.broadcast_to(np.asarray(control_spacing_mm, dtype=float), (nd,))
        self.control_spacing_mm = tuple(float(s) for s in spacing)
        self.counts = tuple(control_point_count(grid.extent_mm[a], spacing[a]) for a in range(nd))
        self.coefficients = torch.nn.Parameter(torch.zeros(nd, *reversed(self.counts)))
        self.set_grid(grid)

    def set_grid(self, grid: Grid) -> None:
        device = self.coefficients.device
        self._grams: dict[tuple, list[torch.Tensor]] = {}  # quadratic_energy's per-axis Gram matrices
        for a, positions in enumerate(grid.axis_coordinates()):
            basis = bspline_basis_matrix(positions, self.control_spacing_mm[a], self.counts[a])
            self.register_buffer(f"basis_{a}", basis.float().to(device), persistent=False)

    @property
    def parameter_count(self) -> int:
        return self.coefficients.numel()

    def bases(self) -> list[torch.Tensor]:
        return [getattr(self, f"basis_{a}") for a in range(self.coefficients.shape[0])]

    def forward(self) -> torch.Tensor:
        return evaluate_separable(self.coefficients, self.bases()).unsqueeze(0)

    def quadratic_energy(self, terms, spacing) -> torch.Tensor:
        """The regulariser given by ``terms`` of this model's field, from its coefficients
        (:func:`separable_quadratic_energy`)."""
        return separable_quadratic_energy(self.coefficients, self.bases(), terms, spacing, self._grams)

    def fit(self, field: torch.Tensor) -> None:
        """Set the coefficients to the least-squares fit of a field ``(1, ndim, *spatial)`` on the current grid."""
        pinvs = [torch.linalg.pinv(b.double()).float() for b in self.bases()]
        with torch.no_grad():
            self.coefficients.copy_(evaluate_separable(field[0], pinvs))


class SymmetricQuadraticForm(torch.autograd.Function):
    """``x . (G x)`` for a symmetric operator ``G``, given ``x`` and ``G x`` (computed without autograd): the
    gradient ``2 G x`` comes from the same product, so the form costs one application of ``G``, not three."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, applied: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(applied)
        return (x * applied).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (applied,) = ctx.saved_tensors
        return 2 * grad * applied, None


def separable_quadratic_energy(values: torch.Tensor, bases: list[torch.Tensor], terms, spacing,
                               grams: dict) -> torch.Tensor:
    """``sum over terms of weight * mean over voxels of sum_c (D u_c)^2`` for the field
    ``u = evaluate_separable(values, bases)`` of ``(C, *counts)`` coefficients (``C``: components, or batch x
    components, all summed), with derivative operators ``D`` given per term as ``(weight, orders)`` (how many times
    to differentiate along each axis ``i, j[, k]``) as the dense field's finite differences (``torch.gradient``,
    ``spacing`` per axis), but computed on the coefficients: ``|| (M_i x M_j x M_k) c ||^2 =
    c . (M_i^T M_i x M_j^T M_j x M_k^T M_k) c`` with small Gram matrices, so it costs nothing like evaluating the
    field. Equal to the same regulariser applied to the dense field (:mod:`learnreg.losses.regularisers`).
    ``grams`` caches the Gram matrices between calls; empty it when the bases change."""
    voxels = int(np.prod([b.shape[0] for b in bases]))
    spacing = tuple(float(s) for s in spacing[: len(bases)])
    with torch.no_grad():  # the symmetric operator applied once: value c.(Gc), gradient 2Gc
        applied = sum(weight * evaluate_separable(values, _derivative_grams(bases, tuple(orders), spacing, grams))
                      for weight, orders in terms)
    return SymmetricQuadraticForm.apply(values, applied) / voxels


def _derivative_grams(bases: list[torch.Tensor], orders: tuple, spacing: tuple, grams: dict) -> list[torch.Tensor]:
    """``M_a^T M_a`` per axis, ``M_a`` the basis differentiated ``orders[a]`` times; cached in ``grams``."""
    key = (orders, spacing, bases[0].device, bases[0].dtype)
    if key not in grams:
        out = []
        for a, basis in enumerate(bases):
            m = basis
            for _ in range(orders[a]):
                m = torch.gradient(m, spacing=spacing[a], dim=0)[0] if m.shape[0] > 1 else torch.zeros_like(m)
            out.append(m.T @ m)
        grams[key] = out
    return grams[key]


def evaluate_separable(values: torch.Tensor, matrices: list[torch.Tensor]) -> torch.Tensor:
    """Apply one matrix per axis to ``(C, *spatial)`` values; ``matrices[a]`` acts on axis ``a`` (i first).

    Each axis is one (batched) matrix product over the memory as it lies (``i``, the last dim: ``values @ M^T``;
    another axis: ``M @`` the values with the axes after it flattened), so no transposed copy is made: twice as
    fast, forward and backward, as contracting with ``tensordot`` and moving the axis back."""
    out = values
    for a, m in enumerate(matrices):
        if a == 0:  # axis i is the last dim of (C, *spatial)
            out = out @ m.T
            continue
        dim = out.dim() - 1 - a
        lead, trail = out.shape[:dim], out.shape[dim + 1:]
        out = (m @ out.reshape(*lead, out.shape[dim], -1)).reshape(*lead, m.shape[0], *trail)
    return out


class FixedField(torch.nn.Module):
    """A field that does not change (a start that later stages build on): ``(1, ndim, *spatial)`` in mm along
    the axes of the grid it was given on; on another grid over the same field of view it is interpolated
    linearly from that original (exact at the first and last voxel centres, which pyramid levels keep).

    ``composed``: later stages are composed with this field (this one first, then their displacement ``b``:
    ``u(x) + b(x + u(x))``) instead of added to it, so that they cannot fold a folding-free start (see
    :class:`~learnreg.classical.optimise.FixedStage`).
    """

    def __init__(self, field: torch.Tensor, grid: Grid, composed: bool = False) -> None:
        super().__init__()
        self.composed = composed
        self.register_buffer("original", field.detach().float(), persistent=False)
        self.original_shape = tuple(grid.spatial_shape)
        self.set_grid(grid)

    def set_grid(self, grid: Grid) -> None:
        if tuple(grid.spatial_shape) == self.original_shape:
            self.register_buffer("current", self.original, persistent=False)
            return
        mode = "trilinear" if grid.ndim == 3 else "bilinear"
        resized = F.interpolate(self.original, size=grid.spatial_shape, mode=mode, align_corners=True)
        self.register_buffer("current", resized, persistent=False)

    @property
    def parameter_count(self) -> int:
        return 0

    def forward(self) -> torch.Tensor:
        return self.current


class DenseTransformation(torch.nn.Module):
    """A displacement per voxel (the DeepReg tutorial's DDF); resampled when moved to another grid."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.displacement = torch.nn.Parameter(torch.zeros(1, grid.ndim, *grid.spatial_shape))

    def set_grid(self, grid: Grid) -> None:
        if tuple(self.displacement.shape[2:]) == tuple(grid.spatial_shape):
            return
        mode = "trilinear" if grid.ndim == 3 else "bilinear"
        with torch.no_grad():
            resized = F.interpolate(self.displacement.data, size=grid.spatial_shape, mode=mode, align_corners=True)
        self.displacement = torch.nn.Parameter(resized)

    @property
    def parameter_count(self) -> int:
        return self.displacement.numel()

    def forward(self) -> torch.Tensor:
        return self.displacement
