"""Refinement on top of a network's field composes with it (learnreg.classical.optimise.FixedStage): a folding-free
start and a folding-free refinement stay folding-free together, where their sum folds; the random-subset
loss sees the same composed displacement as the full warp."""

from __future__ import annotations

import math

import torch

from learnreg.classical.optimise import FixedStage, on_base
from learnreg.field import jacobian_determinant
from learnreg.image import Grid
from learnreg.velocity import compose_displacements
from learnreg.warp import Warper

GRID = Grid.make((64, 48, 1), spacing=(1.5, 1.0, 1.0))


def compression(strength: float, phase: float = 0.0) -> torch.Tensor:
    """A pull field along i whose Jacobian is ``1 + strength * cos(...)`` (positive for strength < 1)."""
    extent = GRID.size[0] * GRID.spacing[0]
    x = torch.arange(GRID.size[0], dtype=torch.float64) * GRID.spacing[0]
    u = strength * extent / (2 * math.pi) * torch.sin(2 * math.pi * x / extent + phase)
    field = torch.zeros(1, 2, GRID.size[1], GRID.size[0], dtype=torch.float64)
    field[0, 0] = u.expand(GRID.size[1], -1)
    return field.float()


def smallest_jacobian(field: torch.Tensor) -> float:
    return float(jacobian_determinant(field.double(), GRID.axis_spacing)[:, 4:-4, 4:-4].min())


def test_composition_keeps_what_addition_folds():
    start, refinement = compression(0.8), compression(0.8)
    assert smallest_jacobian(start) > 0.15 and smallest_jacobian(refinement) > 0.15
    assert smallest_jacobian(on_base(start, refinement, None)) < 0  # added: the two compressions fold
    composed = on_base(start, refinement, Warper(GRID, GRID))
    assert smallest_jacobian(composed) > 0.02
    # the stencil computed once at x + start(x) interpolates as grid_sample does
    assert torch.allclose(composed, compose_displacements(refinement, start, Warper(GRID, GRID)), atol=1e-5)


def test_the_refinement_deforms_the_moving_image_that_the_start_then_warps():
    warper = Warper(GRID, GRID)
    start, refinement = compression(0.5), compression(0.3, phase=1.0)
    j, i = torch.meshgrid(torch.arange(GRID.size[1]), torch.arange(GRID.size[0]), indexing="ij")
    moving = torch.sin(i / 6.0)[None, None] * torch.cos(j / 9.0)[None, None]
    twice = warper(warper(moving, refinement), start)
    once = warper(moving, on_base(start, refinement, warper))
    assert (once - twice)[..., 4:-4, 4:-4].abs().max() < 0.02


def test_the_random_subset_sees_the_composed_displacement():
    warper = Warper(GRID, GRID)
    start, refinement = compression(0.5), compression(0.3, phase=1.0)
    refinement[0, 1] = 0.7  # and a shift along j
    voxels = torch.randperm(GRID.num_voxels, generator=torch.Generator().manual_seed(0))[:200]
    for compose in (None, warper):
        full = on_base(start, refinement, compose).reshape(2, -1)[:, voxels]
        assert torch.allclose(FixedStage(start, compose).on_voxels(refinement, voxels), full, atol=1e-5)
    moving = torch.rand(1, 1, GRID.size[1], GRID.size[0])
    field = on_base(start, refinement, warper)
    warped, mask = warper.at_voxels(moving, None, voxels, vectors=field.reshape(2, -1)[:, voxels])
    full_warped, full_mask = warper(moving, field, return_mask=True)
    assert torch.allclose(warped.flatten(), full_warped.flatten()[voxels], atol=1e-5)
    assert torch.equal(mask.flatten(), full_mask.flatten()[voxels])


def test_the_point_stencil_samples_as_grid_sample_does():
    """The composition's interpolation (learnreg.warp.PointStencil): on a 3D moving grid of its own shape and
    spacing, at points inside and beyond the border, the values and the gradient to the sampled field are
    grid_sample's."""
    fixed, moving_grid = Grid.make((9, 7, 5), spacing=(1.0, 1.5, 2.0)), Grid.make((6, 8, 4), spacing=(2.0, 1.0, 3.0))
    warper = Warper(fixed, moving_grid)
    generator = torch.Generator().manual_seed(3)
    field = torch.randn(1, 3, 4, 8, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(300, 3, generator=generator, dtype=torch.float64) * 2.6 - 1.3  # some beyond [-1, 1]
    by_stencil = warper.point_stencil(coords).sample(field)
    by_grid_sample = warper.sample_points(field, coords)
    assert torch.allclose(by_stencil, by_grid_sample, atol=1e-10)
    weights = torch.randn(by_stencil.shape, generator=generator, dtype=torch.float64)
    (stencil_gradient,) = torch.autograd.grad((by_stencil * weights).sum(), field)
    (grid_sample_gradient,) = torch.autograd.grad((by_grid_sample * weights).sum(), field)
    assert torch.allclose(stencil_gradient, grid_sample_gradient, atol=1e-10)
