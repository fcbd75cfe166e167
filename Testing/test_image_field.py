"""Images in physical space, exact warping, fields, composition, Jacobians and their file formats."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from learnreg.errors import InputError
from learnreg.field import DisplacementField, field_from_transform, load_field
from learnreg.image import Grid, Image, check_pair, load_image, normalise_percentile, normalise_zscore, save_image
from learnreg.sample_data import DATA_DIR
from learnreg.warp import resample_to_grid


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_image_round_trip_keeps_geometry(colin_oblique, tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    save_image(colin_oblique, path)
    back = load_image(path)
    assert back.grid.same_as(colin_oblique.grid, atol=1e-5)
    assert np.allclose(back.array, colin_oblique.array, atol=1e-5)


def test_2d_png_is_single_slice_volume():
    image = load_image(DATA_DIR / "pairs" / "brain2d" / "moving.nii.gz")
    assert image.grid.size[2] == 1 and image.ndim == 2
    assert image.spatial_array().ndim == 2


def test_physical_index_round_trip(colin_oblique):
    idx = np.array([[1.5, 2.0, 3.25], [10, 0, 7]])
    assert np.allclose(colin_oblique.grid.physical_to_index(colin_oblique.grid.index_to_physical(idx)), idx)


@pytest.mark.parametrize("kwargs,message", [
    ({"spacing": (1, 0, 1)}, "spacing"),
    ({"spacing": (1, -2, 1)}, "spacing"),
    ({"direction": np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]])}, "orthonormal"),
])
def test_bad_grids_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        Grid.make((4, 4, 4), **kwargs)


def test_bad_images_are_refused(colin_oblique, slice_oblique):
    nan = colin_oblique.array.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_pair(colin_oblique.with_array(nan), colin_oblique)
    with pytest.raises(InputError, match="constant"):
        check_pair(colin_oblique, colin_oblique.with_array(np.full(colin_oblique.array.shape, 3.0)))
    with pytest.raises(InputError, match="same dimensionality"):
        check_pair(colin_oblique, slice_oblique)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nothing.nii.gz", "fixed image")
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="fixed image file .*broken.nii.gz is truncated or corrupt"):
        load_image(bad, "fixed image")


def test_normalisation():
    a = np.random.default_rng(0).normal(5, 3, (10, 10, 10))
    z = normalise_zscore(a, clamp=2.0)
    assert z.min() >= -2 and z.max() <= 2 and abs(float(np.median(z))) < 0.1
    p = normalise_percentile(a)
    assert p.min() == 0.0 and p.max() == 1.0


def _smooth_random_field(grid: Grid, seed: int, amplitude: float) -> DisplacementField:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    v = gaussian_filter(rng.normal(size=(*grid.shape, 3)), (3, 3, 3, 0))
    v *= amplitude / np.abs(v).max()
    return DisplacementField(v, grid)


def test_warp_equals_simpleitk_resample_oblique(colin_oblique):
    """Moving on its own oblique grid, field on another oblique anisotropic grid: same as ITK."""
    from scipy.spatial.transform import Rotation

    fixed_grid = Grid.make((30, 26, 20), (2.2, 1.9, 3.5), colin_oblique.grid.centre - 25,
                           Rotation.from_euler("xyz", [-10, 30, 5], degrees=True).as_matrix())
    field = _smooth_random_field(fixed_grid, 1, 6.0)
    warped = resample_to_grid(colin_oblique, fixed_grid, field.to_axis_tensor())
    reference = Image(np.zeros(fixed_grid.shape, np.float32), fixed_grid).to_sitk()
    expected = sitk.GetArrayFromImage(sitk.Resample(colin_oblique.to_sitk(), reference, field.to_sitk_transform(),
                                                    sitk.sitkLinear, 0.0))
    assert (expected != 0).mean() > 0.3
    assert np.abs(expected - warped.array).max() < 1e-3


def test_field_files_round_trip(colin_oblique, tmp_path):
    field = _smooth_random_field(colin_oblique.grid, 2, 5.0)
    for name in ("field.h5", "field.nii.gz", "field.nrrd"):
        field.save(tmp_path / name)
        back = load_field(tmp_path / name)
        assert back.grid.same_as(field.grid, atol=1e-5)
        assert np.allclose(back.vectors, field.vectors, atol=1e-5)
    points = colin_oblique.grid.physical_points().reshape(-1, 3)[::101]
    transform = sitk.ReadTransform(str(tmp_path / "field.h5"))
    via_sitk = np.array([transform.TransformPoint(tuple(p)) for p in points])
    assert np.allclose(via_sitk, field.transform_points(points), atol=1e-6)


def test_affine_transform_sampled_as_field(colin_oblique):
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.05, 0.02, 0, -0.01, 0.97, 0.03, 0, 0.01, 1.02))
    affine.SetTranslation((2.0, -1.0, 0.5))
    field = field_from_transform(affine, colin_oblique.grid)
    points = colin_oblique.grid.physical_points().reshape(-1, 3)[::53]
    assert np.allclose(field.transform_points(points), [affine.TransformPoint(tuple(p)) for p in points], atol=1e-5)
    # det J of an affine field is the matrix determinant everywhere
    det = field.jacobian_determinant()
    assert np.allclose(det, np.linalg.det(np.reshape(affine.GetMatrix(), (3, 3))), atol=1e-6)


def test_compose_matches_sequential_warping(slice_oblique):
    grid = slice_oblique.grid
    a = _smooth_random_field(grid, 3, 4.0)
    b = _smooth_random_field(grid, 4, 4.0)
    a = DisplacementField(a.vectors @ grid.direction_matrix[:, :2] @ grid.direction_matrix[:, :2].T, grid)
    b = DisplacementField(b.vectors @ grid.direction_matrix[:, :2] @ grid.direction_matrix[:, :2].T, grid)
    composed = a.compose(b)
    once = resample_to_grid(slice_oblique, grid, composed.to_axis_tensor())
    twice = resample_to_grid(resample_to_grid(slice_oblique, grid, a.to_axis_tensor()), grid, b.to_axis_tensor())
    target = grid.physical_to_index(grid.physical_points() + composed.vectors)[..., :2]
    inner = np.all((target > 3) & (target < np.asarray(grid.size[:2]) - 4), axis=-1)
    assert np.abs(once.array - twice.array)[inner].mean() < 0.02 * float(slice_oblique.array.max())
    # translations compose exactly
    t1 = DisplacementField(np.broadcast_to(grid.direction_matrix[:, 0] * 2.0, (*grid.shape, 3)).copy(), grid)
    t2 = DisplacementField(np.broadcast_to(grid.direction_matrix[:, 1] * -1.5, (*grid.shape, 3)).copy(), grid)
    assert np.allclose(t1.compose(t2).vectors, t1.vectors + t2.vectors)


def test_axis_tensor_round_trip_2d(slice_oblique):
    grid = slice_oblique.grid
    t = torch.randn(1, 2, *grid.spatial_shape)
    field = DisplacementField.from_axis_tensor(t, grid)
    assert np.allclose(field.vectors @ grid.direction_matrix[:, 2], 0, atol=1e-6)  # no out-of-plane part
    assert torch.allclose(field.to_axis_tensor(), t, atol=1e-5)
