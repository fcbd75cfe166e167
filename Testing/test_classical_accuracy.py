"""Speed never costs accuracy: the classical optimiser's shortcuts are exact or pinned on known answers.

- the B-spline's regulariser computed from its control points equals the regulariser of its dense field
  (bending energy and diffusion, 2D and 3D, anisotropic spacing);
- the random-subset image loss is deterministic for a seed, and with at least as many samples as voxels it
  is the full loss;
- on the bundled pairs with exact landmarks, ``bspline`` and ``affine`` with their defaults (Adam for the
  B-spline, L-BFGS for the affine model) and with the other optimiser keep the mean TRE measured before the speed work (bspline:
  brain2d 0.095 mm, brain3d 0.15 mm; affine: brain2d 2.59 mm), with a margin of 0.02 mm;
- ``auto`` samples only levels much larger than the sample count, with Adam, and uses L-BFGS elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnreg.classical.optimise import SAMPLED_LEVEL_RATIO, choose_optimiser
from learnreg.image import Grid
from learnreg.losses.regularisers import BendingEnergy, Diffusion
from learnreg.metrics import tre
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_pairs
from learnreg.transformations import BSplineTransformation


@pytest.mark.parametrize("size, spacing", [((40, 33, 27), (1.2, 0.9, 2.0)), ((50, 60, 1), (1.0, 1.5, 1.0))])
@pytest.mark.parametrize("regulariser", [BendingEnergy(), Diffusion()], ids=["bending", "diffusion"])
def test_bspline_regulariser_from_control_points_equals_the_dense_one(size, spacing, regulariser):
    grid = Grid.make(size, spacing)
    model = BSplineTransformation(grid, 8.0)
    with torch.no_grad():
        model.coefficients.copy_(torch.randn(model.coefficients.shape, generator=torch.Generator().manual_seed(1)))
    field = model()
    dense = regulariser(field, grid.axis_spacing)
    fast = regulariser.of_model(model, field, grid.axis_spacing)
    assert fast.item() == pytest.approx(dense.item(), rel=1e-5)
    (gradient_dense,) = torch.autograd.grad(dense, model.coefficients)
    (gradient_fast,) = torch.autograd.grad(regulariser.of_model(model, model(), grid.axis_spacing), model.coefficients)
    assert torch.allclose(gradient_fast, gradient_dense, rtol=1e-4, atol=1e-7)


def test_sampled_loss_is_deterministic_and_full_when_samples_cover_the_image():
    fixed, moving, _ = sample_pairs()["brain2d"].load()
    options = {"iterations": "10,10,10", "stop_tolerance": 0}
    first = create_registrar("bspline", {**options, "samples": 4096, "seed": 3}).register(fixed, moving, device="cpu")
    again = create_registrar("bspline", {**options, "samples": 4096, "seed": 3}).register(fixed, moving, device="cpu")
    other = create_registrar("bspline", {**options, "samples": 4096, "seed": 4}).register(fixed, moving, device="cpu")
    assert np.array_equal(first.field.vectors, again.field.vectors)
    assert not np.array_equal(first.field.vectors, other.field.vectors)
    every = create_registrar("bspline", {**options, "samples": 0}).register(fixed, moving, device="cpu")
    covering = create_registrar("bspline", {**options, "samples": fixed.grid.num_voxels}).register(
        fixed, moving, device="cpu")
    assert np.array_equal(every.field.vectors, covering.field.vectors)


def test_auto_samples_only_large_levels_with_adam_and_uses_lbfgs_on_every_voxel_elsewhere():
    samples = 1000
    large = SAMPLED_LEVEL_RATIO * samples + 1
    assert choose_optimiser("auto", large, samples, pointwise=True) == ("adam", samples)
    assert choose_optimiser("auto", large - 1, samples, pointwise=True) == ("lbfgs", 0)
    assert choose_optimiser("auto", large, samples, pointwise=False) == ("lbfgs", 0)  # lncc needs every voxel
    assert choose_optimiser("auto", large, 0, pointwise=True) == ("lbfgs", 0)
    assert choose_optimiser("adam", samples + 1, samples, pointwise=True) == ("adam", samples)
    assert choose_optimiser("adam", samples, samples, pointwise=True) == ("adam", 0)
    assert choose_optimiser("lbfgs", large, samples, pointwise=True) == ("lbfgs", 0)


@pytest.mark.parametrize("name, method, options, pinned_mm", [
    ("brain2d", "bspline", {}, 0.095), ("brain2d", "bspline", {"optimiser": "auto"}, 0.095),
    ("brain3d", "bspline", {}, 0.15), ("brain2d", "affine", {}, 2.59), ("brain2d", "affine", {"optimiser": "adam"}, 2.59)])
def test_defaults_keep_the_tre_measured_before_the_speed_work(name, method, options, pinned_mm):
    fixed, moving, landmarks = sample_pairs()[name].load()
    result = create_registrar(method, options).register(fixed, moving, device="cpu")
    after = tre(landmarks.fixed, landmarks.moving, result.field)["mean"]
    assert after <= pinned_mm + 0.02, f"{method} {options} on {name}: mean TRE {after:.3f} mm (pinned {pinned_mm} mm)"
