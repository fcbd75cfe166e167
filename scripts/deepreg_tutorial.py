#!/usr/bin/env python3
"""The DeepReg tutorial's three registrations, reproduced offline with LearnReg: writes docs/tutorial.md and
its pictures (docs/images/tutorial-*.png), every number measured by this run.

1. Classical affine "self-registration": an image and an affinely moved copy of itself (the bundled head3d
   volume, ITK's KmeansTest T1), ``affine``.
2. Classical nonrigid inter-subject registration: Colin27 (bundled, 3 mm, k-means tissue labels) and another
   person (ITK's KmeansTest T1, brain only, with its k-means tissue labels), ``bspline`` (an affine stage, then
   the multi-resolution B-spline), Dice per tissue before and after.
3. Learned paired registration: the tutorial's demo registers inspiration to expiration CT of one patient with
   a trained network; here the shipped 3D paired-CT ``ddfnet`` (velocity field; trained on a head CT moved by
   breathing motion, and label synthesis) registers a held-out chest CT (pyradiomics' lung1) to itself moved
   by breathing motion plus a small dense deformation (a paired, intra-subject case), in one pass and
   refined, next to ``bspline``.

Needs scripts/get_training_data.sh and scripts/make_tissue_labels.py (for the KmeansTest labels) and
scripts/get_benchmark_data.sh (the held-out chest CT).
Usage: python scripts/deepreg_tutorial.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
KMEANS = ROOT / "training_data/usr/share/doc/insighttoolkit5-examples/examples/Data"
CHEST_CT = ROOT / "benchmark_data/pyradiomics/lung1_image.nrrd"
CT_WEIGHTS = ROOT / "Resources/Models/ddfnet_3d_ct_svf.pt"

from learnreg.image import Image, load_image  # noqa: E402
from learnreg.metrics import dice_per_label, folding, tre  # noqa: E402
from learnreg.model_files import card_path  # noqa: E402
from learnreg.options import ONE_PASS  # noqa: E402
from learnreg.registration import create_registrar  # noqa: E402
from learnreg.sample_data import sample_image, sample_pairs  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402
from learnreg.visualize import save_overview  # noqa: E402
from learnreg.warp import resample_centred, resample_to_grid  # noqa: E402

TISSUES = {1: "CSF", 2: "grey matter", 3: "white matter"}


def timed(method: str, fixed: Image, moving: Image, options=None):
    start = time.perf_counter()
    result = create_registrar(method, options).register(fixed, moving)
    return result, time.perf_counter() - start


def tre_line(pair, result) -> tuple[float, float]:
    points = (pair.fixed_landmarks.points, pair.moving_landmarks.points)
    return tre(*points)["mean"], tre(*points, result.field)["mean"]


def self_registration() -> list[str]:
    source = load_image(sample_pairs()["head3d"].fixed)
    pair = make_pair(source, seed=7, rotation_degrees=12.0, scaling=0.08, translation_mm=10.0,
                     max_displacement_mm=1e-6)
    result, seconds = timed("affine", pair.fixed, pair.moving)
    before, after = tre_line(pair, result)
    error = np.abs(result.field.vectors - pair.true_field.vectors)
    save_overview(DOCS / "images/tutorial-affine.png", pair.fixed, pair.moving, result,
                  pair.fixed_landmarks.points, pair.moving_landmarks.points, "affine self-registration (head3d)")
    return ["## 1. Classical affine self-registration", "",
            "The bundled `head3d` volume (ITK's KmeansTest T1, 1.02 M voxels) and a copy of itself moved by a random "
            "affine map (rotation up to 12 degrees, scaling up to 8 %, translation up to 10 mm); `learnreg register "
            "--method affine`.", "",
            f"- Landmark TRE {before:.2f} mm before, **{after:.3f} mm** after; largest field error "
            f"{error.max():.3f} mm; {seconds:.1f} s on this CPU.", "",
            "![affine self-registration](images/tutorial-affine.png)", ""]


def inter_subject() -> list[str]:
    fixed, fixed_labels = load_image(sample_image("colin27_t1_3mm")), load_image(sample_image("colin27_tissue_3mm"))
    head, head_labels = load_image(KMEANS / "KmeansTest_T1UCharRaw.nii.gz"), load_image(
        KMEANS / "KmeansTest_T1UCharRaw_tissue.nii.gz")
    # the two volumes lie in unrelated physical spaces: shift the moving one's origin so that the centres
    # coincide (what the affine stage would find first), so that "no registration" shows something
    shift = np.asarray(fixed.grid.centre) - np.asarray(head.grid.centre)
    grid = dataclasses.replace(head.grid, origin=tuple(float(v) for v in np.asarray(head.grid.origin) + shift))
    head, head_labels = Image(head.array, grid), Image(head_labels.array, grid)
    brain = np.asarray(head_labels.array) > 0  # the moving brain: inside its tissue labels
    moving = Image(np.where(brain, np.asarray(head.array, np.float32), 0.0), head.grid)
    rows = []
    results = {}
    for method in ("affine", "bspline"):
        result, seconds = timed(method, fixed, moving)
        warped = resample_to_grid(head_labels, fixed.grid, result.field.to_axis_tensor(), nearest=True)
        dice = dice_per_label(fixed_labels.array, warped.array)
        rows.append((method, dice, seconds, folding(result.field)["percent_nonpositive_jacobian"]))
        results[method] = result
    before = dice_per_label(fixed_labels.array, resample_to_grid(head_labels, fixed.grid, nearest=True).array)
    save_overview(DOCS / "images/tutorial-inter-subject.png", fixed, moving, results["bspline"],
                  title="inter-subject: KmeansTest to Colin27, bspline")
    lines = ["## 2. Classical nonrigid inter-subject registration", "",
             "Colin27 (bundled, 3 mm) is the fixed image; another person, ITK's KmeansTest T1 (brain only), the "
             "moving one, its centre moved onto Colin27's. Both have k-means tissue labels "
             "(`scripts/make_tissue_labels.py`; approximate), which the registration never sees; they measure it. "
             "`affine`, then `bspline` (its own affine stage, then the multi-resolution B-spline with bending "
             "energy, on the loss library every method shares).", "",
             "| | " + " | ".join(f"Dice {name}" for name in TISSUES.values()) + " | seconds | det J <= 0 (%) |",
             "|---|" + "---|" * (len(TISSUES) + 2),
             "| no registration (centres aligned) | " + " | ".join(f"{before.get(k, float('nan')):.3f}"
                                                                    for k in TISSUES) + " | | |"]
    for method, dice, seconds, fold in rows:
        lines.append(f"| `{method}` | " + " | ".join(f"{dice.get(k, float('nan')):.3f}" for k in TISSUES)
                     + f" | {seconds:.1f} | {fold:.3f} |")
    return lines + ["", "![inter-subject](images/tutorial-inter-subject.png)", ""]


def learned_paired() -> list[str]:
    if not CHEST_CT.is_file():
        sys.exit(f"{CHEST_CT} is missing: run scripts/get_benchmark_data.sh first")
    ct = resample_centred(load_image(CHEST_CT), (128, 128, 48), (2.5, 2.5, 5.0))
    pair = make_pair(ct, seed=31, breathing_mm=12.0, max_displacement_mm=3.0, smoothness_mm=60.0, family="dense",
                     landmark_count=40)
    card = json.loads(card_path(CT_WEIGHTS).read_text())
    weights = {"weights": str(CT_WEIGHTS)}
    lines = ["## 3. Learned paired registration", "",
             "The tutorial's demo trains a network on paired inspiration/expiration CTs of patients and registers a "
             "new patient's pair in one pass. Here the shipped 3D paired-CT `ddfnet` (velocity-field output, trained "
             f"combined for {card['training']['iterations']} iterations on "
             f"{', '.join(card['data']['training_images'])} and images drawn from random label maps, moved by "
             "breathing motion or smooth random deformations: `Resources/Models/ddfnet_3d_ct_svf.md`; "
             "`-o weights=Resources/Models/ddfnet_3d_ct_svf.pt`) "
             "registers a chest CT of a patient no training saw (pyradiomics' lung1, held out; "
             "`sh scripts/get_benchmark_data.sh`), resampled to 2.5 x 2.5 x 5 mm, to itself moved by breathing "
             "motion (12 mm at the diaphragm) plus a small dense deformation: a paired, intra-subject case with "
             "exact landmarks. No free chest CT is left to train on (the two pyradiomics CTs are the held-out "
             "benchmark's), so the network has learned CT, and breathing, from a head CT.", "",
             "| | mean TRE (mm) | seconds | det J <= 0 (%) |", "|---|---|---|---|"]
    before = tre(pair.fixed_landmarks.points, pair.moving_landmarks.points)["mean"]
    lines.append(f"| no registration | {before:.2f} | | |")
    for label, method, options in (("`ddfnet`, one pass", "ddfnet", {**weights, **ONE_PASS}),
                                   ("`ddfnet`, refined (default)", "ddfnet", weights), ("`bspline`", "bspline", None)):
        result, seconds = timed(method, pair.fixed, pair.moving, options)
        after = tre(pair.fixed_landmarks.points, pair.moving_landmarks.points, result.field)["mean"]
        lines.append(f"| {label} | {after:.2f} | {seconds:.2f} | "
                     f"{folding(result.field)['percent_nonpositive_jacobian']:.3f} |")
        if options is not None and "refine" in options:
            save_overview(DOCS / "images/tutorial-learned.png", pair.fixed, pair.moving, result,
                          pair.fixed_landmarks.points, pair.moving_landmarks.points,
                          "ddfnet, one pass: held-out chest CT, breathing motion", plane="coronal")
    return lines + ["", "![learned, one pass](images/tutorial-learned.png)", ""]


def main() -> None:
    if not (KMEANS / "KmeansTest_T1UCharRaw_tissue.nii.gz").is_file():
        sys.exit("run scripts/get_training_data.sh and scripts/make_tissue_labels.py first")
    (DOCS / "images").mkdir(parents=True, exist_ok=True)
    lines = ["# The DeepReg tutorial with LearnReg", "",
             "The DeepReg tutorial (Hu et al.) teaches that classical and learned registration share their "
             "principles, losses and code. This page reproduces its three registrations offline; "
             "`python scripts/deepreg_tutorial.py` rewrites it and its pictures, and every number below comes from "
             "that run (2 CPU cores).", "",
             *self_registration(), *inter_subject(), *learned_paired(),
             "## Where the code is", "",
             "- Losses: `learnreg/losses/` (image: MSE, NCC, LNCC; label: soft Dice; deformation: bending, "
             "diffusion, total variation), used by the classical optimiser (`learnreg/classical/`) and by the "
             "network's training (`learnreg/ddfnet/training.py`) alike.",
             "- The network: `learnreg/ddfnet/network.py` (DDF, SVF by scaling and squaring in "
             "`learnreg/velocity.py`, affine); training modes unsupervised, weakly supervised and combined: "
             "`learnreg train ddfnet --config Resources/Models/ddfnet_2d.toml --set loss.mode=weak`.", ""]
    (DOCS / "tutorial.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
