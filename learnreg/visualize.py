"""PNG overview of a registration: fixed, moving, warped, differences before/after, deformation grid.

3D images are shown on their middle axial or coronal slice (the index axis nearest the LPS z or y axis
normal to it; superior up); the in-plane displacement components are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from learnreg.image import Image, normalise_percentile
from learnreg.registration import RegistrationResult
from learnreg.warp import resample_to_grid


#: plane -> the LPS axis (0 x, 1 y, 2 z) normal to it
PLANES = {"axial": 2, "coronal": 1}


def plane_axes(grid, plane: str) -> tuple[int, int, int]:
    """Index axes (0 i, 1 j, 2 k) ``(normal, column, row)`` of ``plane`` on ``grid``: the normal is the axis
    nearest the plane's LPS normal, the columns the remaining axis nearest LPS x; 2D: ``(2, 0, 1)``."""
    if grid.ndim == 2:
        return 2, 0, 1
    alignment = np.abs(grid.direction_matrix)  # [LPS axis, index axis]
    normal = int(np.argmax(alignment[PLANES[plane]]))
    rest = [a for a in range(3) if a != normal]
    column = max(rest, key=lambda a: alignment[0, a])
    return normal, column, next(a for a in rest if a != column)


def _slice(array: np.ndarray, axes: tuple[int, int, int], position: int) -> np.ndarray:
    """The plane of an array ``(..., k, j, i)`` at ``position`` along index axis ``axes[0]``, as
    ``(..., rows, columns)`` with columns along index axis ``axes[1]``."""
    normal, column, row = axes
    plane = np.take(array, position, axis=array.ndim - 1 - normal)
    # the plane's last axis is the smaller remaining index axis
    return np.asarray(plane if column < row else np.swapaxes(plane, -1, -2), dtype=np.float32)


def save_overview(path, fixed: Image, moving: Image, result: RegistrationResult,
                  fixed_points: Optional[np.ndarray] = None, moving_points: Optional[np.ndarray] = None,
                  title: str = "", plane: str = "axial") -> None:
    """Write a 2x3 panel PNG: fixed, moving (on the fixed grid), warped; |F-M| before, |F-W| after,
    and the deformation grid with landmarks (fixed o, mapped x, moving +); 3D images on the middle slice of
    ``plane`` (:data:`PLANES`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = fixed.grid
    view = plane_axes(grid, plane)
    normal, column, row = view
    k = grid.size[normal] // 2
    f = normalise_percentile(_slice(fixed.array, view, k))
    m_on_f = resample_to_grid(moving, grid)
    m = normalise_percentile(_slice(m_on_f.array, view, k))
    w = normalise_percentile(_slice(result.warped.array, view, k))
    aspect = grid.spacing[row] / grid.spacing[column]
    origin = "lower" if grid.ndim == 3 and grid.direction_matrix[2, row] > 0.5 else "upper"  # superior up
    fig, axes = plt.subplots(2, 3, figsize=(12, 9.2))
    panels = [(f, "fixed", "gray"), (m, "moving (no registration)", "gray"), (w, f"warped ({result.method})", "gray"),
              (np.abs(f - m), "|fixed - moving| before", "magma"), (np.abs(f - w), "|fixed - warped| after", "magma")]
    for ax, (img, name, cmap) in zip(axes.ravel(), panels):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, aspect=aspect, origin=origin)
        ax.set_title(name)
        ax.axis("off")

    ax = axes[1, 2]
    ax.imshow(f, cmap="gray", vmin=0, vmax=1, aspect=aspect, origin=origin)
    axis_field = result.field.to_axis_tensor()[0].numpy()
    if grid.ndim == 3:
        axis_field = _slice(axis_field, view, k)
    ui, uj = axis_field[column] / grid.spacing[column], axis_field[row] / grid.spacing[row]
    nj, ni = f.shape
    jj, ii = np.mgrid[0:nj, 0:ni]
    step = max(2, min(ni, nj) // 14)
    for j in range(0, nj, step):
        ax.plot(ii[j] + ui[j], jj[j] + uj[j], color="yellow", lw=0.6)
    for i in range(0, ni, step):
        ax.plot(ii[:, i] + ui[:, i], jj[:, i] + uj[:, i], color="yellow", lw=0.6)
    if fixed_points is not None and moving_points is not None:
        mapped = result.field.transform_points(fixed_points)
        near = np.abs(grid.physical_to_index(fixed_points)[:, normal] - k) <= 2.0
        for pts, marker, colour, label in ((fixed_points, "o", "cyan", "fixed"), (mapped, "x", "red", "mapped"),
                                           (moving_points, "+", "lime", "moving")):
            idx = grid.physical_to_index(pts[near])
            style = {"facecolors": "none", "edgecolors": colour} if marker == "o" else {"c": colour}
            ax.scatter(idx[:, column], idx[:, row], marker=marker, s=30, label=label, **style)
        if near.any():
            ax.legend(loc="lower right", fontsize=7)
    ax.set_xlim(-0.5, ni - 0.5)
    ax.set_ylim((-0.5, nj - 0.5) if origin == "lower" else (nj - 0.5, -0.5))
    ax.set_title("deformation grid (fixed -> moving), landmarks")
    ax.axis("off")
    slice_note = f", {plane} slice {'ijk'[normal]}={k}" if grid.ndim == 3 else ""
    fig.suptitle(title or f"{result.method}{slice_note}")
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=2.0)
    fig.savefig(Path(path), dpi=90)
    plt.close(fig)
