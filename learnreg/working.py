"""The working grid a network sees, and how images are brought onto it (shared by the learned methods).

A *working grid* is a square (2D) or cubic (3D) grid of ``size`` voxels per axis that covers the fixed
image's field of view, with the fixed image's direction and isotropic spacing ``largest extent / size``.
A network's outputs, normalised to that grid, become millimetres through its physical size; so the same
weights serve any voxel spacing and any field of view, and fields are evaluated on the full-resolution
fixed grid. Intensities in [0, 1] are low-pass filtered, resampled onto it (outside the image: 0), then
z-scored and clamped to [-2, 2].
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from learnreg.image import Grid, Image
from learnreg.warp import Warper, resample_to_grid


def working_grid(fixed: Grid, size: int) -> Grid:
    """The square/cubic grid the network sees (see the module docstring), centred on ``fixed``."""
    nd = fixed.ndim
    full_extent = np.asarray(fixed.size[:nd]) * np.asarray(fixed.spacing[:nd])
    spacing = float(full_extent.max()) / size
    centre_axis = (np.asarray(fixed.size[:nd]) - 1) * np.asarray(fixed.spacing[:nd]) / 2
    first_axis = centre_axis - (size - 1) * spacing / 2
    origin = np.asarray(fixed.origin) + fixed.direction_matrix[:, :nd] @ first_axis
    sizes = (size,) * nd + (1,) * (3 - nd)
    spacings = (spacing,) * nd + tuple(fixed.spacing[nd:])
    return Grid(sizes, spacings, tuple(float(v) for v in origin), fixed.direction)


def axis_offset(fixed: Grid, working: Grid) -> np.ndarray:
    """Position of the working grid's first voxel in the fixed grid's axis frame (mm), ``(ndim,)``."""
    nd = fixed.ndim
    return (fixed.direction_matrix.T @ (np.asarray(working.origin) - np.asarray(fixed.origin)))[:nd]


def to_working(image: Image, working: Grid) -> torch.Tensor:
    """``image`` (intensities in [0, 1]) on the working grid as ``(1, 1, *spatial)``: low-pass filtered where the
    working grid is coarser (Gaussian, sigma 0.4 working voxels), then resampled (outside the image: 0)."""
    nd = image.ndim
    sigma_mm = 0.4 * working.spacing[0]
    sigma_kji = [sigma_mm / s if sigma_mm > s else 0.0 for s in reversed(image.grid.spacing[:nd])]
    array = np.asarray(image.spatial_array(), dtype=np.float32)
    if any(sigma_kji):
        array = gaussian_filter(array, sigma_kji)
    resampled = resample_to_grid(Image(array if nd == 3 else array[None], image.grid), working)
    return torch.from_numpy(resampled.spatial_array())[None, None]


def zscore(images: torch.Tensor) -> torch.Tensor:
    """Per-image z-score clamped to [-2, 2], for ``(B, 1, *spatial)``."""
    flat = images.flatten(1)
    mean = flat.mean(1).view(-1, *[1] * (images.dim() - 1))
    std = flat.std(1).clamp_min(1e-6).view(-1, *[1] * (images.dim() - 1))
    return ((images - mean) / std).clamp(-2.0, 2.0)


def field_on_fixed_grid(field: torch.Tensor, working: Grid, fixed: Grid) -> torch.Tensor:
    """A pull field on the working grid in working voxels, ``(1, ndim, *working)``, as millimetres on the fixed
    grid, ``(1, ndim, *fixed)`` (linear interpolation; both grids share their direction, so the components
    only change unit)."""
    warper = Warper(fixed, working).to(field.device)
    return warper(field) * working.spacing[0]
