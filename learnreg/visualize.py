"""PNG overview of a registration: fixed, moving, warped, differences before/after, deformation grid.

3D images are shown on the middle slice along k; in-plane displacement components are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from learnreg.image import Image, normalise_percentile
from learnreg.registration import RegistrationResult
from learnreg.warp import resample_to_grid


def _slice(array: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(array[k], dtype=np.float32)


def save_overview(path, fixed: Image, moving: Image, result: RegistrationResult,
                  fixed_points: Optional[np.ndarray] = None, moving_points: Optional[np.ndarray] = None,
                  title: str = "") -> None:
    """Write a 2x3 panel PNG: fixed, moving (on the fixed grid), warped; |F-M| before, |F-W| after,
    and the deformation grid with landmarks (fixed o, mapped x, moving +)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = fixed.grid
    k = grid.size[2] // 2
    f = normalise_percentile(_slice(fixed.array, k))
    m_on_f = resample_to_grid(moving, grid)
    m = normalise_percentile(_slice(m_on_f.array, k))
    w = normalise_percentile(_slice(result.warped.array, k))
    aspect = grid.spacing[1] / grid.spacing[0]
    fig, axes = plt.subplots(2, 3, figsize=(12, 9.2))
    panels = [(f, "fixed", "gray"), (m, "moving (no registration)", "gray"), (w, f"warped ({result.method})", "gray"),
              (np.abs(f - m), "|fixed - moving| before", "magma"), (np.abs(f - w), "|fixed - warped| after", "magma")]
    for ax, (img, name, cmap) in zip(axes.ravel(), panels):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, aspect=aspect)
        ax.set_title(name)
        ax.axis("off")

    ax = axes[1, 2]
    ax.imshow(f, cmap="gray", vmin=0, vmax=1, aspect=aspect)
    axis_field = result.field.to_axis_tensor()[0].numpy()
    if grid.ndim == 3:
        axis_field = axis_field[:, k]
    ui, uj = axis_field[0] / grid.spacing[0], axis_field[1] / grid.spacing[1]
    nj, ni = f.shape
    jj, ii = np.mgrid[0:nj, 0:ni]
    step = max(2, min(ni, nj) // 14)
    for j in range(0, nj, step):
        ax.plot(ii[j] + ui[j], jj[j] + uj[j], color="yellow", lw=0.6)
    for i in range(0, ni, step):
        ax.plot(ii[:, i] + ui[:, i], jj[:, i] + uj[:, i], color="yellow", lw=0.6)
    if fixed_points is not None and moving_points is not None:
        mapped = result.field.transform_points(fixed_points)
        near = np.abs(grid.physical_to_index(fixed_points)[:, 2] - k) <= 2.0
        for pts, marker, colour, label in ((fixed_points, "o", "cyan", "fixed"), (mapped, "x", "red", "mapped"),
                                           (moving_points, "+", "lime", "moving")):
            idx = grid.physical_to_index(pts[near])
            style = {"facecolors": "none", "edgecolors": colour} if marker == "o" else {"c": colour}
            ax.scatter(idx[:, 0], idx[:, 1], marker=marker, s=30, label=label, **style)
        if near.any():
            ax.legend(loc="lower right", fontsize=7)
    ax.set_xlim(-0.5, ni - 0.5)
    ax.set_ylim(nj - 0.5, -0.5)
    ax.set_title("deformation grid (fixed -> moving), landmarks")
    ax.axis("off")
    slice_note = f", slice k={k}" if grid.ndim == 3 else ""
    fig.suptitle(title or f"{result.method}{slice_note}")
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=2.0)
    fig.savefig(Path(path), dpi=90)
    plt.close(fig)
