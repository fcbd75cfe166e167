#!/usr/bin/env python3
"""R2N2 benchmark: the shipped R2N2 weights vs our B-spline with the R2N2 paper's settings, our default
B-spline, and SimpleITK B-spline and Demons, on held-out pairs, same run, same device.

Held-out images (never used in training or validation, see Resources/Models/r2n2_*d.toml): the bundled
brain2d pair (BrainT1Slice), slices of the ITK KmeansTest T1 head (another person; axial, coronal,
sagittal, and one axial slice resampled to 256 x 256 at 1 mm for the speed target) and, in 3D, the bundled
head3d pair (the KmeansTest volume). TRE comes from exact synthetic landmark pairs (:func:`learnreg.synthetic.make_pair`).

Writes benchmarks/results/r2n2.json, r2n2.md (with the issue's targets stated as met or not), r2n2.png and
r2n2_steps.png (R2N2 at work step by step on brain2d).
Needs the training data's KmeansTest volume: run scripts/get_training_data.sh first.

Usage: python benchmarks/r2n2_benchmark.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from harness import KMEANS_IMAGE, Case, learnreg_runner, require, run_benchmark, write_results  # noqa: E402
from peers import PEERS  # noqa: E402

from learnreg.image import Grid, Image, load_image  # noqa: E402
from learnreg.landmarks import match_pairs, read_landmarks  # noqa: E402
from learnreg.options import ONE_PASS  # noqa: E402
from learnreg.r2n2.model import shipped_weights  # noqa: E402
from learnreg.sample_data import sample_pairs  # noqa: E402
from learnreg.slicer.module_logic import PRESETS  # noqa: E402
from learnreg.synthetic import make_pair  # noqa: E402
from learnreg.training.image_bank import volume_slice  # noqa: E402
from learnreg.warp import resample_to_grid  # noqa: E402

REFERENCE = "bspline_paper"
#: why the targets came out as they did with the shipped models (written under the targets table); measured
#: with r2n2_2d.pt and r2n2_3d.pt of 2026-11-21 (session 7): rewrite it when the models change
WHY = ("Why the TRE targets are not met: both models were trained on this 2-core CPU (2D: 3 stages, 93 minutes; "
       "3D: 2 stages, 132 minutes; the paper trained for days on a GPU). Their Gaussians stay at the widest "
       "allowed (53 mm on brain2d, 62 mm on head3d) and, on their validation pairs, 2 to 3 in 4 consecutive steps "
       "point in opposite directions, so they correct the coarse part of the misalignment but not the detail that the B-spline's control grid reaches. "
       "In 2D the mean is also pulled up by kmeans-axial-256 (the axial slice padded to 256 mm), where the "
       "stopping rule keeps 3 steps and TRE barely moves (5.35 -> 5.33 mm); over the other four 2D pairs R2N2 "
       "gives 2.85 mm against the paper-setting B-spline's 2.30 (1.24x), and its mean p95 TRE over the five (6.12 "
       "mm) is lower than the B-spline's (6.55 mm). In 3D (head3d, one volume: SimpleITK's B-spline takes "
       "minutes on it) R2N2 gives 3.42 mm against 3.08 (1.11x, just over the 1.1x bar) in 0.79 s against 32 s. "
       "The parameter targets are met because the stopping rule keeps 2 to 8 steps (7 parameters each in 2D, "
       "12 in 3D).")


def _case(name: str, source: Image, seed: int) -> Case:
    pair = make_pair(source, seed=seed, landmark_count=30)
    return Case(name, pair.fixed, pair.moving, pair.fixed_landmarks.points, pair.moving_landmarks.points)


def _bundled_case(name: str) -> Case:
    bundled = sample_pairs()[name]
    fixed_points, moving_points, _ = match_pairs(read_landmarks(bundled.fixed_landmarks),
                                                 read_landmarks(bundled.moving_landmarks))
    return Case(name, load_image(bundled.fixed), load_image(bundled.moving), fixed_points, moving_points)


def build_cases(quick: bool) -> tuple[list[Case], list[Case]]:
    require(KMEANS_IMAGE, "run scripts/get_training_data.sh first")
    volume = load_image(KMEANS_IMAGE)
    cases2d = [_bundled_case("brain2d")]
    axial = volume_slice(volume, 0, 34, np.float32)
    big = resample_to_grid(axial, Grid.make((256, 256, 1), (1.0, 1.0, 1.0),
                                            (axial.grid.centre[0] - 127.5, axial.grid.centre[1] - 127.5, 0.0)))
    cases2d.append(_case("kmeans-axial-256", big, 11))
    if not quick:
        cases2d += [_case("kmeans-axial", axial, 12), _case("kmeans-coronal", volume_slice(volume, 1, 70, np.float32), 13),
                    _case("kmeans-sagittal", volume_slice(volume, 2, 60, np.float32), 14)]
    cases3d = [_bundled_case("head3d")]  # one volume: SimpleITK's B-spline takes 6 to 10 minutes on each
    if not shipped_weights(3).is_file():
        cases3d = []  # nothing to compare R2N2 with there
    return cases2d, cases3d


def runners(device: str) -> dict:
    r2n2 = learnreg_runner("r2n2", ONE_PASS, device=device)  # the paper's method: the network's steps alone
    out = {"r2n2": r2n2, REFERENCE: learnreg_runner("bspline", dict(PRESETS["R2N2 paper baseline"]), device=device),
           "bspline": learnreg_runner("bspline", device=device)}
    out.update(PEERS)
    return out


def warm_up(device: str) -> None:
    """Load the weights and let torch pick its kernels once, so timings measure registration only."""
    grid = Grid.make((64, 64, 1))
    image = Image(np.random.default_rng(0).random((1, 64, 64)).astype(np.float32), grid)
    learnreg_runner("r2n2", {**ONE_PASS, "steps": 2}, device=device)(image, image)


def targets(rows: list[dict], groups: dict[str, set[str]]) -> list[str]:
    """The issue's targets, each stated as met or not, from the rows: accuracy, compactness and speed-up for
    each group of cases (``{"2D": names, "3D": names}``; each dimension has its own model), then the 256 x 256
    time and the worst folding."""
    def mean(method, key, cases):
        sel = [r[key] for r in rows if r["method"] == method and r["case"] in cases]
        return float(np.mean(sel)) if sel else float("nan")

    def line(name, value, goal, met):
        return f"| {name} | {value} | {goal} | {'met' if met else 'NOT met'} |"

    by_case = {(r["case"], r["method"]): r for r in rows}
    lines = ["| target | measured | goal | |", "|---|---|---|---|"]
    for dims, cases in groups.items():
        if not cases:
            continue
        tre_r2n2, tre_ref = mean("r2n2", "tre_mean", cases), mean(REFERENCE, "tre_mean", cases)
        params = mean("r2n2", "parameters", cases) / mean(REFERENCE, "parameters", cases)
        speedups = [by_case[(c, REFERENCE)]["seconds"] / by_case[(c, "r2n2")]["seconds"] for c in sorted(cases)]
        lines += [line(f"{dims}: mean TRE vs B-spline (paper settings)", f"{tre_r2n2:.2f} vs {tre_ref:.2f} mm "
                       f"({tre_r2n2 / tre_ref:.2f}x)", "<= 1.1x", tre_r2n2 <= 1.1 * tre_ref),
                  line(f"{dims}: transformation parameters vs B-spline", f"{params:.4f}x", "<= 0.1x", params <= 0.1),
                  line(f"{dims}: speed-up over B-spline (paper settings), mean over cases",
                       f"{np.mean(speedups):.1f}x (min {np.min(speedups):.1f}x)", ">= 15x", np.mean(speedups) >= 15)]
    t256 = mean("r2n2", "seconds", {"kmeans-axial-256"})
    folding = max(r["percent_nonpositive_jacobian"] for r in rows if r["method"] == "r2n2")
    return lines + [line("2D 256 x 256 pair on this CPU", f"{t256:.3f} s", "< 0.5 s", t256 < 0.5),
                    line("folding (det J <= 0), worst case", f"{folding:.3f} %", "< 0.1 %", folding < 0.1)]


def figure(rows: list[dict], groups: dict[str, set[str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    panels = [(dims, cases) for dims, cases in groups.items() if cases]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.4 * (len(panels) + 1), 3.8), dpi=90)
    for ax, (dims, cases) in zip(axes[:-1], panels):
        label = f"{dims} held-out pairs"
        sel = [r for r in rows if r["case"] in cases]
        tre = [np.mean([r["tre_mean"] for r in sel if r["method"] == m]) for m in methods]
        p95 = [np.mean([r["tre_p95"] for r in sel if r["method"] == m]) for m in methods]
        x = np.arange(len(methods))
        ax.bar(x - 0.2, tre, 0.4, label="mean TRE")
        ax.bar(x + 0.2, p95, 0.4, label="p95 TRE", color="tab:orange")
        ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("mm")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=8)
    timed = [m for m in methods if m != "identity"]
    seconds = [np.mean([r["seconds"] for r in rows if r["method"] == m]) for m in timed]
    axes[-1].bar(np.arange(len(timed)), seconds, color="tab:green")
    axes[-1].set_yscale("log")
    axes[-1].set_xticks(np.arange(len(timed)), timed, rotation=30, ha="right", fontsize=8)
    axes[-1].set_ylabel("seconds (log)")
    axes[-1].set_title("wall time per pair (mean)", fontsize=10)
    fig.suptitle("R2N2 vs B-spline and SimpleITK on held-out pairs (same run, CPU)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def steps_figure(case: Case, path: Path, device: str) -> None:
    """R2N2 at work on one pair: the warped image after a few steps with each step's Gaussian drawn as an
    ellipse (one width around its centre, arrow = its weight), and the displacement magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    from learnreg.registration import create_registrar

    result = create_registrar("r2n2", ONE_PASS).register(case.fixed, case.moving, device=device)
    grid = case.fixed.grid
    shown = sorted({0, 2, len(result.steps) // 2, len(result.steps) - 1})
    fig, axes = plt.subplots(1, len(shown) + 3, figsize=(2.6 * (len(shown) + 3), 3.0), dpi=90)
    extent = (0, grid.size[0] * grid.spacing[0], grid.size[1] * grid.spacing[1], 0)
    axes[0].imshow(case.fixed.spatial_array(), cmap="gray", extent=extent)
    axes[0].set_title("fixed", fontsize=9)
    axes[1].imshow(case.moving.spatial_array(), cmap="gray", extent=extent)
    axes[1].set_title("moving", fontsize=9)
    from learnreg.warp import resample_to_grid

    for ax, n in zip(axes[2:], shown):
        field = sum(s.displacement.to_axis_tensor() for s in result.steps[: n + 1])
        ax.imshow(resample_to_grid(case.moving, grid, field).spatial_array(), cmap="gray", extent=extent)
        for s in result.steps[: n + 1]:
            p = s.parameters
            centre = np.asarray(p["centre_mm"])
            ax.add_patch(Ellipse(centre, 2 * p["widths_mm"][0], 2 * p["widths_mm"][1],
                                 angle=np.degrees(p["angles_rad"][0]), fill=False,
                                 color="yellow" if s is result.steps[n] else "tab:cyan", lw=0.8))
            ax.arrow(*centre, *(4 * np.asarray(p["weight_mm"])), color="red", width=0.6, head_width=2.5)
        ax.set_xlim(extent[0], extent[1])  # the ellipses reach past the image: keep the view on it
        ax.set_ylim(extent[2], extent[3])
        ax.set_title(f"after step {n + 1}: loss {result.steps[n].loss:.3f}", fontsize=9)
    magnitude = np.linalg.norm(result.field.vectors[0], axis=-1)
    im = axes[-1].imshow(magnitude, cmap="magma", extent=extent)
    fig.colorbar(im, ax=axes[-1], fraction=0.046, label="mm")
    axes[-1].set_title(f"|u|, {len(result.steps)} Gaussians", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"R2N2 on held-out {case.name}: one Gaussian per step (yellow: the step's own; arrows 4x its "
                 "weight)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    torch.manual_seed(0)
    cases2d, cases3d = build_cases(args.quick)
    warm_up(args.device)
    rows = run_benchmark(cases2d + cases3d, runners(args.device))
    groups = {"2D": {c.name for c in cases2d}, "3D": {c.name for c in cases3d}}
    lines = targets(rows, groups)
    notes = ("Held-out pairs only (see the script's docstring). TRE in mm from exact synthetic landmark pairs; "
             "folding = % voxels with det J <= 0. `bspline_paper` is our B-spline with the R2N2 paper's baseline "
             f"settings ({PRESETS['R2N2 paper baseline']}); `bspline` our default (affine start, bending energy). "
             "Caveat: the synthetic fields are cubic B-splines, the model class of the B-spline methods."
             + ("" if cases3d else " No 3D cases in this run: there are no shipped 3D R2N2 weights yet "
                "(Resources/Models/README.md says why).") + "\n\n"
             "## Targets of the R2N2 issue\n\n" + "\n".join(lines) + "\n\n" + WHY)
    write_results(rows, args.out, "r2n2", "R2N2 benchmark: held-out pairs", REFERENCE, notes)
    figure(rows, groups, args.out / "r2n2.png")
    steps_figure(cases2d[0], args.out / "r2n2_steps.png", args.device)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
