"""R2N2's local transformation: known parameters give the known field, in 2D and 3D, at any spacing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnreg.image import Grid
from learnreg.r2n2.gaussian import GaussianParameters, gaussian_displacement, rotation_matrix, step_record
from learnreg.warp import axis_coordinate_tensor


def _t(*values):
    return torch.tensor([values], dtype=torch.float64)


def _field(grid, centre, widths, angles, weight):
    coords = axis_coordinate_tensor(grid, dtype=torch.float64)
    return gaussian_displacement(coords, _t(*centre), _t(*widths), _t(*angles), _t(*weight))[0]


def test_rotation_matrices_are_rotations():
    for angles in (torch.tensor([[0.7]]), torch.tensor([[0.3, -1.1, 2.0]])):
        r = rotation_matrix(angles.double())[0]
        assert torch.allclose(r.T @ r, torch.eye(r.shape[0], dtype=torch.float64), atol=1e-12)
        assert torch.det(r).item() == pytest.approx(1.0)
    quarter = rotation_matrix(torch.tensor([[np.pi / 2]]))[0]
    assert torch.allclose(quarter @ torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), atol=1e-6)


def test_2d_gaussian_known_values():
    grid = Grid.make((81, 61, 1), (0.5, 0.5, 1.0))
    centre, widths, weight = (20.0, 15.0), (6.0, 2.0), (1.5, -0.5)
    angle = np.pi / 6
    u = _field(grid, centre, widths, (angle,), weight)
    i, j = int(centre[0] / 0.5), int(centre[1] / 0.5)
    assert u[:, j, i].tolist() == pytest.approx(list(weight))  # the weight at the centre
    # one width along the Gaussian's first (rotated) axis: exp(-1/2) of the weight
    axis = np.array([np.cos(angle), np.sin(angle)])
    point = np.array(centre) + widths[0] * axis
    coords = torch.tensor(point, dtype=torch.float64).reshape(2, 1, 1)
    value = gaussian_displacement(coords, _t(*centre), _t(*widths), _t(angle), _t(*weight))[0, :, 0, 0]
    assert value.tolist() == pytest.approx([w * np.exp(-0.5) for w in weight], rel=1e-12)
    # rotating by 90 degrees swaps the roles of the widths
    swapped = _field(grid, centre, widths[::-1], (angle + np.pi / 2,), weight)
    assert torch.allclose(swapped, u, atol=1e-12)


def test_3d_gaussian_without_rotation_is_a_product_of_1d_gaussians():
    grid = Grid.make((20, 18, 16), (1.0, 1.5, 2.0))
    centre, widths, weight = (9.0, 12.0, 14.0), (3.0, 5.0, 4.0), (0.0, 2.0, -1.0)
    u = _field(grid, centre, widths, (0.0, 0.0, 0.0), weight).numpy()
    x = [np.arange(n) * s for n, s in zip(grid.size, grid.spacing)]
    g = [np.exp(-0.5 * ((xa - c) / w) ** 2) for xa, c, w in zip(x, centre, widths)]
    expected = g[2][:, None, None] * g[1][None, :, None] * g[0][None, None, :]
    for a in range(3):
        assert np.allclose(u[a], weight[a] * expected, atol=1e-12)
    # a rotation about the k axis by 90 degrees exchanges the i and j widths
    rotated = _field(grid, centre, (widths[1], widths[0], widths[2]), (np.pi / 2, 0.0, 0.0), weight).numpy()
    assert np.allclose(rotated, u, atol=1e-12)


def test_same_parameters_same_physical_field_at_any_spacing():
    coarse, fine = Grid.make((21, 21, 1), (2.0, 2.0, 1.0)), Grid.make((81, 81, 1), (0.5, 0.5, 1.0))
    params = ((20.0, 18.0), (5.0, 3.0), (0.4,), (1.0, 2.0))
    u_coarse, u_fine = _field(coarse, *params), _field(fine, *params)
    assert torch.allclose(u_fine[:, ::4, ::4], u_coarse, atol=1e-12)  # fine voxel 4n is coarse voxel n


def test_step_record_places_the_centre_in_lps():
    direction = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # i along P, j along R
    grid = Grid.make((40, 30, 1), (1.0, 2.0, 1.0), (10.0, -5.0, 3.0), direction)
    parameters = GaussianParameters(np.array([4.0, 6.0]), np.array([3.0, 5.0]), np.array([0.2]), np.array([1.0, 0.0]))
    displacement = _field(grid, parameters.centre, parameters.widths, parameters.angles, parameters.weight)[None]
    record = step_record(3, 0.25, parameters, displacement, grid)
    assert record.centre == pytest.approx((10.0 - 6.0, -5.0 + 4.0, 3.0))
    assert record.extent_mm == pytest.approx(10.0)
    assert record.parameters["widths_mm"] == [3.0, 5.0] and record.loss == 0.25
    assert record.displacement.magnitude().max() == pytest.approx(1.0, abs=1e-3)
    assert GaussianParameters.count(2) == 7 and GaussianParameters.count(3) == 12
