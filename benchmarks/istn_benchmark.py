#!/usr/bin/env python3
"""ISTN benchmark: the paper's Table 1 on our data, with peers in the same run.

For the affine and the B-spline transformation model: the identity, the four shipped variants (STN-u,
STN-s, ISTN-e, ISTN-i) in one pass and after 50 refinement steps, the "structures directly" upper bound
(our classical registration of the structure maps themselves, which a test image never has) and SimpleITK
B-spline on the images. Metrics: Dice and average symmetric surface distance of the structures of interest
(grey and white matter, k-means tissue labels; scripts/make_tissue_labels.py), folding, wall time.

Held-out subject (never in training or validation): the ITK KmeansTest T1 head. 2D pairs are slices of it,
the 3D pair the whole volume, each with a synthetic misalignment (an affine part plus a smooth field, like
the training distribution of each model, the moving image with another intensity gamma), the labels warped
alike (nearest neighbour). The 3D cases add ANTs SyN (an affine stage, then SyN) when the peers' environment
exists (scripts/setup_peers.sh); a transformation model without shipped 3D weights has no 3D rows.

Writes benchmarks/results/istn.json and istn.md (targets stated as met or not) and istn.png.
Needs scripts/get_training_data.sh and scripts/make_tissue_labels.py first.

Usage: python benchmarks/istn_benchmark.py [--quick] [--device cpu|cuda] [--notes-only]   (--quick: two slices, no 3D)
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
    read_rows, run_benchmark, write_results  # noqa: E402
from peers import ants_available, ants_syn, sitk_bspline  # noqa: E402

from learnreg.image import Image, load_image  # noqa: E402
from learnreg.istn.model import shipped_weights  # noqa: E402
from learnreg.istn.network import VARIANTS  # noqa: E402
from learnreg.options import ONE_PASS  # noqa: E402
from learnreg.registration import create_registrar  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402
from learnreg.training.image_bank import volume_slice  # noqa: E402

STRUCTURES = (2, 3)  # grey matter, white matter
#: (array axis, index) of the held-out slices; cases are named by the axis cut (k, j, i) and index
SLICES = ((0, 28), (0, 34), (0, 40), (1, 60), (1, 72), (2, 55), (2, 72))
#: misalignment of the test pairs per transformation model, like each model's training pairs
MISALIGNMENT = {
    "affine": dict(rotation_degrees=12.0, scaling=0.08, translation_fraction=0.06, displacement_fraction=0.02),
    "bspline": dict(rotation_degrees=3.0, scaling=0.03, translation_fraction=0.02, displacement_fraction=0.05),
}
REFINE_STEPS = 50
#: why the unmet targets came out as they did with the shipped models (written under the targets table);
#: measured with the models of 2026-12-07: rewrite it when they change
WHY = ("Why the unmet targets are not met. One pass, ISTN above STN: met for 3D affine only. In 2D and 3D B-spline "
       "the STN-u compared is the robust default (issue 18: 128^2 and 64^3 working grids, label-synthesis training, "
       "three deformation families), while the ISTN-e/i models keep the first recipe (64^2 and 32^3, Colin27 "
       "only); in 2D affine the variants' one-pass Dice lie within 0.06 of each other. Our structures of interest "
       "are k-means grey and white matter, which the intensity image already shows, so an ITN has little to add "
       "over the image (the paper's structures were organs the intensity image does not single out), and each "
       "model was trained once. Refined ISTNs within 0.06 of structures-direct: the ISTN-e/i networks see the "
       "images on a 64^2 (2D) or 32^3 (3D) working grid and their B-spline STNs have control points every 8 "
       "working voxels (about 50 mm in 3D, 1,029 parameters), while the upper bound is our full-resolution "
       "classical registration of the label maps (3D B-spline: 11,283 parameters), which refining a coarse STN "
       "cannot reach; the 64^3 STN-u (20,577 parameters) refined comes closer (0.833 against 0.956). One-pass "
       "inference under 1 s in 3D: every learned pass now includes the never-worse check of issue 18 (an affine "
       "registration, about 0.65 s on this volume, and the similarity of three starts, 0.16 s), which the "
       "2026-11-21 run, 0.18 to 0.19 s, did not. In 3D affine, ISTN-i gains least from refinement (+0.022 "
       "against ISTN-e's +0.169), which these runs do not explain. ANTs SyN, after its own affine stage and at "
       "full resolution, reaches 0.946 to 0.958 Dice in 443 to 446 s; SimpleITK B-spline took 473 to 677 s on "
       "the 3D volume.")


def _case(name: str, image: Image, label: Image, transformation: str, seed: int) -> Case:
    m = MISALIGNMENT[transformation]
    extent = float(np.mean(image.grid.extent_mm[:image.ndim]))
    pair = make_pair(image, seed=seed, rotation_degrees=m["rotation_degrees"], scaling=m["scaling"],
                     translation_mm=m["translation_fraction"] * extent,
                     max_displacement_mm=m["displacement_fraction"] * extent, labels=label)
    return Case(name, pair.fixed, other_contrast(pair.moving), fixed_labels=pair.fixed_labels,
                moving_labels=pair.moving_labels)


def build_cases(transformation: str, ndim: int, quick: bool) -> list[Case]:
    require(KMEANS_LABELS, "run scripts/get_training_data.sh and scripts/make_tissue_labels.py")
    volume, labels = load_image(KMEANS_IMAGE), load_image(KMEANS_LABELS)
    keep = np.isin(np.asarray(labels.array), STRUCTURES)
    labels = Image(np.where(keep, labels.array, 0).astype(np.uint8), labels.grid)
    if ndim == 3:
        return [_case(f"{transformation}-volume", volume.with_array(np.asarray(volume.array, np.float32)), labels,
                      transformation, 200)]
    return [_case(f"{transformation}-slice-{'kji'[axis]}{index}", volume_slice(volume, axis, index),
                  volume_slice(labels, axis, index), transformation, 100 + n)
            for n, (axis, index) in enumerate(SLICES[:2] if quick else SLICES)]


def structures_direct(transformation: str, device: str):
    """Register the structure maps themselves (grey 1, white 2 as intensities): the best case."""
    def run(fixed: Image, moving: Image, case: Case):
        f = Image(np.searchsorted(STRUCTURES, case.fixed_labels.array, side="right").astype(np.float32), fixed.grid)
        mv = Image(np.searchsorted(STRUCTURES, case.moving_labels.array, side="right").astype(np.float32), moving.grid)
        result = create_registrar(transformation).register(f, mv, device=device)
        return result.field, result.parameter_count
    return run


def runners(transformation: str, ndim: int, device: str) -> dict:
    out = {}
    for variant in VARIANTS:
        if not shipped_weights(ndim, transformation, variant).is_file():
            continue
        options = {**ONE_PASS, "transformation": transformation, "variant": variant}  # the paper's method alone
        out[variant] = learnreg_runner("istn", {**options, "refine_steps": 0}, device=device)
        out[f"{variant} refined"] = learnreg_runner("istn", {**options, "refine_steps": REFINE_STEPS,
                                                             "refine_scope": "stn"}, device=device)  # the paper's
    out["sitk_bspline"] = sitk_bspline
    if ndim == 3 and ants_available():
        out["ants_syn"] = lambda fixed, moving: ants_syn(fixed, moving, with_affine=True)
    return out


def _with_case(cases: list[Case], runner):
    """Adapt a runner that needs the case's labels (the upper bound) to the harness's (fixed, moving)."""
    by_images = {(id(c.fixed), id(c.moving)): c for c in cases}
    return lambda fixed, moving: runner(fixed, moving, by_images[(id(fixed), id(moving))])



def targets(rows_by_model: dict[str, list[dict]]) -> list[str]:
    table = TargetTable()

    for model, rows in rows_by_model.items():
        d = {m: mean(rows, m, "dice_mean") for m in dict.fromkeys(r["method"] for r in rows)}
        missing = [v for v in VARIANTS if v not in d]
        if missing:
            table.add(f"{model}: all four variants", f"no shipped weights for {', '.join(missing)}", "", False)
        if len(missing) == len(VARIANTS):
            continue
        present = [v for v in VARIANTS if v in d]
        stn, istn = [d[v] for v in ("stn-u", "stn-s") if v in d], [d[v] for v in ("istn-e", "istn-i") if v in d]
        if stn and istn:
            table.add(f"{model}: one pass, ISTN-e/i Dice above STN-u/s", f"{min(istn):.3f} vs {max(stn):.3f}",
                      "ISTN > STN", min(istn) > max(stn))
        gains = {v: d[f"{v} refined"] - d[v] for v in present}
        table.add(f"{model}: refinement improves every variant",
                  ", ".join(f"{v} {g:+.3f}" for v, g in gains.items()), "all > 0", min(gains.values()) > 0)
        refined_istn = [d[f"{v} refined"] for v in ("istn-e", "istn-i") if v in d]
        if refined_istn:
            gap = d["structures direct"] - min(refined_istn)
            table.add(f"{model}: refined ISTNs within 0.06 Dice of structures-direct", f"gap {gap:.3f}", "<= 0.06",
                      gap <= 0.06)
        if model.endswith("3D"):
            one_pass = max(mean(rows, v, "seconds") for v in present)
            table.add(f"{model}: one-pass inference at the trained size, this CPU (slowest variant)",
                      f"{one_pass:.2f} s",
                      "< 1 s", one_pass < 1)
        seconds = max(mean(rows, f"{v} refined", "seconds") for v in present)
        table.add(f"{model}: one pass + {REFINE_STEPS} refinement steps, this CPU (slowest variant)",
                  f"{seconds:.2f} s",
                  "< 15 s", seconds < 15)
    return table.lines


def figure(rows_by_model: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 2
    count = len(rows_by_model)
    fig, axes = plt.subplots((count + columns - 1) // columns, columns, figsize=(12, 3.8 * ((count + 1) // 2)),
                             dpi=100, squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    for ax, (model, rows) in zip(axes.flat, rows_by_model.items()):
        present = set(r["method"] for r in rows)
        labels = [m for m in ["identity", *VARIANTS, "structures direct", "sitk_bspline", "ants_syn"] if m in present]
        one = [mean(rows, m, "dice_mean") for m in labels]
        refined = [mean(rows, f"{m} refined", "dice_mean") if m in VARIANTS else np.nan for m in labels]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, one, 0.4, label="one pass / method", color="tab:blue")
        ax.bar(x + 0.2, refined, 0.4, label=f"after {REFINE_STEPS} refinement steps", color="tab:orange")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0.3, 1.0)
        ax.set_ylabel("Dice (grey + white matter)")
        ax.set_title(f"ISTN {model}, held-out subject", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="two slices per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--notes-only", action="store_true",
                        help="rewrite istn.md and istn.png from the rows of istn.json with the current notes; runs nothing")
    args = parser.parse_args()
    out = HERE / "results"
    rows_by_model = {}
    if args.notes_only:
        for r in read_rows(out, "istn"):
            rows_by_model.setdefault(r["model"], []).append({**r, "method": r["method"].split(": ", 1)[1]})
    for ndim in () if args.notes_only else (2,) if args.quick else (2, 3):
        for transformation in ("affine", "bspline"):
            chosen = runners(transformation, ndim, args.device)
            if ndim == 3 and not any(m in chosen for m in VARIANTS):
                continue
            cases = build_cases(transformation, ndim, args.quick)
            chosen["structures direct"] = _with_case(cases, structures_direct(transformation, args.device))
            model = f"{transformation} {ndim}D"
            rows = run_benchmark(cases, chosen)
            for r in rows:
                r["model"] = model
            rows_by_model[model] = rows
    lines = targets(rows_by_model)
    figure(rows_by_model, out / "istn.png")
    # one summary row per transformation model and method in the table
    all_rows = [{**r, "method": f"{r['model']}: {r['method']}"} for rows in rows_by_model.values() for r in rows]
    notes = "\n".join([
        "Dice and ASSD of grey and white matter (k-means tissue labels) on slices of a held-out subject; "
        f"'refined' = {REFINE_STEPS} test-time refinement steps of the whole STN (the paper's); every row is "
        "ISTN alone (no shared B-spline refinement); 'structures direct' registers the label maps "
        "themselves (affine or B-spline, our classical method), an upper bound no test image allows. "
        "2D: slices; 3D: the whole volume (128 x 128 x 62 voxels of 2 x 2 x 3 mm). The networks work on a 64^2 "
        "(2D) or 32^3 (3D) grid, the default B-spline STN-u models on 128^2 and 64^3 (robust recipes, issue 18). "
        "ANTs SyN (an affine stage, then SyN with CC, 100/70/50 iterations, 2 threads; antspyx in its own "
        "environment, its own registration time) runs on the 3D cases only.", "",
        "## Targets", "", *lines, "", WHY])
    write_results(all_rows, out, "istn", "ISTN: the paper's Table 1 on a held-out subject", "sitk_bspline", notes)
    print((out / "istn.md").read_text())


if __name__ == "__main__":
    main()
