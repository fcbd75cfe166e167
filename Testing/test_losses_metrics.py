"""The loss library and metrics: known values, spacing awareness, 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnreg.field import DisplacementField
from learnreg.image import Grid
from learnreg.losses import MSE, NCC, BendingEnergy, Diffusion, LabelMSE, LocalNCC, SoftDice, TotalVariation, one_hot
from learnreg.metrics import dice_per_label, folding, surface_distances, tre
from learnreg.warp import axis_coordinate_tensor


@pytest.mark.parametrize("shape", [(1, 1, 24, 20), (1, 1, 12, 14, 10)])
def test_image_losses(shape):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=gen)
    b = torch.rand(shape, generator=gen)
    assert float(MSE()(a, a)) == 0.0
    assert float(MSE()(a, b)) == pytest.approx(float(((a - b) ** 2).mean()))
    assert float(NCC()(a, 3 * a + 2)) == pytest.approx(0.0, abs=1e-4)  # invariant to linear intensity change
    assert float(NCC()(a, b)) > 0.8
    lncc = LocalNCC(window_mm=5.0, spacing=(1.0, 1.0, 1.0))
    assert float(lncc(a, 2 * a + 1)) == pytest.approx(0.0, abs=1e-3)
    assert float(lncc(a, b)) > 0.5
    mask = torch.zeros(shape)
    mask[..., :5] = 1
    c = b.clone()
    c[..., :5] = a[..., :5]
    assert float(MSE()(a, c, mask)) == pytest.approx(0.0, abs=1e-7)


def test_lncc_window_in_mm():
    assert LocalNCC(9.0, spacing=(1.0, 3.0, 0.5))._window(3) == (19, 3, 9)  # 9 mm: 18 -> 19 voxels of 0.5 mm, 3 of 3 mm, 9 of 1 mm


def _box_ncc(fixed: torch.Tensor, warped: torch.Tensor, window: tuple, eps: float = 1e-5) -> float:
    """``1 -`` mean squared local NCC with the box means summed voxel by voxel over each window's in-image
    voxels (the definition, without pooling)."""
    nd = fixed.dim() - 2
    f, w = fixed[0, 0].double(), warped[0, 0].double()
    total = 0.0
    for index in np.ndindex(*f.shape):
        box = tuple(slice(max(0, i - k // 2), i + k // 2 + 1) for i, k in zip(index, window))
        fb, wb = f[box], w[box]
        cross = (fb * wb).mean() - fb.mean() * wb.mean()
        var_f, var_w = (fb * fb).mean() - fb.mean() ** 2, (wb * wb).mean() - wb.mean() ** 2
        total += float(cross * cross / (var_f.clamp_min(0) * var_w.clamp_min(0) + eps))
    return 1.0 - total / f.numel()


@pytest.mark.parametrize("shape, spacing", [((1, 1, 13, 11), (1.0, 2.0)), ((1, 1, 7, 9, 8), (1.0, 2.0, 0.6))])
def test_lncc_is_the_box_window_definition(shape, spacing):
    """The local means are taken one axis at a time (a 9-voxel 3D window costs 27 additions a voxel, not 729):
    the same values as the box itself, also at the borders, where a window holds only the voxels inside, and
    where the window is wider than the image (3D: 9 voxels along 7 slices, which pooling alone refused)."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)
    lncc = LocalNCC(window_mm=5.0, spacing=spacing)
    window = lncc._window(len(shape) - 2)
    assert len(set(window)) > 1  # anisotropic: each axis its own width
    assert float(lncc(a, b)) == pytest.approx(_box_ncc(a, b, window), abs=1e-5)


def test_label_losses():
    labels = torch.zeros(1, 1, 10, 10)
    labels[..., 2:6, 2:6] = 1
    labels[..., 6:9, 6:9] = 2
    onehot = one_hot(labels, [1, 2])
    assert onehot.shape == (1, 2, 10, 10)
    assert float(SoftDice()(onehot, onehot)) == pytest.approx(0.0, abs=1e-6)
    assert float(SoftDice()(onehot, torch.zeros_like(onehot))) == pytest.approx(1.0, abs=1e-4)
    assert float(LabelMSE()(onehot, onehot)) == 0.0


def _axis_field(grid: Grid, function) -> torch.Tensor:
    coords = axis_coordinate_tensor(grid, dtype=torch.float64)
    return function(coords).unsqueeze(0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 2.0, 1.5)])
def test_regularisers_known_values(spacing):
    grid = Grid.make((21, 19, 17), spacing)
    # translation: every regulariser is zero
    translation = torch.ones(1, 3, *grid.spatial_shape, dtype=torch.float64) * 4.0
    for reg in (Diffusion(), BendingEnergy()):
        assert float(reg(translation, grid.axis_spacing)) == pytest.approx(0.0, abs=1e-10)
    assert float(TotalVariation(eps=0.0)(translation, grid.axis_spacing)) == pytest.approx(0.0, abs=1e-10)
    # linear u_i = 0.1 x_i: gradient 0.1 (dimensionless) whatever the spacing
    linear = _axis_field(grid, lambda c: torch.stack([0.1 * c[0], 0 * c[0], 0 * c[0]]))
    assert float(Diffusion()(linear, grid.axis_spacing)) == pytest.approx(0.01, rel=1e-6)
    assert float(TotalVariation(eps=0.0)(linear, grid.axis_spacing)) == pytest.approx(0.1, rel=1e-6)
    assert float(BendingEnergy()(linear, grid.axis_spacing)) == pytest.approx(0.0, abs=1e-10)
    # quadratic u_j = b x_i^2: d2u/dx_i^2 = 2b inside (border uses one-sided differences)
    b = 0.01
    quad = _axis_field(grid, lambda c: torch.stack([0 * c[0], b * c[0] ** 2, 0 * c[0]]))
    assert float(BendingEnergy()(quad, grid.axis_spacing)) == pytest.approx((2 * b) ** 2, rel=0.35)


def test_regularisers_independent_of_resolution():
    """The same physical field sampled at two resolutions gives (nearly) the same penalties."""
    values = []
    for n, s in ((41, 1.0), (81, 0.5)):
        grid = Grid.make((n, n, 1), (s, s, 1.0))
        field = _axis_field(grid, lambda c: torch.stack([torch.sin(c[0] / 6.0), torch.cos(c[1] / 7.0)]))
        values.append([float(r(field, grid.axis_spacing)) for r in (Diffusion(), BendingEnergy(), TotalVariation())])
    assert np.allclose(values[0], values[1], rtol=0.05)


def test_tre_statistics():
    fixed = np.zeros((4, 3))
    moving = np.array([[3.0, 4, 0], [0, 0, 1], [0, 2, 0], [0, 0, 0]])
    stats = tre(fixed, moving)
    assert stats["per_landmark"] == [5.0, 1.0, 2.0, 0.0]
    assert stats["mean"] == 2.0 and stats["median"] == 1.5 and stats["max"] == 5.0
    grid = Grid.make((10, 10, 10), origin=(-5, -5, -5))
    shift = DisplacementField(np.broadcast_to([0.0, 0, 1], (*grid.shape, 3)).copy(), grid)
    assert tre(fixed[:2], np.array([[0, 0, 1.0], [0, 0, 1]]), shift)["max"] == pytest.approx(0.0)


def test_dice_and_surface_distances_of_shifted_cubes():
    a = np.zeros((1, 30, 30), np.uint8)
    b = np.zeros_like(a)
    a[0, 5:15, 5:15] = 1
    b[0, 5:15, 7:17] = 1  # shifted 2 voxels along i
    assert dice_per_label(a, b)[1] == pytest.approx(0.8)
    spacing = (1.5, 1.0, 1.0)  # i spacing 1.5 mm -> shift of 3 mm
    d = surface_distances(a, b, spacing)[1]
    assert d["hd95"] == pytest.approx(3.0)
    assert 0 < d["assd"] <= 3.0
    nan = surface_distances(a, np.zeros_like(a), spacing, labels=[1])[1]
    assert np.isnan(nan["hd95"])


def test_folding_statistics():
    grid = Grid.make((20, 20, 1))
    smooth = DisplacementField.from_axis_tensor(_axis_field(grid, lambda c: torch.stack([0.2 * c[0], 0 * c[1]])), grid)
    stats = folding(smooth)
    assert stats["percent_nonpositive_jacobian"] == 0.0
    assert stats["min_jacobian"] == pytest.approx(1.2) and stats["sd_log_jacobian"] == pytest.approx(0.0, abs=1e-9)
    folded = DisplacementField.from_axis_tensor(_axis_field(grid, lambda c: torch.stack([-1.5 * c[0], 0 * c[1]])), grid)
    assert folding(folded)["percent_nonpositive_jacobian"] == 100.0


def test_background_is_not_a_label():
    fixed = np.array([[[0, 1, 1, 2]]])
    warped = np.array([[[0, 1, 2, 2]]])
    assert set(dice_per_label(fixed, warped)) == {1, 2}
    assert set(surface_distances(fixed, warped, (1.0, 1.0, 1.0))) == {1, 2}
