"""``learnreg demo``: register the bundled sample pairs and write results plus a PNG overview each."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from learnreg.errors import InputError
from learnreg.pipeline import RegistrationRun, register_files, scene_support_missing
from learnreg.progress import CancelToken, ProgressCallback
from learnreg.sample_data import sample_pairs
from learnreg.visualize import save_overview


def _write_overview(path: Path, run: RegistrationRun) -> None:
    lm = run.landmarks
    save_overview(path, run.fixed, run.moving, run.result, None if lm is None else lm.fixed,
                  None if lm is None else lm.moving)


def _write_views(path: Path, run: RegistrationRun) -> None:
    from learnreg.slicer.render import save_registration_views

    save_registration_views(path, run.scene)


def run_demo(out: Path, method: str = "bspline", names: Optional[list] = None, device: str = "auto",
             options: Optional[dict] = None, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelToken] = None, scene: bool = True) -> Iterator[tuple[RegistrationRun, Path]]:
    """Register each chosen sample pair into ``out/<pair>/``; yields each run and its folder.

    Each folder gets the ``learnreg register`` outputs, ``overview.png`` (images, differences, deformed
    grid, landmarks) and, with the scene, ``views.png``: Slicer slice views of the result with glyphs.
    """
    extra = {"overview.png": _write_overview}
    if scene and scene_support_missing() is None:
        extra["views.png"] = _write_views
    pairs = sample_pairs()
    names = names or list(pairs)
    unknown = [n for n in names if n not in pairs]
    if unknown:
        raise InputError(f"unknown sample pair(s) {', '.join(unknown)}; available: {', '.join(pairs)}")
    for name in names:
        pair = pairs[name]
        folder = Path(out) / name
        run = register_files(pair.fixed, pair.moving, method, folder, fixed_landmarks=pair.fixed_landmarks,
                             moving_landmarks=pair.moving_landmarks, device=device, options=options,
                             progress=progress, cancel=cancel, extra_outputs=extra, scene=scene)
        yield run, folder
