"""Synthetic registration pairs with a known field and exact landmark pairs, from any real image.

Given a source image ``S`` and a known smooth pull field ``v`` on its grid, the pair is

* fixed image ``F(y) = S(y + v(y))`` (the source warped by ``v``), moving image ``M = S``;
* fixed landmarks ``y`` at strong edges of ``F`` (voxel centres), moving landmarks ``x = y + v(y)``.

So ``v`` is exactly the pull field a registration of ``M`` to ``F`` should find, and the landmark pairs are
exact without inverting any field. The field is a sum of a smooth random deformation of one of
:data:`FIELD_FAMILIES` (a cubic B-spline; a dense field of smoothed noise; a few local large motions;
lung-like breathing), an optional affine jitter and an optional breathing motion on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, sobel

from learnreg.field import DisplacementField
from learnreg.image import Grid, Image
from learnreg.landmarks import Landmarks
from learnreg.transformations import BSplineTransformation
from learnreg.warp import axis_coordinate_tensor, resample_to_grid


@dataclass
class SyntheticPair:
    """A registration pair with its true pull field (on the fixed grid) and exact landmark pairs."""

    fixed: Image
    moving: Image
    true_field: DisplacementField
    fixed_landmarks: Landmarks
    moving_landmarks: Landmarks
    fixed_labels: Optional[Image] = None
    moving_labels: Optional[Image] = None


def smooth_random_field(grid: Grid, rng: np.random.Generator, max_displacement_mm: float,
                        smoothness_mm: float) -> torch.Tensor:
    """Random cubic B-spline field (control points every ``smoothness_mm``) scaled to a maximum length.

    Returns ``(1, ndim, *spatial)`` in mm along the grid axes.
    """
    model = BSplineTransformation(grid, smoothness_mm)
    with torch.no_grad():
        model.coefficients.copy_(torch.from_numpy(rng.standard_normal(model.coefficients.shape)).float())
        field = model()
    peak = float(field.norm(dim=1).max())
    return field * (max_displacement_mm / peak if peak > 0 else 0.0)


def dense_random_field(grid: Grid, rng: np.random.Generator, max_displacement_mm: float,
                       smoothness_mm: float) -> torch.Tensor:
    """Random dense field: white noise per voxel and component, smoothed by a Gaussian of ``smoothness_mm / 4``
    (sigma, mm), scaled to a maximum length. No control grid: not the B-spline family. ``(1, ndim, *spatial)``."""
    nd = grid.ndim
    sigma = [smoothness_mm / 4 / s for s in reversed(grid.spacing[:nd])]  # (k, j, i) or (j, i)
    shape = grid.spatial_shape
    field = np.stack([gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect") for _ in range(nd)])
    field = torch.from_numpy(field).float().unsqueeze(0)
    peak = float(field.norm(dim=1).max())
    return field * (max_displacement_mm / peak if peak > 0 else 0.0)


def local_motion_field(grid: Grid, rng: np.random.Generator, max_displacement_mm: float,
                       smoothness_mm: float, count: int = 3) -> torch.Tensor:
    """``count`` local large motions: Gaussian bumps of width ``smoothness_mm / 3`` (sigma, mm) at random places
    in the middle half of the image, each a translation of up to ``max_displacement_mm`` in a random
    direction, elsewhere almost nothing. ``(1, ndim, *spatial)``."""
    nd = grid.ndim
    coords = axis_coordinate_tensor(grid, dtype=torch.float64)
    extent = torch.as_tensor(grid.extent_mm[:nd], dtype=torch.float64)
    field = torch.zeros(1, nd, *grid.spatial_shape, dtype=torch.float64)
    sigma = smoothness_mm / 3
    for _ in range(count):
        centre = extent * torch.as_tensor(rng.uniform(0.25, 0.75, nd))
        direction = torch.as_tensor(rng.standard_normal(nd))
        direction = direction / direction.norm() * max_displacement_mm * rng.uniform(0.6, 1.0)
        distance2 = ((coords - centre.view(-1, *[1] * nd)) ** 2).sum(0)
        field[0] += direction.view(-1, *[1] * nd) * torch.exp(-distance2 / (2 * sigma ** 2))
    peak = float(field.norm(dim=1).max())
    return (field * (max_displacement_mm / peak if peak > max_displacement_mm else 1.0)).float()


def _random_rotation(ndim: int, rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees))
    if ndim == 2:
        c, s = np.cos(angle), np.sin(angle)
        return np.array([[c, -s], [s, c]])
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k  # Rodrigues


def affine_jitter_field(grid: Grid, rng: np.random.Generator, rotation_degrees: float = 0.0,
                        scaling: float = 0.0, translation_mm: float = 0.0) -> torch.Tensor:
    """``u(x) = (A - I)(x - c) + t`` with a random rotation up to ``rotation_degrees``, per-axis scaling
    in ``1 +- scaling`` and translation up to ``translation_mm`` per axis; ``(1, ndim, *spatial)``."""
    nd = grid.ndim
    a = _random_rotation(nd, rng, rotation_degrees) @ np.diag(1 + rng.uniform(-scaling, scaling, nd))
    t = rng.uniform(-translation_mm, translation_mm, nd)
    coords = axis_coordinate_tensor(grid, dtype=torch.float64)
    centre = torch.as_tensor(grid.extent_mm[:nd] / 2).view(-1, *[1] * nd)
    u = torch.einsum("ab,b...->a...", torch.as_tensor(a - np.eye(nd)), coords - centre)
    return (u + torch.as_tensor(t).view(-1, *[1] * nd)).float().unsqueeze(0)


def breathing_field(grid: Grid, amplitude_mm: float) -> torch.Tensor:
    """Lung-like motion: displacement along the cranio-caudal direction growing quadratically towards the
    inferior end (the diaphragm) up to ``amplitude_mm``, plus an expansion of a third of that across it.

    The cranio-caudal direction is LPS ``S`` (+z) projected into the grid; for an axial slice, where it
    is out of plane, the slice's j axis stands in. Returns ``(1, ndim, *spatial)`` in the axis frame.
    """
    nd = grid.ndim
    superior = (grid.direction_matrix.T @ np.array([0.0, 0.0, 1.0]))[:nd]
    if np.linalg.norm(superior) < 0.3:
        superior = np.eye(nd)[1]
    superior /= np.linalg.norm(superior)
    across = np.eye(nd)[np.argmin(np.abs(superior))]
    across -= across @ superior * superior
    across /= np.linalg.norm(across)
    coords = axis_coordinate_tensor(grid, dtype=torch.float64).numpy()
    along_s = np.tensordot(superior, coords, axes=1)
    along_a = np.tensordot(across, coords, axes=1)
    ramp = ((along_s.max() - along_s) / max(np.ptp(along_s), 1e-6)) ** 2  # 1 at the inferior end
    spread = (along_a - along_a.mean()) / max(np.ptp(along_a) / 2, 1e-6)
    u = amplitude_mm * ramp * superior.reshape(-1, *[1] * nd) + amplitude_mm / 3 * ramp * spread * \
        across.reshape(-1, *[1] * nd)
    return torch.from_numpy(u).float().unsqueeze(0)


def breathing_family(grid: Grid, rng: np.random.Generator, max_displacement_mm: float,
                     smoothness_mm: float) -> torch.Tensor:
    """:func:`breathing_field` of amplitude ``max_displacement_mm`` as a deformation family (``rng`` and
    ``smoothness_mm`` unused: the motion's shape is fixed). ``(1, ndim, *spatial)``."""
    return breathing_field(grid, max_displacement_mm)


#: random deformation families, by name: (grid, rng, max_displacement_mm, smoothness_mm) -> field
FIELD_FAMILIES = {"bspline": smooth_random_field, "dense": dense_random_field, "local": local_motion_field,
                  "breathing": breathing_family}


def _edge_landmarks(image: Image, valid: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Voxel indices ``(count, 3)`` (i, j, k) at strong edges, spread out (greedy minimum distance)."""
    a = np.asarray(image.array, dtype=np.float32)
    sigma = [0.0 if image.ndim == 2 else 1.0, 1.0, 1.0]
    smooth = gaussian_filter(a, sigma)
    axes = range(1, 3) if image.ndim == 2 else range(3)
    spacing_kji = list(reversed(image.grid.spacing))
    grad = np.sqrt(sum((sobel(smooth, axis=ax) / spacing_kji[ax]) ** 2 for ax in axes))
    grad[~valid] = 0
    threshold = np.percentile(grad[valid], 85) if valid.any() else 0.0
    candidates = np.argwhere((grad >= threshold) & valid)
    if len(candidates) == 0:
        raise ValueError("no edge voxels to place landmarks on")
    order = rng.permutation(len(candidates))
    candidates = candidates[order]
    physical = image.grid.index_to_physical(candidates[:, ::-1].astype(float))
    extent = float(np.prod(image.grid.extent_mm[: image.ndim]) ** (1 / image.ndim))
    min_distance = extent / (2.0 * count ** (1 / image.ndim))
    chosen: list[int] = []
    while len(chosen) < count and min_distance > 1e-3:
        for n in range(len(candidates)):
            if len(chosen) >= count:
                break
            if all(np.linalg.norm(physical[n] - physical[c]) >= min_distance for c in chosen):
                chosen.append(n)
        min_distance /= 2
    return candidates[chosen][:, ::-1]  # (i, j, k)


def make_pair(source: Image, seed: int = 0, *, max_displacement_mm: Optional[float] = None,
              smoothness_mm: Optional[float] = None, rotation_degrees: float = 0.0, scaling: float = 0.0,
              translation_mm: float = 0.0, breathing_mm: float = 0.0, landmark_count: int = 20,
              labels: Optional[Image] = None, border_fraction: float = 0.1, family: str = "bspline") -> SyntheticPair:
    """A synthetic pair from ``source`` (see the module docstring).

    Args:
        source: a real image; becomes the moving image.
        seed: random seed (the same seed gives the same pair).
        max_displacement_mm: largest length of the smooth random part; default 5 % of the mean extent.
        smoothness_mm: control-point spacing of the random part; default a quarter of the mean extent.
        rotation_degrees, scaling, translation_mm: affine jitter ranges.
        breathing_mm: amplitude of the lung-like motion (0 = none).
        landmark_count: number of exact landmark pairs.
        labels: optional label map on the source grid, warped (nearest) into the fixed space too.
        border_fraction: landmarks keep this fraction of the extent away from the border.
        family: the random deformation's family, one of :data:`FIELD_FAMILIES`.
    """
    rng = np.random.default_rng(seed)
    grid = source.grid
    nd = grid.ndim
    extent = float(np.mean(grid.extent_mm[:nd]))
    max_displacement_mm = 0.05 * extent if max_displacement_mm is None else max_displacement_mm
    smoothness_mm = 0.25 * extent if smoothness_mm is None else smoothness_mm
    field = FIELD_FAMILIES[family](grid, rng, max_displacement_mm, smoothness_mm)
    if rotation_degrees or scaling or translation_mm:
        field = field + affine_jitter_field(grid, rng, rotation_degrees, scaling, translation_mm)
    if breathing_mm:
        field = field + breathing_field(grid, breathing_mm)
    true_field = DisplacementField.from_axis_tensor(field, grid)
    fixed = resample_to_grid(source, grid, field)
    if labels is not None:
        fixed_labels = resample_to_grid(labels, grid, field, nearest=True)
    else:
        fixed_labels = None

    # landmarks: away from the border, where both y and y + v(y) are well inside the image
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), axis=-1)[..., ::-1]
    margin = border_fraction * (np.asarray(grid.size) - 1)
    margin[nd:] = 0
    inside = np.all((idx >= margin) & (idx <= np.asarray(grid.size) - 1 - margin), axis=-1)
    target_idx = grid.physical_to_index(grid.physical_points() + true_field.vectors)
    inside &= np.all((target_idx >= margin - 1e-6) & (target_idx <= np.asarray(grid.size) - 1 - margin + 1e-6),
                     axis=-1)
    fixed_array = np.asarray(fixed.array)
    inside &= fixed_array > np.percentile(fixed_array, 20)
    voxels = _edge_landmarks(fixed, inside, landmark_count, rng)
    fixed_points = grid.index_to_physical(voxels.astype(float))
    moving_points = fixed_points + true_field.vectors[voxels[:, 2], voxels[:, 1], voxels[:, 0]]
    names = tuple(f"L{n + 1}" for n in range(len(voxels)))
    return SyntheticPair(
        fixed=fixed, moving=source, true_field=true_field,
        fixed_landmarks=Landmarks(fixed_points, names), moving_landmarks=Landmarks(moving_points, names),
        fixed_labels=fixed_labels, moving_labels=labels,
    )
