"""Benchmark harness: run registrars and peers on the same cases, measure, write JSON and a markdown table.

A *case* is a fixed/moving pair with optional exact landmark pairs and label maps. A *runner* maps
``(fixed, moving)`` to ``(field, parameter_count)`` or ``(field, parameter_count, extras)``; its wall time is
measured here unless ``extras`` holds ``seconds`` (a peer in another process reports its own registration
time, without the process start), and the other ``extras`` join the row. Every method sees
the same inputs in the same run, so ratios between them are fair.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.metrics import dice_per_label, folding, surface_distances, tre
from learnreg.registration import create_registrar
from learnreg.warp import resample_to_grid

Runner = Callable[[Image, Image], tuple[DisplacementField, int]]

#: the benchmarks' held-out subject, ITK's KmeansTest T1 head (never in training or validation):
#: scripts/get_training_data.sh unpacks it, scripts/make_tissue_labels.py writes its tissue labels
KMEANS_DATA = Path(__file__).resolve().parents[1] / "training_data/usr/share/doc/insighttoolkit5-examples/examples/Data"
KMEANS_IMAGE = KMEANS_DATA / "KmeansTest_T1UCharRaw.nii.gz"
KMEANS_LABELS = KMEANS_DATA / "KmeansTest_T1UCharRaw_tissue.nii.gz"
KMEANS_MASK = KMEANS_DATA / "KmeansTest_T1RawSkullStrip.nii.gz"


def require(path: Path, how: str) -> None:
    """Exit with a message naming ``path`` and ``how`` to make it when it is missing."""
    if not path.is_file():
        sys.exit(f"{path} is missing: {how}")


def other_contrast(image: Image, gamma: float = 1.3) -> Image:
    """``image`` scaled to [0, 1] and raised to ``gamma``: the moving image of a synthetic pair with a contrast
    of its own."""
    values = np.asarray(image.array, dtype=np.float32)
    return Image((values / max(float(values.max()), 1e-6)) ** gamma, image.grid)


@dataclass
class Case:
    name: str
    fixed: Image
    moving: Image
    fixed_points: Optional[np.ndarray] = None
    moving_points: Optional[np.ndarray] = None
    fixed_labels: Optional[Image] = None
    moving_labels: Optional[Image] = None


def learnreg_runner(method: str, options: Optional[dict] = None, device: str = "cpu") -> Runner:
    def run(fixed: Image, moving: Image):
        result = create_registrar(method, options).register(fixed, moving, device=device)
        return result.field, result.parameter_count
    return run


def evaluate(case: Case, field: DisplacementField) -> dict:
    fold = folding(field)
    metrics = {k: fold[k] for k in ("percent_nonpositive_jacobian", "sd_log_jacobian")}
    if case.fixed_points is not None:
        before, after = tre(case.fixed_points, case.moving_points), tre(case.fixed_points, case.moving_points, field)
        metrics.update(tre_before_mean=before["mean"], tre_mean=after["mean"], tre_p95=after["p95"])
    if case.fixed_labels is not None:
        warped = resample_to_grid(case.moving_labels, case.fixed.grid, field.to_axis_tensor(), nearest=True)
        dice = dice_per_label(case.fixed_labels.array, warped.array)
        metrics["dice_mean"] = float(np.nanmean(list(dice.values())))
        metrics["dice_per_label"] = dice
        surf = surface_distances(case.fixed_labels.array, warped.array, case.fixed.grid.spacing)
        metrics["hd95_mean"] = float(np.nanmean([v["hd95"] for v in surf.values()]))
        metrics["assd_mean"] = float(np.nanmean([v["assd"] for v in surf.values()]))
    return metrics


def save_case_views(case: Case, fields: dict[str, DisplacementField], path: Path, rows: list[dict]) -> Path:
    """A PNG of what a Slicer user sees for each method on ``case``: the fields become grid transform nodes
    with glyphs and warped volumes in a headless scene, rendered through Slicer's slice logic."""
    from learnreg.landmarks import LandmarkPairs
    from learnreg.registration import RegistrationResult
    from learnreg.slicer.inputs import SceneInputs
    from learnreg.slicer.render import registration_views, save_views_png
    from learnreg.slicer.run import add_registration_to_scene
    from learnreg.slicer.scene import create_scene

    scene = create_scene()
    landmarks = None
    if case.fixed_points is not None:
        labels = tuple(str(n + 1) for n in range(len(case.fixed_points)))
        landmarks = LandmarkPairs(case.fixed_points, case.moving_points, labels)
    inputs = SceneInputs.from_images(case.fixed, case.moving, landmarks)
    tre_by_method = {r["method"]: r.get("tre_mean") for r in rows if r["case"] == case.name}
    views = []
    for name, field in fields.items():
        warped = resample_to_grid(case.moving, case.fixed.grid, field.to_axis_tensor())
        result = RegistrationResult(method=name, field=field, warped=warped, parameter_count=0, timings={},
                                    device="cpu")
        out = add_registration_to_scene(scene, inputs, result)
        label = name if tre_by_method.get(name) is None else f"{name} (TRE {tre_by_method[name]:.2f} mm)"
        views.append((label, registration_views(scene, inputs.fixed_node, inputs.moving_node, out.warped_volume,
                                                out.transform, inputs.fixed_landmarks_node)))
    return save_views_png(path, views, f"{case.name}: each method's result as Slicer shows it", columns=(1, 3), dpi=60)


def run_benchmark(cases: list[Case], runners: dict[str, Runner], log=print, views_dir: Optional[Path] = None,
                  views_cases: tuple[str, ...] = ()) -> list[dict]:
    """Run every runner on every case; with ``views_dir``, also write ``<case>.png`` for ``views_cases``."""
    rows = []
    for case in cases:
        identity = DisplacementField.identity(case.fixed.grid)
        fields = {"identity": identity}
        rows.append({"case": case.name, "method": "identity", "seconds": 0.0, "parameters": 0,
                     **evaluate(case, identity)})
        for name, runner in runners.items():
            t0 = time.perf_counter()
            field, parameters, *extras = runner(case.fixed, case.moving)
            seconds = time.perf_counter() - t0
            extras = extras[0] if extras else {}
            row = {"case": case.name, "method": name, "seconds": extras.pop("seconds", seconds),
                   "parameters": parameters, **extras, **evaluate(case, field)}
            rows.append(row)
            fields[name] = field
            log(f"{case.name:14s} {name:14s} {seconds:7.2f} s  " + "  ".join(
                f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float) and k != "seconds"))
        if views_dir is not None and case.name in views_cases:
            views_dir.mkdir(parents=True, exist_ok=True)
            log(f"views: {save_case_views(case, fields, views_dir / f'{case.name}.png', rows)}")
    return rows


def mean(rows: list[dict], method: str, key: str, cases=None) -> float:
    """Mean of ``key`` over the rows of ``method`` (only ``cases`` when given); NaN when there is none."""
    values = [r[key] for r in rows if r["method"] == method and key in r and (cases is None or r["case"] in cases)]
    return float(np.mean(values)) if values else float("nan")


class TargetTable:
    """A markdown table of targets: ``add(name, measured, goal, met)``, then :attr:`lines`."""

    def __init__(self) -> None:
        self.lines = ["| target | measured | goal | |", "|---|---|---|---|"]

    def add(self, name: str, measured: str, goal: str, met: bool) -> None:
        self.lines.append(f"| {name} | {measured} | {goal} | {'met' if met else 'NOT met'} |")


def environment() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor() or "unknown", "cpu_threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d")}


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def read_rows(out_dir: Path, stem: str) -> list[dict]:
    """The rows :func:`write_results` stored in ``<stem>.json`` (to rewrite the markdown without rerunning)."""
    return json.loads((out_dir / f"{stem}.json").read_text())["rows"]


def write_results(rows: list[dict], out_dir: Path, stem: str, title: str, reference: str, notes: str = "") -> None:
    """``<stem>.json`` with every row and the environment, ``<stem>.md`` with per-case rows and a summary
    per method (means over cases, time ratio to ``reference``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    (out_dir / f"{stem}.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2, default=float))
    columns = ["tre_before_mean", "network_tre_mean", "start", "tre_mean", "tre_p95", "dice_mean", "hd95_mean", "assd_mean",
               "percent_nonpositive_jacobian",
               "sd_log_jacobian", "seconds", "parameters"]
    present = [c for c in columns if any(c in r for r in rows)]
    lines = [f"# {title}", "", f"Environment: {env}", "", notes, "", "## Per case", "",
             "| case | method | " + " | ".join(present) + " |", "|---|---|" + "---|" * len(present)]
    for r in rows:
        lines.append(f"| {r['case']} | {r['method']} | " + " | ".join(_fmt(r.get(c)) for c in present) + " |")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    ref_time = {r["case"]: r["seconds"] for r in rows
                if r["method"] == reference or r["method"].endswith(f": {reference}")}  # also "<group>: <reference>"
    lines += ["", f"## Summary (mean over cases; time ratio = method time / {reference} time)", "",
              "| method | " + " | ".join(present) + " | time ratio |", "|---|" + "---|" * (len(present) + 1)]
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        means = [float(np.nanmean([r.get(c, np.nan) for r in sel])) if c != "start" else None for c in present]
        ratios = [r["seconds"] / ref_time[r["case"]] for r in sel if ref_time.get(r["case"])]
        lines.append(f"| {m} | " + " | ".join(_fmt(v) for v in means) + f" | {_fmt(float(np.mean(ratios))) if ratios and m != 'identity' else '–'} |")
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
