"""Multi-resolution pyramids for iterative registration.

Each level has a coarser fixed grid over the same field of view (first and last voxel centres kept,
so transformation models carry over exactly), the fixed image smoothed and resampled onto it, and the
moving image smoothed on its own grid; a :class:`~learnreg.warp.Warper` maps one to the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from learnreg.image import Grid, Image
from learnreg.warp import Warper, resample_to_grid


@dataclass
class PyramidLevel:
    """One resolution level: ``fixed`` is ``(1, 1, *grid.spatial_shape)``, ``moving`` on its own grid."""

    factor: float
    grid: Grid
    fixed: torch.Tensor
    moving: torch.Tensor
    warper: Warper


def _smooth(image: Image, sigma_mm: float) -> Image:
    if sigma_mm <= 0:
        return image
    sigma = [sigma_mm / s for s in reversed(image.grid.spacing)]  # (k, j, i)
    if image.ndim == 2:
        sigma[0] = 0.0
    return image.with_array(gaussian_filter(np.asarray(image.array, dtype=np.float32), sigma))


def build_pyramid(fixed: Image, moving: Image, factors, device: torch.device) -> list[PyramidLevel]:
    """Levels from coarse to fine for shrink ``factors`` such as ``(4, 2, 1)``.

    Both images are smoothed with a Gaussian of sigma = half the level's voxel spacing (mm) before
    sampling, so coarse levels do not alias.
    """
    levels = []
    for factor in factors:
        grid = fixed.grid.downsampled(factor)
        sigma_mm = 0.5 * float(np.mean(grid.axis_spacing)) if factor > 1 else 0.0
        fixed_level = resample_to_grid(_smooth(fixed, sigma_mm), grid)
        moving_level = _smooth(moving, sigma_mm)
        levels.append(PyramidLevel(
            factor=float(factor),
            grid=grid,
            fixed=torch.from_numpy(fixed_level.spatial_array())[None, None].to(device),
            moving=torch.from_numpy(moving_level.spatial_array())[None, None].to(device),
            warper=Warper(grid, moving.grid).to(device),
        ))
    return levels
