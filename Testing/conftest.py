"""Shared fixtures: real bundled images, put on oblique anisotropic grids, and synthetic pairs from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from learnreg.image import Grid, Image, load_image, save_image
from learnreg.landmarks import write_landmarks
from learnreg.sample_data import sample_image
from learnreg.synthetic import make_pair
from learnreg.warp import resample_to_grid


def oblique_grid_around(image: Image, spacing, degrees, ndim: int = 3) -> Grid:
    """A grid rotated by ``degrees`` (xyz Euler; only about z for 2D) covering ``image``'s centre region."""
    if ndim == 3:
        rotation = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    else:
        rotation = Rotation.from_euler("z", degrees[0], degrees=True).as_matrix()
    direction = image.grid.direction_matrix @ rotation
    extent = image.grid.extent_mm * (0.85 if ndim == 3 else 0.9)
    size = [max(1, int(e / s) + 1) for e, s in zip(extent, spacing)]
    if ndim == 2:
        size[2] = 1
    spacing = list(spacing)
    centre_offset = direction @ ((np.asarray(size) - 1) * np.asarray(spacing) / 2)
    origin = image.grid.centre - centre_offset
    return Grid.make(size, spacing, origin, direction)


@pytest.fixture(scope="session")
def colin_oblique() -> Image:
    """Colin27 resampled onto a 25/-15/20 degree oblique grid with 2.4 x 3.0 x 3.6 mm voxels."""
    colin = load_image(sample_image("colin27_t1_3mm"))
    return resample_to_grid(colin, oblique_grid_around(colin, (2.4, 3.0, 3.6), (25, -15, 20)))


@pytest.fixture(scope="session")
def slice_oblique() -> Image:
    """ITK's BrainT1Slice on a 2D grid rotated 30 degrees in plane, 1.1 x 1.4 mm pixels."""
    brain = load_image(sample_image("brain_t1_slice"))
    return resample_to_grid(brain, oblique_grid_around(brain, (1.1, 1.4, 1.0), (30,), ndim=2))


def _write_pair(pair, folder):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "fixed": folder / "fixed.nrrd", "moving": folder / "moving.nii.gz",
        "fixed_landmarks": folder / "fixed.mrk.json", "moving_landmarks": folder / "moving.fcsv",
    }
    save_image(pair.fixed, paths["fixed"])
    save_image(pair.moving, paths["moving"])
    write_landmarks(pair.fixed_landmarks, paths["fixed_landmarks"], "RAS")
    write_landmarks(pair.moving_landmarks, paths["moving_landmarks"], "LPS")
    return paths


@pytest.fixture(scope="session")
def pair3d(colin_oblique, tmp_path_factory):
    """A synthetic 3D pair (up to 7 mm smooth field + affine jitter) with exact landmarks, on disk."""
    pair = make_pair(colin_oblique, seed=11, max_displacement_mm=7.0, smoothness_mm=50.0, rotation_degrees=3.0,
                     translation_mm=3.0, landmark_count=25)
    return pair, _write_pair(pair, tmp_path_factory.mktemp("pair3d"))


@pytest.fixture(scope="session")
def pair2d(slice_oblique, tmp_path_factory):
    """A synthetic 2D (single-slice) pair with exact landmarks, on disk."""
    pair = make_pair(slice_oblique, seed=5, max_displacement_mm=7.0, smoothness_mm=45.0, rotation_degrees=3.0,
                     translation_mm=3.0, landmark_count=25)
    return pair, _write_pair(pair, tmp_path_factory.mktemp("pair2d"))


def tiny_training_sections(steps: int) -> str:
    """The ``[training]`` and ``[output]`` sections of the tiny training configurations the tests write."""
    return f"""
[training]
steps = {steps}
batch_size = 2
log_every = 1
validate_every = 2
checkpoint_every = 2
validation_pairs = 2
threads = 1

[output]
folder = "run"
weights_path = "out/model.pt"
"""


def labelled_volume(folder: Path) -> tuple[Path, Path]:
    """The bundled Colin27 at 3 mm with three intensity classes as labels (1 dark .. 3 bright), written into
    ``folder`` as ``t1.nii.gz`` and ``t1_labels.nii.gz``."""
    image = load_image(sample_image("colin27_t1_3mm"))
    array = np.asarray(image.array, dtype=np.float32)
    brain = array > 0.1 * np.percentile(array, 99)
    cuts = np.percentile(array[brain], [33, 66])
    labels = np.where(brain, 1 + np.digitize(array, cuts), 0).astype(np.uint8)
    save_image(image, folder / "t1.nii.gz")
    save_image(Image(labels, image.grid), folder / "t1_labels.nii.gz")
    return folder / "t1.nii.gz", folder / "t1_labels.nii.gz"


def tiny_structure_data_section(folder: Path, slice_step_mm: float) -> str:
    """The ``[data]`` section of a tiny training configuration with labels (:func:`labelled_volume` for
    training and validation; grey and white matter as the structures)."""
    image, labels = labelled_volume(folder)
    return f"""
[data]
images = ["{image.name}"]
label_images = ["{labels.name}"]
validation_images = ["{image.name}"]
validation_label_images = ["{labels.name}"]
structure_labels = [[2], [3]]
slice_step_mm = {slice_step_mm}
"""


def fit_objective(objective, batch, steps: int, learning_rate: float = 3e-3) -> tuple[list, dict]:
    """Adam on a training objective (``objective(batch) -> (loss, stats)``) for ``steps`` steps on one batch;
    returns the losses and the last step's statistics."""
    import torch

    optimiser = torch.optim.Adam(objective.parameters(), lr=learning_rate)
    losses, stats = [], {}
    for _ in range(steps):
        loss, stats = objective(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses, stats
