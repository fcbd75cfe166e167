"""``learnreg demo``: register the bundled sample pairs and write results plus a PNG overview each."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from learnreg.errors import InputError
from learnreg.pipeline import RegistrationRun, register_files
from learnreg.progress import CancelToken, ProgressCallback
from learnreg.sample_data import sample_pairs
from learnreg.visualize import save_overview


def _write_overview(path: Path, run: RegistrationRun) -> None:
    lm = run.landmarks
    save_overview(path, run.fixed, run.moving, run.result, None if lm is None else lm.fixed,
                  None if lm is None else lm.moving)


def run_demo(out: Path, method: str = "bspline", names: Optional[list] = None, device: str = "auto",
             options: Optional[dict] = None, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelToken] = None) -> Iterator[tuple[RegistrationRun, Path]]:
    """Register each chosen sample pair into ``out/<pair>/``; yields each run and its folder."""
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
                             progress=progress, cancel=cancel, extra_outputs={"overview.png": _write_overview})
        yield run, folder
