"""The overview picture: axial and coronal planes chosen from the image's direction, superior up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnreg.field import DisplacementField
from learnreg.image import Grid, Image
from learnreg.registration import RegistrationResult
from learnreg.visualize import _slice, plane_axes, save_overview


def test_planes_follow_the_direction_not_the_index_order():
    lps = Grid.make((8, 9, 10))
    assert plane_axes(lps, "axial") == (2, 0, 1) and plane_axes(lps, "coronal") == (1, 0, 2)
    # j runs superior and k anterior (ITK's KmeansTest head): axial is normal to j, coronal to k
    tilted = Grid.make((8, 9, 10), direction=(1, 0, 0, 0, 0, -1, 0, 1, 0))
    assert plane_axes(tilted, "axial") == (1, 0, 2) and plane_axes(tilted, "coronal") == (2, 0, 1)
    assert plane_axes(Grid.make((8, 9, 1)), "coronal") == (2, 0, 1)  # 2D: the image itself


def test_slices_are_rows_by_columns_of_the_chosen_axes():
    array = np.arange(4 * 3 * 2).reshape(4, 3, 2)  # (k, j, i)
    np.testing.assert_array_equal(_slice(array, (2, 0, 1), 1), array[1])  # (j, i)
    np.testing.assert_array_equal(_slice(array, (1, 0, 2), 2), array[:, 2])  # (k, i)
    np.testing.assert_array_equal(_slice(array, (0, 2, 1), 0), array[:, :, 0].T)  # columns k, rows j


@pytest.mark.parametrize("plane", ["axial", "coronal"])
def test_overview_draws_either_plane(tmp_path, plane):
    grid = Grid.make((24, 20, 16), (1.0, 1.0, 2.0))
    image = Image(np.random.default_rng(0).random((16, 20, 24)).astype(np.float32), grid)
    field = DisplacementField.from_axis_tensor(torch.zeros(1, 3, 16, 20, 24), grid)
    result = RegistrationResult(method="identity", field=field, warped=image, parameter_count=0, timings={},
                                device="cpu")
    out = tmp_path / f"{plane}.png"
    points = np.array([[10.0, 9.0, 14.0]])
    save_overview(out, image, image, result, points, points, plane=plane)
    assert out.stat().st_size > 10_000
