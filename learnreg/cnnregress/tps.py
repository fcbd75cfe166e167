"""Thin-plate-spline interpolation of displacements at scattered points to a dense field (2D and 3D).

For control points ``c_n`` with displacements ``d_n`` the spline is

    s(x) = a_0 + A x + sum_n w_n U(|x - c_n|),   U(r) = r^2 log r (2D),  U(r) = -r (3D),

the interpolant of least bending energy: ``(K + lambda I) w + P a = d`` and ``P^T w = 0``, with
``K_mn = U(|c_m - c_n|)`` and ``P = [1, c]``. With ``lambda = 0`` it passes exactly through every ``d_n``;
``lambda > 0`` trades exactness for smoothness (a smoothing spline, for noisy displacements). The signs make
``K`` conditionally positive definite in both dimensions, which the smoothing needs: with ``+r`` in 3D,
``+lambda I`` would push the system towards singularity instead of away from it.

Algorithm and cost, for ``N`` points and ``M`` voxels: the ``(N + d + 1)``-square system is solved once
(LU, float64, ``O(N^3)`` time, ``O(N^2)`` memory: 0.2 s and 45 MB for the 2,400 points of a 64^3 working grid
at the default density); the spline is then evaluated in blocks of voxels, ``O(M N)`` time and
``O(block N)`` memory, so no ``M x N`` matrix is ever held. :func:`dense_field` can evaluate every
``stride``-th voxel only and interpolate linearly between (``M / stride^d`` evaluations: 0.17 s instead of
1.6 s at 64^3 with stride 2); the spline varies on the scale of the points' spacing (about 5 voxels there), so
the linear step changes it little. Coordinates are scaled to the unit box first,
which keeps the system well conditioned; the fit is invariant to that scaling apart from ``lambda``'s unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from learnreg.progress import Progress

#: voxels evaluated per block (memory ``block x N`` floats)
BLOCK = 4096


def radial_kernel(distance: torch.Tensor, ndim: int) -> torch.Tensor:
    """``U(r)``: ``r^2 log r`` in 2D (0 at ``r = 0``), ``-r`` in 3D."""
    if ndim == 3:
        return -distance
    return torch.where(distance > 0, distance * distance * torch.log(distance.clamp_min(1e-30)),
                       torch.zeros_like(distance))


@dataclass
class ThinPlateSpline:
    """A fitted spline: control points ``(N, ndim)``, weights ``(N, C)``, affine part ``(ndim + 1, C)``, the
    coordinate scale (all in the unit of the points given to :meth:`fit`)."""

    points: torch.Tensor
    weights: torch.Tensor
    affine: torch.Tensor
    scale: float

    @classmethod
    def fit(cls, points: torch.Tensor, values: torch.Tensor, smoothing: float = 0.0) -> "ThinPlateSpline":
        """Fit ``values`` ``(N, C)`` at ``points`` ``(N, ndim)`` (``smoothing``: ``lambda``, in the unit-box
        coordinates; 0 interpolates exactly).

        Raises:
            ValueError: fewer than ``ndim + 2`` points, or points that do not span the space (all on a line or a
                plane), for which the spline is not defined.
        """
        count, nd = points.shape
        if count < nd + 2:
            raise ValueError(f"a thin-plate spline needs at least {nd + 2} points, got {count}")
        p = points.detach().double().cpu()
        scale = float((p.max(0).values - p.min(0).values).max().clamp_min(1e-12))
        c = p / scale
        affine_part = torch.cat([torch.ones(count, 1, dtype=torch.float64), c], dim=1)
        if torch.linalg.matrix_rank(affine_part) < nd + 1:
            raise ValueError("the thin-plate spline's points lie on a line or plane; they must span the image")
        system = torch.zeros(count + nd + 1, count + nd + 1, dtype=torch.float64)
        system[:count, :count] = radial_kernel(torch.cdist(c, c), nd) + smoothing * torch.eye(count, dtype=torch.float64)
        system[:count, count:] = affine_part
        system[count:, :count] = affine_part.T
        rhs = torch.zeros(count + nd + 1, values.shape[1], dtype=torch.float64)
        rhs[:count] = values.detach().double().cpu()
        solution = torch.linalg.solve(system, rhs)
        return cls(c, solution[:count], solution[count:], scale)

    def __call__(self, positions: torch.Tensor, progress: Optional[Progress] = None) -> torch.Tensor:
        """The spline at ``positions`` ``(M, ndim)`` (same unit as the fit's points): ``(M, C)``, float32, on
        the positions' device; evaluated in float64 (the weights of an exact fit are large and cancel) in blocks
        of :data:`BLOCK`, each reported to ``progress`` (which may cancel there)."""
        device = positions.device
        nd = self.points.shape[1]
        points, weights, affine = (t.to(device) for t in (self.points, self.weights, self.affine))
        out = []
        blocks = torch.split(positions.double() / self.scale, BLOCK)
        for index, block in enumerate(blocks):
            kernel = radial_kernel(torch.cdist(block, points), nd)
            out.append((kernel @ weights + affine[0] + block @ affine[1:]).float())
            if progress is not None:
                progress.report((index + 1) / len(blocks), f"thin-plate spline: block {index + 1}/{len(blocks)}")
        return torch.cat(out)


def grid_positions(spatial: tuple[int, ...], device=None, stride: int = 1) -> torch.Tensor:
    """Voxel indices of a grid with tensor shape ``spatial`` as ``(M, ndim)`` points in axis order ``(i, j[, k])``,
    in the tensor's flattening order; with ``stride`` > 1, ``(n - 1) // stride + 1`` evenly spread positions per
    axis from the first voxel to the last (what ``align_corners=True`` interpolation expects)."""
    axes = [torch.linspace(0, n - 1, (n - 1) // stride + 1, device=device) for n in spatial]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.flatten() for m in reversed(mesh)], dim=1)


def dense_field(points: torch.Tensor, displacements: torch.Tensor, spatial: tuple[int, ...],
                smoothing: float = 0.0, stride: int = 1, progress: Optional[Progress] = None) -> torch.Tensor:
    """The spline through ``displacements`` ``(N, ndim)`` at voxel indices ``points`` ``(N, ndim)`` (axis order) on a
    grid of tensor shape ``spatial``: ``(1, ndim, *spatial)``; evaluated at every ``stride``-th voxel and
    linearly interpolated between (``stride`` 1: exact everywhere). ``progress`` hears of each block evaluated."""
    spline = ThinPlateSpline.fit(points.float(), displacements, smoothing)
    coarse = tuple((n - 1) // stride + 1 for n in spatial)
    values = spline(grid_positions(spatial, displacements.device, stride), progress).T.reshape(1, -1, *coarse)
    if coarse == tuple(spatial):
        return values
    return F.interpolate(values, size=tuple(spatial), mode="bilinear" if len(spatial) == 2 else "trilinear",
                         align_corners=True)
