#!/usr/bin/env python3
"""Why the shipped networks fail on held-out pairs: one factor changed at a time.

From one held-out image (pyradiomics' brain1 MR, ``sh scripts/get_benchmark_data.sh``), the same pair is
presented with one thing changed from a reference that resembles the training data (axial, 1 mm isotropic,
MR intensities, a cubic B-spline deformation as in training): the deformation family (dense smoothed noise,
local large motions), the grid (oblique by 15 degrees, 2 mm voxels, anisotropic 1 x 2 mm voxels), and the
intensity range (scaled to CT-like Hounsfield values, inverted contrast). Each learned method runs one pass
with its pass kept (``-o refine=none -o start=network``), so the table shows the network alone: mean TRE after
/ before (below 1: it helped; the issue's target is 0.5 or less). 2D and 3D. ISTN runs with both shipped
transformation models and three of its variants.

Writes benchmarks/results/learned_diagnosis.json and .md.

Usage: python benchmarks/learned_diagnosis.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import environment, require  # noqa: E402
from heldout import DATA, axial_slice, rotation  # noqa: E402

from learnreg.image import Image, load_image  # noqa: E402
from learnreg.metrics import tre  # noqa: E402
from learnreg.options import ONE_PASS  # noqa: E402
from learnreg.registration import create_registrar, warm_up  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402
from learnreg.warp import resample_centred  # noqa: E402

#: column -> (method, options): each network's pass alone; ISTN with both shipped transformation
#: models (variant istn-i unless named) and two other variants
METHODS = {"r2n2": ("r2n2", ONE_PASS), "istn affine": ("istn", {**ONE_PASS, "transformation": "affine"}),
           "istn bspline": ("istn", {**ONE_PASS, "transformation": "bspline"}),
           "istn bspline istn-e": ("istn", {**ONE_PASS, "transformation": "bspline", "variant": "istn-e"}),
           "istn bspline stn-u": ("istn", {**ONE_PASS, "transformation": "bspline", "variant": "stn-u"}),
           "cnnregress": ("cnnregress", ONE_PASS)}


def ct_like(image: Image) -> Image:
    """Intensities mapped linearly onto -1000..2000 (Hounsfield-like), same contrast."""
    a = np.asarray(image.array, dtype=np.float32)
    return image.with_array(-1000 + 3000 * (a - a.min()) / max(float(np.ptp(a)), 1e-6))


def inverted(image: Image) -> Image:
    a = np.asarray(image.array, dtype=np.float32)
    return image.with_array(float(a.max()) - a)


def variants(ndim: int, volume: Image) -> dict:
    """Name -> (source image, deformation options); the reference first."""
    def source(spacing, direction=None):
        if ndim == 2:
            s = axial_slice(volume, 12, int(round(192 / spacing[0])), spacing[0])
            if spacing[1] != spacing[0] or direction is not None:
                size = (int(round(192 / spacing[0])), int(round(192 / spacing[1])), 1)
                s = resample_centred(s, size, (spacing[0], spacing[1], 1.0), direction)
            return s
        size = tuple(int(round(e / sp)) for e, sp in zip((160.0, 160.0, 120.0), spacing))
        return resample_centred(volume, size, spacing, direction)

    iso = (1.0, 1.0, 1.0) if ndim == 2 else (2.0, 2.0, 2.0)
    coarse = (2.0, 2.0, 1.0) if ndim == 2 else (4.0, 4.0, 4.0)
    aniso = (1.0, 2.0, 1.0) if ndim == 2 else (2.0, 2.0, 4.0)
    oblique = rotation(15.0, 2) if ndim == 2 else rotation(15.0, 0) @ rotation(10.0, 2)
    reference = source(iso)
    bspline = {"family": "bspline", "max_displacement_mm": 8.0, "smoothness_mm": 48.0}
    return {
        "reference (axial, isotropic, MR, B-spline)": (reference, bspline),
        # the other families at about the same mean displacement as the reference (they are sized by their peak)
        "deformation: dense smoothed noise": (reference, {"family": "dense", "max_displacement_mm": 14.0,
                                                          "smoothness_mm": 80.0}),
        "deformation: local large motions": (reference, {"family": "local", "max_displacement_mm": 18.0,
                                                         "smoothness_mm": 90.0}),
        "grid: oblique 15 degrees": (source(iso, oblique @ volume.grid.direction_matrix), bspline),
        "grid: voxels twice as large": (source(coarse), bspline),
        "grid: anisotropic voxels": (source(aniso), bspline),
        "intensity: CT-like range": (ct_like(reference), bspline),
        "intensity: inverted contrast": (inverted(reference), bspline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2D only")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    require(DATA / "brain1_image.nrrd", "run 'sh scripts/get_benchmark_data.sh'")
    torch.set_num_threads(2)
    warm_up()
    volume = load_image(DATA / "brain1_image.nrrd")
    rows = []
    for ndim in (2,) if args.quick else (2, 3):
        for name, (image, deformation) in variants(ndim, volume).items():
            pair = make_pair(image, seed=31, landmark_count=30, rotation_degrees=2.0, **deformation)
            before = tre(pair.fixed_landmarks.points, pair.moving_landmarks.points)["mean"]
            row = {"ndim": ndim, "variant": name, "tre_before_mm": before}
            for column, (method, options) in METHODS.items():
                result = create_registrar(method, options).register(pair.fixed, pair.moving, device="cpu")
                after = tre(pair.fixed_landmarks.points, pair.moving_landmarks.points, result.field)["mean"]
                row[column] = after / before
                row[f"{column} similarity"] = result.similarity
            rows.append(row)
            print(f"{ndim}D {name:45s} before {before:5.2f} mm  " +
                  "  ".join(f"{m} {row[m]:.2f}" for m in METHODS), flush=True)
    write_results(rows, args.out)
    print((args.out / "learned_diagnosis.md").read_text())


def write_results(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "learned_diagnosis.json").write_text(json.dumps({"environment": environment(), "rows": rows}, indent=2,
                                                           default=float))
    lines = ["# Why the shipped networks fail: one factor at a time", "",
             f"Environment: {environment()}. Written by `benchmarks/learned_diagnosis.py`. Each cell: mean TRE after "
             "the network's pass alone / mean TRE before (below 1 helps; the target is at most 0.5). ISTN: transformation "
             "model, then variant (istn-i unless named).", "",
             "| dim | presented as | TRE before (mm) | " + " | ".join(METHODS) + " |",
             "|---|---|---|" + "---|" * len(METHODS)]
    for r in rows:
        lines.append(f"| {r['ndim']}D | {r['variant']} | {r['tre_before_mm']:.2f} | "
                     + " | ".join(f"{r[m]:.2f}" for m in METHODS) + " |")
    (out / "learned_diagnosis.md").write_text("\n".join(lines) + "\n\n" + NOTES)


NOTES = """## What it says

- **Geometry and intensity range are not the cause.** With the training family of deformation, an oblique grid,
  voxels twice as large, anisotropic voxels or a CT-like intensity range move every network's ratio by about 0.1
  or less from the reference: the working grid (the network sees every image on its own isotropic grid over the
  fixed image) and the normalisation (percentile, then z-score on the working grid) do their job. Inverted
  contrast costs some networks a little (R2N2 2D 0.62 -> 0.80, ISTN B-spline istn-i 3D 0.55 -> 0.80).
- **ISTN's default was a defect: the affine model cannot follow a deformation.** It leaves 0.49 (2D) and 0.88
  (3D) of the TRE on the reference and is worse than doing nothing on the other families in 2D (1.18, 1.27);
  its B-spline model, with the same data and training, leaves 0.15 to 0.80. Among the B-spline variants the
  unsupervised STN (`stn-u`) is the best in 13 of 16 rows. The defaults are now `transformation=bspline`,
  `variant=stn-u` (before: `affine`, `istn-i`).
- **R2N2's 3D weights do almost nothing on a subject they never saw** (0.83 to 1.19 in every row, the
  reference included): a capacity and training problem of the CPU-trained 3D model, not of the presentation.
  In 2D it helps on the training family (0.51 to 0.80) but not on dense smoothed noise (1.13): one Gaussian
  per step cannot follow a field with many small bumps in the steps it is given.
- **The deformation family is the other cause.** Dense smoothed-noise fields are the hardest for every network
  (ISTN 0.36 to 0.72, CNNRegress 0.45 to 0.48); training on other families than cubic B-splines, with the
  held-out benchmark as the judge, is what would move these rows.
- CNNRegress, which regresses a displacement per point from local patches, is the most robust: at most 0.48 in
  every row (2D dense noise is its worst).
"""


if __name__ == "__main__":
    main()
