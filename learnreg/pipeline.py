"""Register two image files and write the results: what ``learnreg register`` and ``learnreg demo`` run.

Everything a user can get wrong (files, images, landmarks, options, memory) is checked before the
registration runs, and nothing is written before it has finished. Results are written into a hidden
temporary folder beside the output folder and moved in only when all of them are complete, so the
output folder gets every file or none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from learnreg import __version__
from learnreg.errors import InputError
from learnreg.image import Image, image_suffix, load_image, read_image_grid, save_image
from learnreg.landmarks import LandmarkPairs, pair_landmarks, read_landmarks
from learnreg.metrics import folding, tre
from learnreg.progress import CancelToken, Progress, ProgressCallback
from learnreg.registration import RegistrationResult, create_registrar

TRANSFORM_CONVENTION = (
    "ITK DisplacementFieldTransform in LPS mm, resampling direction: TransformPoint(fixed point) gives the "
    "corresponding moving point; Resample(moving, fixed, transform) reproduces warped.nii.gz"
)


@dataclass
class RegistrationRun:
    """A finished file-level registration: the report written, the result, the inputs it used, and its
    nodes in a headless Slicer scene (a :class:`~learnreg.slicer.run.SceneRegistration`; None without
    scene output)."""

    report: dict
    result: RegistrationResult
    fixed: Image
    moving: Image
    landmarks: Optional[LandmarkPairs]
    scene: Any = None


def scene_support_missing() -> Optional[str]:
    """None when Slicer's MRML library can be imported, else the reason (with how to install it)."""
    try:
        import learnreg.slicer._mrml  # noqa: F401
    except InputError as exc:
        return str(exc)
    return None


def _image_name(path) -> str:
    name = Path(path).name
    return name[: len(name) - len(image_suffix(Path(path)))]


def load_landmark_pairs(fixed_path, moving_path, fixed: Image, moving: Image) -> Optional[LandmarkPairs]:
    """Read, match and check landmark files (both or neither must be given)."""
    if fixed_path is None and moving_path is None:
        return None
    if fixed_path is None or moving_path is None:
        raise InputError("give both --fixed-landmarks and --moving-landmarks, or neither")
    return pair_landmarks(read_landmarks(fixed_path), read_landmarks(moving_path), fixed, moving)


def build_report(result: RegistrationResult, fixed_path, moving_path, fixed: Image, moving: Image,
                 landmarks: Optional[LandmarkPairs], timings: dict, tre_mm: Optional[tuple] = None) -> dict:
    """The content of ``report.json`` (``tre_mm``: TRE before, after and after a learned method's pass alone
    (None for other methods) when already measured, e.g. by the scene's landmark review; measured here
    otherwise)."""
    report = {
        "learnreg_version": __version__,
        "method": result.method,
        "options": result.options,
        "device": result.device,
        "fixed": {"path": str(fixed_path), **fixed.grid.describe()},
        "moving": {"path": str(moving_path), **moving.grid.describe()},
        "parameter_count": result.parameter_count,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "folding": folding(result.field),
        "transform_convention": TRANSFORM_CONVENTION,
    }
    if landmarks is not None:
        before, after, one_pass = tre_mm or (
            tre(landmarks.fixed, landmarks.moving), tre(landmarks.fixed, landmarks.moving, result.field),
            None if result.one_pass is None else tre(landmarks.fixed, landmarks.moving, result.one_pass))
        report["tre_mm"] = {
            "labels": list(landmarks.labels),
            "before": before,
            "after": after,
            "landmarks_snapped_to_voxels": False,
        }
        if one_pass is not None:
            report["tre_mm"]["one_pass"] = one_pass
    if result.similarity:
        report["similarity"] = {"measure": "1 - NCC on the fixed grid", **result.similarity}
    return report


def write_outputs_atomically(out_dir: Path, writers: dict, cancel: Optional[CancelToken] = None) -> None:
    """Run ``writers[name](path)`` for every output file into a temporary folder, then move them all in;
    ``cancel`` is checked after each file (a cancel leaves nothing behind)."""
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        for name, write in writers.items():
            write(staging / name)
            if cancel is not None:
                cancel.raise_if_cancelled()
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in writers:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output folder that cannot be created or written, before any work (nothing is left behind:
    a probe folder is made in the nearest existing folder and removed)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a folder; choose another --out")
    existing = out_dir.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot create the output folder {out_dir}: {existing} is a file, not a folder; "
                         "choose another --out")
    try:
        probe = tempfile.mkdtemp(prefix=".learnreg-write-test-", dir=existing)
    except OSError as exc:
        raise InputError(f"cannot create or write the output folder {out_dir}: writing in {existing} failed "
                         f"({exc.strerror or exc}); choose a folder you can write to with --out") from None
    os.rmdir(probe)


def register_files(fixed_path, moving_path, method: str, out_dir, *, fixed_landmarks=None, moving_landmarks=None,
                   device: str = "auto", options: Optional[dict] = None, progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None, extra_outputs: Optional[dict] = None,
                   scene: bool = True) -> RegistrationRun:
    """Register ``moving_path`` to ``fixed_path`` with ``method`` and write into ``out_dir``:
    ``warped.nii.gz``, ``transform.h5``, ``report.json``, and with ``scene`` (when Slicer's MRML library
    is installed) ``scene.mrb``, the Slicer scene of the result; plus ``extra_outputs``: file name ->
    writer taking ``(path, run)``. With ``scene``, the result is added to a new headless scene by
    :func:`learnreg.slicer.run.add_registration_to_scene`, as in the Slicer modules.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    registrar = create_registrar(method, options)
    if Path(fixed_path).resolve() == Path(moving_path).resolve():
        raise InputError(f"the fixed and moving image are the same file {fixed_path}; give the image to register "
                         "to it as the moving image")
    # the device and its memory are checked from the headers, before any voxel is read
    registrar.check_resources(read_image_grid(fixed_path, "fixed image"), read_image_grid(moving_path, "moving image"),
                              device)
    fixed = load_image(fixed_path, "fixed image")
    moving = load_image(moving_path, "moving image")
    landmarks = load_landmark_pairs(fixed_landmarks, moving_landmarks, fixed, moving)
    timings = {"load": time.perf_counter() - t_start}

    notes = []
    if scene and (missing := scene_support_missing()) is not None:
        notes.append(f"scene.mrb not written: {missing}")
        scene = False
    # register() checks the pair, the device and its memory before any work; nothing is written before
    reporter = Progress(progress, cancel)
    result = registrar.register(fixed, moving, device=device, cancel=cancel,
                                progress=reporter.span(0.0, 0.95 if scene else 1.0).as_callback())
    timings.update(result.timings)
    scene_registration = None
    if scene:
        from learnreg.slicer.inputs import SceneInputs
        from learnreg.slicer.run import add_registration_to_scene
        from learnreg.slicer.scene import create_scene

        t_scene = time.perf_counter()
        inputs = SceneInputs.from_images(fixed, moving, landmarks, (_image_name(fixed_path), _image_name(moving_path)))
        scene_registration = add_registration_to_scene(create_scene(), inputs, result, cancel=cancel,
                                                       progress=reporter.span(0.95, 1.0).as_callback())
        timings["scene"] = time.perf_counter() - t_scene
    review = scene_registration.review if scene_registration is not None else None
    report = build_report(result, fixed_path, moving_path, fixed, moving, landmarks, timings,
                          None if review is None else (review.before, review.after, review.one_pass))
    report["notes"] = notes + result.notes

    t_write = time.perf_counter()
    writers = {
        "warped.nii.gz": lambda p: save_image(result.warped, p),
        "transform.h5": lambda p: result.field.save(p),
    }
    if scene_registration is not None:
        from learnreg.slicer.scene import save_scene

        writers["scene.mrb"] = lambda p: save_scene(scene_registration.inputs.fixed_node.GetScene(), p)
    run = RegistrationRun(report, result, fixed, moving, landmarks, scene_registration)
    for name, write in (extra_outputs or {}).items():
        writers[name] = (lambda w: lambda p: w(p, run))(write)

    def write_report(path: Path) -> None:
        report["timings_s"]["write"] = round(time.perf_counter() - t_write, 4)
        report["timings_s"]["wall"] = round(time.perf_counter() - t_start, 4)
        path.write_text(json.dumps(report, indent=2))

    writers["report.json"] = write_report
    report["outputs"] = {name.split(".")[0]: name for name in writers}
    write_outputs_atomically(out_dir, writers, cancel)
    return run
