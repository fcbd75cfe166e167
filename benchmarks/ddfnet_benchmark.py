#!/usr/bin/env python3
"""ddfnet benchmark: DeepReg's training modes and outputs on held-out 2D pairs, with peers in the same run.

Models (2D, same recipe ``Resources/Models/ddfnet_2d.toml``, 2,000 steps each, ``runs/``): the velocity-field
(svf) network trained unsupervised, weakly supervised and combined, and the dense-displacement (ddf) network
trained combined; plus the shipped svf model (combined, 6,000 steps), one pass and refined (its default).
The committed comparison models were trained with the recipe's first revision (Colin27 alone; commit
4d1417c), the shipped svf models with its robust one (Colin27, a head CT, label synthesis, inversion).
Peers: our ``bspline``, SimpleITK Demons and, on the 3D pair, ANTs SyN (the peers' environment,
``scripts/setup_peers.sh``).

Held-out cases (no training or validation read them): slices of the ITK KmeansTest T1 head (another person
than the Colin27 the models trained on) with k-means tissue labels (CSF, grey and white matter), each with a
synthetic deformation of a family drawn per case (B-spline, dense smoothed noise, local large motions) and an
affine part, exact landmarks and the labels warped alike; and the bundled ``brain2d`` pair (ITK's
BrainT1Slice); with shipped 3D weights also the bundled ``head3d`` pair (KmeansTest, exact landmarks) for the 3D
model against the same peers. Metrics: TRE (mm), Dice and HD95 of the tissue labels, folding, wall time.

Writes benchmarks/results/ddfnet.json and ddfnet.md with the issue's targets stated as met or not.
Needs scripts/get_training_data.sh, scripts/make_tissue_labels.py and the four comparison runs (the commands
are printed when one is missing).

Usage: python benchmarks/ddfnet_benchmark.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from harness import KMEANS_IMAGE, KMEANS_LABELS, Case, TargetTable, learnreg_runner, mean, other_contrast, require, \
    run_benchmark, write_results  # noqa: E402
from peers import ants_available, ants_syn, sitk_demons  # noqa: E402

from learnreg.ddfnet.model import shipped_weights  # noqa: E402
from learnreg.image import load_image  # noqa: E402
from learnreg.options import ONE_PASS  # noqa: E402
from learnreg.sample_data import sample_pairs  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402
from learnreg.training.image_bank import volume_slice  # noqa: E402

#: (array axis, index) of the held-out slices of KmeansTest
SLICES = ((0, 28), (0, 34), (0, 40), (1, 60), (1, 72), (2, 55), (2, 72))
#: the comparison models: name -> weights (trained by the command in ``MISSING``)
COMPARISON = {f"{output} {mode}": ROOT / f"runs/ddfnet_2d_{output}_{mode}/ddfnet_2d_{output}_{mode}.pt"
              for output, mode in (("svf", "unsupervised"), ("svf", "weak"), ("svf", "combined"), ("ddf", "combined"))}
TRAIN_COMMAND = ("learnreg train ddfnet --config Resources/Models/ddfnet_2d.toml --steps 2000 --set loss.mode={mode} "
                 "--set model.output={output} --set output.folder=../../runs/ddfnet_2d_{output}_{mode} "
                 "--set output.weights_path=../../runs/ddfnet_2d_{output}_{mode}/ddfnet_2d_{output}_{mode}.pt")


#: the deformation families the cases cycle through (fixed, so that a family added to the generator does not
#: change the cases)
CASE_FAMILIES = ("bspline", "dense", "local")


def build_cases(quick: bool) -> list[Case]:
    require(KMEANS_LABELS, "run scripts/get_training_data.sh and scripts/make_tissue_labels.py")
    volume, labels = load_image(KMEANS_IMAGE), load_image(KMEANS_LABELS)
    families = CASE_FAMILIES
    cases = []
    for n, (axis, index) in enumerate(SLICES[:2] if quick else SLICES):
        image, label = volume_slice(volume, axis, index), volume_slice(labels, axis, index)
        extent = float(np.mean(image.grid.extent_mm[:2]))
        family = families[n % len(families)]
        pair = make_pair(image, seed=300 + n, family=family, rotation_degrees=5.0, scaling=0.03,
                         translation_mm=0.02 * extent, max_displacement_mm=0.06 * extent, labels=label)
        cases.append(Case(f"slice-{'kji'[axis]}{index}-{family}", pair.fixed, other_contrast(pair.moving),
                          pair.fixed_landmarks.points, pair.moving_landmarks.points, pair.fixed_labels,
                          pair.moving_labels))
    fixed, moving, landmarks = sample_pairs()["brain2d"].load()
    cases.append(Case("brain2d", fixed, moving, landmarks.fixed, landmarks.moving))
    return cases


def runners(ndim: int) -> dict:
    """The 2D runs: the four comparison models (one pass), the shipped model (one pass, refined) and the peers;
    the 3D runs: the shipped 3D model and the peers."""
    out = {}
    if ndim == 2:
        for name, weights in COMPARISON.items():
            if not weights.is_file():
                output, mode = name.split()
                sys.exit(f"{weights} is missing: {TRAIN_COMMAND.format(output=output, mode=mode)}")
            out[name] = learnreg_runner("ddfnet", {**ONE_PASS, "weights": str(weights)})
    out["shipped svf"] = learnreg_runner("ddfnet", ONE_PASS)
    out["shipped svf refined"] = learnreg_runner("ddfnet")
    out["bspline"] = learnreg_runner("bspline")
    out["sitk_demons"] = sitk_demons
    if ndim == 3 and ants_available():  # (the ANTs worker registers volumes)
        out["ants_syn"] = lambda fixed, moving: ants_syn(fixed, moving, with_affine=True)
    return out


def targets(rows: list[dict], rows_3d: list[dict]) -> list[str]:
    table = TargetTable()
    dice = {m: mean(rows, f"svf {m}", "dice_mean") for m in ("unsupervised", "weak", "combined")}
    table.add("combined training beats unsupervised and weakly supervised on held-out Dice (2D svf, 2,000 steps)",
              ", ".join(f"{m} {d:.3f}" for m, d in dice.items()), "combined highest",
              dice["combined"] > max(dice["unsupervised"], dice["weak"]))
    svf_rows = [m for m in dict.fromkeys(r["method"] for r in rows + rows_3d) if m.startswith(("svf", "shipped svf"))
                and not m.endswith("refined")]
    svf_fold = max(mean(rows + rows_3d, m, "percent_nonpositive_jacobian") for m in svf_rows)
    table.add("the svf output has no folding (largest mean % det J <= 0 of the one-pass svf rows)",
              f"{svf_fold:.4f} %", "0", svf_fold == 0)
    table.lines.append(f"| ddf output's folding, for comparison | "
                       f"{mean(rows, 'ddf combined', 'percent_nonpositive_jacobian'):.4f} % | | |")
    if rows_3d:
        one_pass, demons = mean(rows_3d, "shipped svf", "seconds"), mean(rows_3d, "sitk_demons", "seconds")
        table.add("one pass faster than Demons on the same 3D pair (head3d)", f"{one_pass:.2f} vs {demons:.2f} s",
                  "faster", one_pass < demons)
    else:
        table.add("one pass faster than Demons on the same 3D pair", "no shipped 3D weights", "faster", False)
    for label, part in (("2D", rows), ("3D", rows_3d)):
        if not part:
            continue
        refined, bspline = mean(part, "shipped svf refined", "tre_mean"), mean(part, "bspline", "tre_mean")
        table.add(f"refined, TRE within 1.1 x our bspline ({label})", f"{refined:.3f} vs {bspline:.3f} mm",
                  "<= 1.1 x", refined <= 1.1 * bspline)
        short = [r["case"] for r in part if r["method"] == "shipped svf" and "tre_mean" in r
                 and r["tre_mean"] > 0.5 * r["tre_before_mean"]]
        table.add(f"one pass at least halves TRE on every held-out case ({label})", ", ".join(short) or "all halved",
                  "every case", not short)
    return table.lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two slices")
    args = parser.parse_args()
    rows = run_benchmark(build_cases(args.quick), runners(2))
    rows_3d = []
    if shipped_weights(3, "svf").is_file():
        fixed, moving, landmarks = sample_pairs()["head3d"].load()
        rows_3d = run_benchmark([Case("head3d", fixed, moving, landmarks.fixed, landmarks.moving)], runners(3))
    notes = "\n".join(["## Targets", "", *targets(rows, rows_3d), "",
                       "Cases: held-out KmeansTest slices (family of the synthetic deformation in the name, an affine "
                       "part, another contrast for the moving image), the bundled brain2d pair and, with shipped 3D "
                       "weights, the bundled head3d pair (KmeansTest). Rows `svf ...` and `ddf combined` are one pass "
                       "of the 2D comparison models (2,000 steps each); `shipped svf` is the shipped model in one "
                       "pass and refined (its default)."])
    write_results(rows + rows_3d, HERE / "results", "ddfnet",
                  "ddfnet: training modes, outputs and peers on held-out pairs", "bspline", notes)
    print(notes)


if __name__ == "__main__":
    main()
