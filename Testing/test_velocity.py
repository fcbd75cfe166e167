"""Scaling and squaring (learnreg.velocity) against exponentials known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from learnreg.field import jacobian_determinant
from learnreg.image import Grid
from learnreg.velocity import compose_displacements, exponentiate
from learnreg.warp import Warper


def _positions(grid: Grid) -> torch.Tensor:
    """Voxel centres in mm along the axes, ``(1, ndim, *spatial)`` (axis-aligned grid, origin 0)."""
    axes = [torch.arange(n, dtype=torch.float64) * s for n, s in zip(grid.size[:grid.ndim], grid.spacing)]
    mesh = torch.meshgrid(*reversed(axes), indexing="ij")  # (k,) j, i
    return torch.stack(list(reversed(mesh)), dim=0).unsqueeze(0)


@pytest.mark.parametrize("size, spacing", [((48, 40, 1), (1.0, 1.5, 1.0)), ((24, 20, 16), (2.0, 1.0, 2.5))])
def test_the_exponential_of_a_linear_velocity_is_the_matrix_exponential(size, spacing):
    grid = Grid.make(size, spacing)
    nd = grid.ndim
    x = _positions(grid)
    centre = torch.tensor([(n - 1) * s / 2 for n, s in zip(size[:nd], spacing)], dtype=torch.float64)
    rng = np.random.default_rng(3)
    generator = rng.normal(0, 0.05, (nd, nd))  # a rotation-and-shear generator of a few degrees
    relative = x - centre.view(1, nd, *[1] * nd)
    velocity = torch.einsum("ab,nb...->na...", torch.as_tensor(generator), relative)
    expected = torch.einsum("ab,nb...->na...", torch.as_tensor(expm(generator) - np.eye(nd)), relative)
    warper = Warper(grid, grid).double()
    result = exponentiate(velocity, warper, squarings=8)
    # the central half: squaring samples beyond the border, where the field is extended, near the edges
    inner = tuple(slice(n // 4, -(n // 4)) for n in reversed(size[:nd]))
    error = (result - expected)[(slice(None), slice(None)) + inner].abs().max()
    assert error < 0.02 * expected.abs().max()
    small_deformation = (velocity - expected)[(slice(None), slice(None)) + inner].abs().max()
    assert error < 0.1 * small_deformation  # better than taking the velocity as the displacement


def test_a_constant_velocity_is_a_translation_and_composition_adds_translations():
    grid = Grid.make((30, 26, 1), (1.2, 0.8, 1.0))
    warper = Warper(grid, grid).double()
    velocity = torch.zeros(1, 2, 26, 30, dtype=torch.float64)
    velocity[:, 0], velocity[:, 1] = 2.5, -1.25
    assert torch.allclose(exponentiate(velocity, warper), velocity)
    assert torch.allclose(compose_displacements(velocity, velocity, warper), 2 * velocity)


def test_a_large_smooth_velocity_integrates_without_folding():
    grid = Grid.make((64, 64, 1))
    x = _positions(grid)
    window = torch.exp(-((x[:, 1:2] - 31.5) / 12.0) ** 2)
    # a compression wave along i: du/dx reaches -1.6 at the window's centre, so as a displacement it folds
    velocity = torch.cat([6.0 * torch.sin(2 * np.pi * x[:, 0:1] / 24.0) * window, torch.zeros_like(window)], dim=1)
    assert (jacobian_determinant(velocity, grid.axis_spacing) <= 0).any()  # as a displacement, it folds
    result = exponentiate(velocity, Warper(grid, grid).double())
    assert (jacobian_determinant(result, grid.axis_spacing) > 0).all()
