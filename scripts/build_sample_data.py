#!/usr/bin/env python3
"""Build learnreg's bundled sample data from Debian packages of real images (run once; outputs committed).

Sources (see learnreg/data/SOURCES.md for licences):
  * mricron-data: Colin27 (``ch2bet.nii.gz``, brain-extracted single-subject T1, BSD-3-Clause).
  * insighttoolkit5-examples: ``BrainT1Slice.png``, ``RatLungSlice1.mha``, ``RatLungSlice2.mha``,
    ``KmeansTest_T1UCharRaw.nii.gz`` (Apache-2.0).

Usage:  python scripts/build_sample_data.py [--debs DIR]
``--debs`` names a folder holding the two ``.deb`` files; without it they are fetched with
``apt-get download``. Everything is deterministic: the same packages give the same files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.cluster.vq import kmeans2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learnreg.image import Image, save_image  # noqa: E402
from learnreg.landmarks import write_landmarks  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402

PACKAGES = ("mricron-data", "insighttoolkit5-examples")
OUT = ROOT / "learnreg" / "data"
ITK_DATA = "usr/share/doc/insighttoolkit5-examples/examples/Data"


def extract(debs: Path, into: Path) -> None:
    for name in PACKAGES:
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
            found = sorted(debs.glob(f"{name}_*.deb"))
        subprocess.run(["dpkg", "-x", str(found[-1]), str(into)], check=True)


def colin27(root: Path, spacing_mm: float = 3.0) -> tuple[sitk.Image, sitk.Image]:
    """Colin27 brain cropped to the head, smoothed and resampled to ``spacing_mm``; k-means tissue labels."""
    t1 = sitk.ReadImage(str(root / "usr/share/mricron/templates/ch2bet.nii.gz"), sitk.sitkFloat32)
    mask = sitk.GetArrayFromImage(t1) > 0
    k, j, i = np.nonzero(mask)
    lo = np.maximum([i.min() - 6, j.min() - 6, k.min() - 6], 0)
    hi = np.minimum([i.max() + 7, j.max() + 7, k.max() + 7], t1.GetSize())
    cropped = t1[int(lo[0]):int(hi[0]), int(lo[1]):int(hi[1]), int(lo[2]):int(hi[2])]
    smooth = sitk.SmoothingRecursiveGaussian(cropped, 0.5 * spacing_mm)
    size = [int(round(n * s / spacing_mm)) for n, s in zip(cropped.GetSize(), cropped.GetSpacing())]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing([spacing_mm] * 3)
    ref.SetDirection(cropped.GetDirection())
    ref.SetOrigin(cropped.TransformContinuousIndexToPhysicalPoint([(spacing_mm / s - 1) / 2 for s in cropped.GetSpacing()]))
    small = sitk.Resample(smooth, ref, sitk.Transform(), sitk.sitkLinear, 0.0)
    array = sitk.GetArrayFromImage(small)
    array = np.clip(np.rint(255 * array / np.percentile(array, 99.9)), 0, 255).astype(np.uint8)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(small)
    # tissue classes by k-means on brain intensities: 1 = CSF, 2 = grey matter, 3 = white matter
    brain = array > 8
    values = array[brain].astype(float)
    centroids, assignment = kmeans2(values[:, None], np.array([[40.0], [120.0], [200.0]]), minit="matrix", seed=0)
    rank = np.argsort(np.argsort(centroids[:, 0]))
    labels = np.zeros(array.shape, np.uint8)
    labels[brain] = rank[assignment] + 1
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(small)
    return image, label_image


def slice_2d(path: Path) -> sitk.Image:
    image = sitk.ReadImage(str(path))
    if image.GetNumberOfComponentsPerPixel() > 1:
        image = sitk.VectorIndexSelectionCast(image, 0)
    return sitk.Cast(image, sitk.sitkUInt8)


def write_pair(name: str, pair, source_note: str, fixed_dtype=np.float32) -> None:
    """Write a synthetic pair; an integer ``fixed_dtype`` rounds the warped image (a smaller file)."""
    folder = OUT / "pairs" / name
    folder.mkdir(parents=True, exist_ok=True)
    fixed = np.asarray(pair.fixed.array)
    if np.issubdtype(fixed_dtype, np.integer):
        fixed = np.clip(np.rint(fixed), np.iinfo(fixed_dtype).min, np.iinfo(fixed_dtype).max)
    save_image(pair.fixed.with_array(fixed.astype(fixed_dtype)), folder / "fixed.nii.gz")
    save_image(pair.moving, folder / "moving.nii.gz")
    write_landmarks(pair.fixed_landmarks, folder / "fixed_landmarks.mrk.json")
    write_landmarks(pair.moving_landmarks, folder / "moving_landmarks.mrk.json")
    if pair.fixed_labels is not None:
        save_image(pair.fixed_labels, folder / "fixed_labels.nii.gz")
        save_image(pair.moving_labels, folder / "moving_labels.nii.gz")
    (folder / "README.md").write_text(source_note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debs", type=Path, help="folder holding (or receiving) the .deb packages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        debs = args.debs or Path(tmp) / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        root = Path(tmp) / "root"
        extract(debs, root)
        OUT.mkdir(parents=True, exist_ok=True)
        t1, tissue = colin27(root)
        sitk.WriteImage(t1, str(OUT / "colin27_t1_3mm.nii.gz"), useCompression=True)
        sitk.WriteImage(tissue, str(OUT / "colin27_tissue_3mm.nii.gz"), useCompression=True)
        itk = root / ITK_DATA
        brain2d = slice_2d(itk / "BrainT1Slice.png")
        sitk.WriteImage(brain2d, str(OUT / "brain_t1_slice.nii.gz"), useCompression=True)
        head3d = sitk.Cast(sitk.ReadImage(str(itk / "KmeansTest_T1UCharRaw.nii.gz")), sitk.sitkUInt8)
        for n in (1, 2):
            sitk.WriteImage(slice_2d(itk / f"RatLungSlice{n}.mha"), str(OUT / f"rat_lung_slice{n}.nii.gz"),
                            useCompression=True)

    source_3d = Image.from_sitk(t1)
    labels_3d = Image.from_sitk(tissue)
    pair3d = make_pair(source_3d, seed=3, max_displacement_mm=8.0, smoothness_mm=45.0, rotation_degrees=4.0,
                       translation_mm=4.0, landmark_count=20, labels=labels_3d)
    write_pair("brain3d", pair3d, "# brain3d\nFixed = Colin27 (3 mm) warped by a known smooth field (seed 3, up to 8 mm "
               "plus 4 degree / 4 mm affine jitter); moving = Colin27. Landmarks are exact pairs: moving = fixed + "
               "v(fixed). Labels: k-means tissue classes 1 CSF, 2 GM, 3 WM. Built by scripts/build_sample_data.py.\n")
    pair2d = make_pair(Image.from_sitk(brain2d), seed=2, max_displacement_mm=8.0, smoothness_mm=50.0,
                       rotation_degrees=4.0, translation_mm=4.0, landmark_count=20)
    write_pair("brain2d", pair2d, "# brain2d\nFixed = ITK's BrainT1Slice warped by a known smooth field (seed 2, up to "
               "8 mm plus 4 degree / 4 mm affine jitter); moving = BrainT1Slice. Landmarks are exact pairs. Built by "
               "scripts/build_sample_data.py.\n")
    pair_head = make_pair(Image.from_sitk(head3d), seed=4, max_displacement_mm=8.0, smoothness_mm=45.0,
                          rotation_degrees=4.0, translation_mm=4.0, landmark_count=20)
    write_pair("head3d", pair_head, "# head3d\nFixed = ITK's KmeansTest T1 head (2 x 2 x 3 mm, another person than "
               "Colin27; no shipped model trained or validated on it) warped by a known smooth field (seed 4, up "
               "to 8 mm plus 4 degree / 4 mm affine jitter), rounded to 8 bits; moving = the T1. Landmarks are "
               "exact pairs. Built by scripts/build_sample_data.py.\n", fixed_dtype=np.uint8)
    print(f"sample data written to {OUT}")


if __name__ == "__main__":
    main()
