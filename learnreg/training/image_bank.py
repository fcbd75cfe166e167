"""A bank of real images on a network's working grid, from which training pairs are drawn.

Images are read with :func:`learnreg.image.load_image` (NIfTI, NRRD, MHA, PNG ...). For a 2D bank, 3D
volumes are cut into slices along each of their axes (every ``slice_step_mm``, keeping slices whose
foreground covers at least ``min_foreground`` of the slice); for a 3D bank each volume is used whole and,
optionally, as a few random sub-volumes. Every entry is percentile-normalised and brought onto its own
working grid by the same functions inference uses, so training sees what inference will see.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from learnreg.errors import InputError
from learnreg.image import Grid, Image, load_image, normalise


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Files matched by ``patterns`` (globs allowed), sorted; :class:`InputError` when one matches nothing."""
    paths: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        found = [p for p in found if Path(p).is_file()]
        if not found:
            raise InputError(f"training data {pattern!r} matches no file; fix the path in the [data] section")
        paths.extend(Path(p) for p in found)
    return paths


def _slices(image: Image, step_mm: float, min_foreground: float) -> list[Image]:
    """2D images cut from a 3D volume along its three axes (identity geometry with the in-plane spacing)."""
    array = np.asarray(image.array, dtype=np.float32)  # (k, j, i)
    threshold = np.percentile(array, 5) + 0.1 * (np.percentile(array, 99) - np.percentile(array, 5))
    spacing_kji = list(reversed(image.grid.spacing))
    out = []
    for axis in range(3):
        step = max(1, int(round(step_mm / spacing_kji[axis])))
        in_plane = [s for a, s in enumerate(spacing_kji) if a != axis]  # (row, column) spacing
        for index in range(0, array.shape[axis], step):
            plane = np.take(array, index, axis=axis)
            if (plane > threshold).mean() < min_foreground:
                continue
            grid = Grid.make((plane.shape[1], plane.shape[0], 1), (in_plane[1], in_plane[0], 1.0))
            out.append(Image(plane[None], grid))
    return out


def _crops(image: Image, count: int, rng: np.random.Generator, smallest: float = 0.7) -> list[Image]:
    """``count`` random sub-volumes covering ``smallest`` to all of each axis."""
    array = np.asarray(image.array)
    out = []
    for _ in range(count):
        lo, hi = [], []
        for n in array.shape:
            length = max(8, int(round(n * rng.uniform(smallest, 1.0))))
            start = int(rng.integers(0, n - length + 1))
            lo.append(start)
            hi.append(start + length)
        sub = array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        origin = image.grid.index_to_physical(np.array([lo[2], lo[1], lo[0]], dtype=float))
        out.append(Image(sub, Grid(tuple(reversed(sub.shape)), image.grid.spacing, tuple(origin),
                                   image.grid.direction)))
    return out


@dataclass
class ImageBank:
    """Images ``(N, 1, *[size] * ndim)`` in [0, 1] on their working grids, with their names and the
    working grids' voxel spacing (mm), ``(N,)``."""

    images: torch.Tensor
    names: list[str]
    spacing_mm: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @classmethod
    def build(cls, patterns: Sequence[str], ndim: int, working_grid: Callable[[Grid], Grid],
              to_working: Callable[[Image, Grid], torch.Tensor], *,
              slice_step_mm: float = 4.0, min_foreground: float = 0.25, crops_per_volume: int = 0,
              seed: int = 0) -> "ImageBank":
        """Read every file matched by ``patterns`` and bring its 2D slices or 3D volumes onto working grids."""
        rng = np.random.default_rng(seed)
        tensors, names, spacings = [], [], []
        for path in expand_paths(patterns):
            image = load_image(path)
            if ndim == 2:
                entries = [image] if image.ndim == 2 else _slices(image, slice_step_mm, min_foreground)
            else:
                if image.ndim != 3:
                    raise InputError(f"{path} is 2D; a 3D training bank needs volumes")
                entries = [image] + _crops(image, crops_per_volume, rng)
            for n, entry in enumerate(entries):
                grid = working_grid(entry.grid)
                tensors.append(to_working(normalise(entry), grid)[0].float())
                names.append(f"{path.name}#{n}")
                spacings.append(grid.spacing[0])
        if not tensors:
            raise InputError(f"no usable images in {list(patterns)}; check the [data] section")
        return cls(torch.stack(tensors).half(), names, torch.tensor(spacings))
