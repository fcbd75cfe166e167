#!/usr/bin/env python3
"""How responsive the Slicer panels are while they register: every method on the bundled 3D pair (brain3d,
with its landmarks), driven through the real panels as a user clicks them.

The panels run under Slicer's own Python layer (the reference files of a Slicer tag, a real slicer-core
scene, PySide6 for PythonQt: ``Testing/slicer_gui``). For each method it measures, with the Default preset:

- the longest gap between progress updates reaching the panel, from the click on Apply to the idle panel,
  per phase (the registration in the worker; adding the result to the scene on the GUI thread);
- the longest the GUI's event loop went without running (a 20 ms timer's longest gap): how long the
  window could freeze;
- Cancel in each phase (right after Apply, mid-registration, while the scene is built): the time from the
  click to the idle panel, and to the end of the worker thread; the scene is checked to be as it was.

Writes benchmarks/results/panel.json and panel.md.

Usage: python benchmarks/panel_responsiveness.py [--tag v5.10.0] [--methods bspline r2n2 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "Testing"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from slicer_gui import start_slicer  # noqa: E402

#: method -> the module whose panel runs it
MODULE_OF = {"bspline": "R2Register", "affine": "R2Register", "ddf": "R2Register", "r2n2": "R2Register",
             "istn": "ISTNRegister", "cnnregress": "CNNRegress"}
PAIR = "brain3d"
TARGET_GAP_S = 0.5
TARGET_CANCEL_S = 1.0


class EventLoopWatch:
    """A 20 ms timer on the GUI thread; the longest gap between its ticks is the longest freeze."""

    def __init__(self, app) -> None:
        import qt

        self.app = app
        self.ticks: list = []
        self.timer = qt.QTimer()
        self.timer.setInterval(20)
        self.timer.connect("timeout()", lambda: self.ticks.append(time.monotonic()))

    def __enter__(self):
        self.ticks = [time.monotonic()]
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()
        self.ticks.append(time.monotonic())

    def longest_gap(self) -> float:
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:]))


def longest_gap(times: list) -> float:
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def longest_gap_message(run) -> str:
    """The update that ended the longest wait (what the worker had been doing)."""
    times = [run.started_at] + [t for t, _, _ in run.updates]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return run.updates[max(range(len(gaps)), key=gaps.__getitem__)][2] if gaps else ""


def open_panel(session, module: str):
    if module not in session.modules:
        session.load_module(ROOT / module / f"{module}.py")
    session.enter(module)
    widget = session.modules[module].widget
    session.wait_until(lambda: widget._methods_job is None, 300, "the method list")
    return widget


def prepare(session, widget, inputs, method: str) -> None:
    for selector, node in ((widget.ui.fixedVolumeSelector, inputs.fixed_node),
                           (widget.ui.movingVolumeSelector, inputs.moving_node),
                           (widget.ui.fixedLandmarksSelector, inputs.fixed_landmarks_node),
                           (widget.ui.movingLandmarksSelector, inputs.moving_landmarks_node)):
        selector.chooseIndex(selector.findData(node.GetID()))
    combo = widget.ui.methodComboBox
    combo.currentIndex = combo.findText(method)
    widget.ui.presetComboBox.currentIndex = widget.ui.presetComboBox.findText("Default")
    widget.ui.optionsLineEdit.text = ""


def full_run(session, widget) -> dict:
    with EventLoopWatch(session.app) as watch:
        widget.ui.applyButton.click()
        session.wait_until(lambda: widget._run is None, 1800, "the registration")
    run = widget.last_run
    assert run.outcome == "done", widget.ui.statusLabel.text
    registering = [run.started_at] + [t for t, f, m in run.updates if not m.startswith("Adding to the scene")]
    building = [t for t, f, m in run.updates if m.startswith("Adding to the scene")]
    building = [registering[-1]] + building + [run.idle_at]
    registration = run.registration
    return {
        "seconds": round(run.idle_at - run.started_at, 2),
        "updates": len(run.updates),
        "longest_gap_registering_s": round(longest_gap(registering), 3),
        "longest_gap_building_s": round(longest_gap(building), 3),
        "longest_gap_s": round(longest_gap([run.started_at] + [t for t, _, _ in run.updates] + [run.idle_at]), 3),
        "gui_longest_freeze_s": round(watch.longest_gap(), 3),
        "longest_gap_ends_at": longest_gap_message(run),
        "tre_before_mm": round(registration.review.before["mean"], 2),
        "tre_after_mm": round(registration.review.after["mean"], 2),
    }


def cancel_run(session, widget, phase: str) -> dict:
    import slicer

    before = [slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())]
    show = widget._show_progress
    if phase == "building":
        def show_and_cancel(run, fraction, message):
            show(run, fraction, message)
            if message.startswith("Adding to the scene") and run.cancelled_at is None:
                widget.ui.applyButton.click()
        widget._show_progress = show_and_cancel
    try:
        widget.ui.applyButton.click()
        if phase == "registering":
            session.wait_until(lambda: widget._run is not None and len(widget._run.updates) >= 3, 600, "progress")
            if widget._run is not None and widget._run.phase == "registering":
                widget.ui.applyButton.click()
        elif phase == "starting":
            widget.ui.applyButton.click()
        session.wait_until(lambda: widget._run is None, 1800, "the panel going idle")
    finally:
        widget._show_progress = show
    run = widget.last_run
    stopped = run.job.wait(60)
    after = [slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())]
    if run.outcome != "cancelled":  # the run ended before the click could cancel it (a very short phase)
        return {"phase": phase, "outcome": run.outcome}
    return {
        "phase": phase,
        "outcome": run.outcome,
        "to_idle_s": round(run.idle_at - run.cancelled_at, 3),
        # while the scene is built the worker has already ended: nothing to stop
        "worker_stopped_s": max(round(run.job.ended_at - run.cancelled_at, 3), 0.0) if stopped else None,
        "scene_unchanged": before == after,
    }


def remove_results(scene, keep: set) -> None:
    for node_id in [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]:
        node = scene.GetNodeByID(node_id)
        if node is not None and node_id not in keep and not node.IsA("vtkMRMLScriptedModuleNode") \
                and not node.GetSingletonTag():
            scene.RemoveNode(node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default="v5.10.0")
    parser.add_argument("--methods", nargs="+", default=list(MODULE_OF))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    import slicer
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    session = start_slicer(args.tag)
    sys.path.insert(0, str(ROOT / "Testing"))
    from test_slicer_panels import add_pair  # the same loading of a bundled pair as the panel tests

    inputs = add_pair(slicer.mrmlScene, PAIR)
    keep = {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}
    rows = []
    for method in args.methods:
        widget = open_panel(session, MODULE_OF[method])
        prepare(session, widget, inputs, method)
        row = {"method": method, "module": MODULE_OF[method], **full_run(session, widget)}
        remove_results(slicer.mrmlScene, keep)
        row["cancel"] = [cancel_run(session, widget, phase) for phase in ("starting", "registering", "building")]
        remove_results(slicer.mrmlScene, keep)
        print(json.dumps(row), flush=True)
        rows.append(row)
    session.stop()

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "panel.json").write_text(json.dumps({"pair": PAIR, "tag": args.tag, "machine": machine,
                                                     "rows": rows}, indent=2))
    (args.out / "panel.md").write_text(markdown(rows, args.tag, machine))
    print((args.out / "panel.md").read_text())


def markdown(rows: list, tag: str, machine: str) -> str:
    lines = [
        f"# Panel responsiveness on the bundled 3D pair ({PAIR})",
        "",
        f"Slicer {tag}'s Python layer over a slicer-core scene (PySide6 for PythonQt), {machine}. Default preset. "
        f"Targets: a progress update at least every {TARGET_GAP_S} s in every phase; Cancel to idle within "
        f"{TARGET_CANCEL_S} s in every phase, scene unchanged. Written by `benchmarks/panel_responsiveness.py`.",
        "",
        "| method | run (s) | updates | longest gap: registering (s) | longest gap: adding to scene (s) | "
        "GUI longest freeze (s) | TRE (mm) | Cancel to idle (s): starting / registering / building | "
        "worker stopped after Cancel (s) | scene unchanged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cancels = {c["phase"]: c for c in row["cancel"]}

        def cell(phase, key):
            c = cancels[phase]
            return f"{c[key]:.3f}" if c.get(key) is not None else f"({c['outcome']})"
        unchanged = all(c.get("scene_unchanged", True) for c in row["cancel"])
        lines.append(
            f"| {row['method']} | {row['seconds']:.1f} | {row['updates']} | {row['longest_gap_registering_s']:.3f} | "
            f"{row['longest_gap_building_s']:.3f} | {row['gui_longest_freeze_s']:.3f} | "
            f"{row['tre_before_mm']:.2f} -> {row['tre_after_mm']:.2f} | "
            + " / ".join(cell(p, "to_idle_s") for p in ("starting", "registering", "building")) + " | "
            + " / ".join(cell(p, "worker_stopped_s") for p in ("starting", "registering", "building"))
            + f" | {'yes' if unchanged else 'NO'} |")
    worst_gap = max(max(r["longest_gap_registering_s"], r["longest_gap_building_s"]) for r in rows)
    worst_cancel = max(c.get("to_idle_s") or 0.0 for r in rows for c in r["cancel"])
    lines += [
        "",
        f"- Longest gap between progress updates, any method and phase: {worst_gap:.3f} s "
        f"(target {TARGET_GAP_S} s: {'met' if worst_gap <= TARGET_GAP_S else 'NOT met'}).",
        f"- Longest time from Cancel to the idle panel: {worst_cancel:.3f} s "
        f"(target {TARGET_CANCEL_S} s: {'met' if worst_cancel <= TARGET_CANCEL_S else 'NOT met'}).",
        "- The panel goes idle at the click; the worker thread, which never touches the scene, stops at its next "
        "check of the cancel token (the column before last).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
