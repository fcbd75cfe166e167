"""Tissue label maps (1 CSF, 2 grey matter, 3 white matter) for the T1 images ISTN trains and is evaluated on.

None of the bundled subjects comes with tissue labels, so they are made the way data.md suggests: a
three-class k-means of the T1 intensities inside the brain, classes ordered by intensity (on T1, CSF is
darkest, white matter brightest). The brain is the image above 10 % of its 99th percentile for images that
are already skull-stripped, or a given mask. Each label map is written next to its image as
``<name>_tissue.nii.gz`` (same grid). These labels are approximate (partial volume, no bias correction);
the model cards and benchmark say so.

Usage: python scripts/make_tissue_labels.py  (after scripts/get_training_data.sh)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learnreg.image import Image, load_image, save_image  # noqa: E402

DATA = ROOT / "training_data" / "usr" / "share"
TEMPLATES = DATA / "mricron" / "templates"
ITK = DATA / "doc" / "insighttoolkit5-examples" / "examples" / "Data"

#: (T1 image, brain mask or None when the image is skull-stripped)
IMAGES = [
    (TEMPLATES / "ch2bet.nii.gz", None),
    (TEMPLATES / "inia19-t1-brain.nii.gz", None),
    (ITK / "KmeansTest_T1UCharRaw.nii.gz", ITK / "KmeansTest_T1RawSkullStrip.nii.gz"),
]


def kmeans_1d(values: np.ndarray, classes: int = 3, iterations: int = 50) -> np.ndarray:
    """Class centres (ascending) of a 1D k-means started at evenly spaced percentiles."""
    centres = np.percentile(values, np.linspace(15, 85, classes))
    for _ in range(iterations):
        assignment = np.abs(values[:, None] - centres[None]).argmin(1)
        updated = np.array([values[assignment == c].mean() if np.any(assignment == c) else centres[c]
                            for c in range(classes)])
        if np.allclose(updated, centres):
            break
        centres = updated
    return np.sort(centres)


def tissue_labels(image: Image, mask: Image | None) -> Image:
    array = np.asarray(image.array, dtype=np.float32)
    if mask is None:
        brain = array > 0.1 * np.percentile(array, 99)
    else:
        brain = np.asarray(mask.array) > 0
    centres = kmeans_1d(array[brain])
    labels = np.zeros(array.shape, dtype=np.uint8)
    labels[brain] = 1 + np.abs(array[brain][:, None] - centres[None]).argmin(1)
    return Image(labels, image.grid)


def main() -> None:
    for image_path, mask_path in IMAGES:
        if not image_path.is_file():
            sys.exit(f"{image_path} is missing: run scripts/get_training_data.sh first")
        labels = tissue_labels(load_image(image_path), load_image(mask_path) if mask_path else None)
        out = image_path.with_name(image_path.name.replace(".nii.gz", "_tissue.nii.gz"))
        save_image(labels, out)
        counts = np.bincount(np.asarray(labels.array).ravel(), minlength=4)[1:]
        print(f"{out.name}: CSF/GM/WM voxels {counts.tolist()}")


if __name__ == "__main__":
    main()
