"""Tissue label maps (1 CSF, 2 grey matter, 3 white matter) for the T1 images ISTN trains and is evaluated on,
and the InVesalius head CT as NIfTI with its tissue labels (1 fat, 2 soft tissue, 3 bone).

None of the bundled subjects comes with tissue labels, so they are made the way data.md suggests: a
three-class k-means of the T1 intensities inside the brain, classes ordered by intensity (on T1, CSF is
darkest, white matter brightest). The brain is the image above 10 % of its 99th percentile for images that
are already skull-stripped, or a given mask. Each label map is written next to its image as
``<name>_tissue.nii.gz`` (same grid). These labels are approximate (partial volume, no bias correction);
the model cards and benchmark say so.

The head CT (Debian ``invesalius-examples``, ``Cranium.inv3``, GPL-2; a tar.gz of a raw int16 volume in
Hounsfield units and a plist header) becomes ``training_data/cranium_ct.nii.gz`` (identity direction, the
header's spacing) and ``cranium_ct_tissue.nii.gz``, labelled by fixed Hounsfield ranges: fat -200 to -30,
soft tissue -30 to 250, bone above 250.

Usage: python scripts/make_tissue_labels.py  (after scripts/get_training_data.sh)
"""

from __future__ import annotations

import plistlib
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learnreg.image import Grid, Image, load_image, save_image  # noqa: E402

DATA = ROOT / "training_data" / "usr" / "share"
TEMPLATES = DATA / "mricron" / "templates"
ITK = DATA / "doc" / "insighttoolkit5-examples" / "examples" / "Data"
CRANIUM = DATA / "doc" / "invesalius-examples" / "examples" / "Cranium.inv3"
CRANIUM_CT = ROOT / "training_data" / "cranium_ct.nii.gz"
#: Hounsfield ranges of the CT labels 1 (fat), 2 (soft tissue), 3 (bone)
CT_LABEL_EDGES_HU = (-200.0, -30.0, 250.0)

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


def invesalius_volume(project: Path) -> Image:
    """The CT volume (Hounsfield units, float32) of an InVesalius ``.inv3`` project, identity direction."""
    with tarfile.open(project) as archive:
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
        header = plistlib.loads(archive.extractfile(members["main.plist"]).read())
        matrix = header["matrix"]
        raw = archive.extractfile(members[matrix["filename"]]).read()
    array = np.frombuffer(raw, dtype=np.dtype(matrix["dtype"])).reshape(matrix["shape"]).astype(np.float32)
    return Image(array, Grid.make(tuple(reversed(array.shape)), tuple(float(s) for s in header["spacing"])))


def ct_tissue_labels(ct: Image) -> Image:
    """Labels 1 fat, 2 soft tissue, 3 bone by :data:`CT_LABEL_EDGES_HU`; 0 elsewhere (air)."""
    array = np.asarray(ct.array)
    labels = np.digitize(array, CT_LABEL_EDGES_HU).astype(np.uint8)  # 0 below fat, 1 fat, 2 soft, 3 bone
    return Image(labels, ct.grid)


def convert_cranium_ct() -> None:
    if not CRANIUM.is_file():
        sys.exit(f"{CRANIUM} is missing: run scripts/get_training_data.sh first")
    ct = invesalius_volume(CRANIUM)
    save_image(ct, CRANIUM_CT)
    labels = ct_tissue_labels(ct)
    save_image(labels, CRANIUM_CT.with_name("cranium_ct_tissue.nii.gz"))
    counts = np.bincount(np.asarray(labels.array).ravel(), minlength=4)[1:]
    print(f"{CRANIUM_CT.name} {ct.grid.size} voxels of {ct.grid.spacing} mm: fat/soft tissue/bone voxels "
          f"{counts.tolist()}")


def main() -> None:
    for image_path, mask_path in IMAGES:
        if not image_path.is_file():
            sys.exit(f"{image_path} is missing: run scripts/get_training_data.sh first")
        labels = tissue_labels(load_image(image_path), load_image(mask_path) if mask_path else None)
        out = image_path.with_name(image_path.name.replace(".nii.gz", "_tissue.nii.gz"))
        save_image(labels, out)
        counts = np.bincount(np.asarray(labels.array).ravel(), minlength=4)[1:]
        print(f"{out.name}: CSF/GM/WM voxels {counts.tolist()}")
    convert_cranium_ct()


if __name__ == "__main__":
    main()
