"""Training images drawn from random label maps (SynthMorph's idea: learn shape, not contrast).

A random label map is the arg-max of ``labels`` smoothed white-noise images (blobs of a random size),
itself warped by a smooth random field so that boundaries are irregular. Its image gives every label a
random mean intensity in [0, 1] and a random within-label texture, then a slight random blur. No anatomy,
no scanner: a network trained on such images (next to real ones) cannot rely on a contrast or an anatomy it
would not meet on a user's images. Structure-of-interest maps come from the label map like a real one's
(:func:`learnreg.training.image_bank.structure_maps`), so label-supervised training can use them too.

Everything lives on the working grid directly (``size`` voxels per axis, array order ``(k,) j, i``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

#: label values are 0 .. labels - 1; the default matches the shipped recipes' structure labels (1, 2, 3 exist)
DEFAULT_LABELS = 12


def random_label_map(shape: Sequence[int], labels: int, rng: np.random.Generator) -> np.ndarray:
    """A label map ``shape`` (array order) with values ``0 .. labels - 1``: the arg-max of ``labels`` noise
    images smoothed by a Gaussian of 1/20 to 1/8 of the size, warped by a smooth random field of up to 1/16
    of the size. Every label value is drawn from the same distribution, so most appear."""
    size = min(shape)
    sigma = size * rng.uniform(1 / 20, 1 / 8)
    noise = np.stack([gaussian_filter(rng.standard_normal(shape), sigma) for _ in range(labels)])
    warp_sigma = size / 6
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    coordinates = []
    for axis_grid in grid:
        offset = gaussian_filter(rng.standard_normal(shape), warp_sigma)
        peak = np.abs(offset).max()
        coordinates.append(axis_grid + offset * (size / 16 / peak if peak > 0 else 0.0))
    warped = np.stack([map_coordinates(channel, coordinates, order=1, mode="nearest") for channel in noise])
    return warped.argmax(axis=0).astype(np.int16)


def label_map_image(label_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An image of ``label_map`` in [0, 1] (float32): per label a mean uniform in [0, 1] and Gaussian texture
    of standard deviation up to 0.1 smoothed over about a voxel, then a blur of 0 to 1 voxel."""
    labels = int(label_map.max()) + 1
    means = rng.uniform(0.0, 1.0, labels)
    spreads = rng.uniform(0.0, 0.1, labels)
    texture = gaussian_filter(rng.standard_normal(label_map.shape), 0.7)
    texture /= max(float(texture.std()), 1e-6)
    image = means[label_map] + spreads[label_map] * texture
    blur = rng.uniform(0.0, 1.0)
    if blur > 0.1:
        image = gaussian_filter(image, blur)
    low, high = float(image.min()), float(image.max())
    return ((image - low) / max(high - low, 1e-6)).astype(np.float32)
