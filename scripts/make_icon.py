#!/usr/bin/env python3
"""Render the 128x128 icons: the extension's (a deformed grid) and one per module, each over a brain slice.

- LearnReg: a grid deformed by a smooth field;
- R2Register: a grid bent by one local Gaussian deformation (one R2N2 step);
- ISTNRegister: an affinely tilted grid with a highlighted structure (ITN focus, STN transform);
- CNNRegress: displacement arrows at a few active points.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnreg.image import load_image  # noqa: E402
from learnreg.sample_data import sample_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
YELLOW = "#ffcc00"
t = np.linspace(0, 1, 80)


def smooth_grid(ax):
    for c in np.linspace(0.08, 0.92, 7):
        ax.plot(t, c + 0.04 * np.sin(2 * np.pi * (t + c)), color=YELLOW, lw=1.1)
        ax.plot(c + 0.04 * np.sin(2 * np.pi * (t + 2 * c)), t, color=YELLOW, lw=1.1)


def gaussian_step(ax):
    def bump(x, y):
        g = np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / (2 * 0.15 ** 2))
        return x + 0.12 * g, y + 0.08 * g

    for c in np.linspace(0.08, 0.92, 7):
        ax.plot(*bump(t, np.full_like(t, c)), color=YELLOW, lw=1.1)
        ax.plot(*bump(np.full_like(t, c), t), color=YELLOW, lw=1.1)
    ax.add_patch(plt.Circle((0.56, 0.54), 0.2, fill=False, color="#ff4d4d", lw=1.2, ls="--"))


def affine_focus(ax):
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * 0.9
    for c in np.linspace(0.08, 0.92, 7):
        for line in (np.stack([t, np.full_like(t, c)]), np.stack([np.full_like(t, c), t])):
            x, y = rotation @ (line - 0.5) + 0.5
            ax.plot(x, y, color=YELLOW, lw=1.0)
    ax.add_patch(plt.Circle((0.5, 0.5), 0.16, color="#00e5ff", alpha=0.45))


def active_points(ax):
    rng = np.random.default_rng(3)
    points = rng.uniform(0.15, 0.85, size=(9, 2))
    vectors = 0.12 * np.stack([np.sin(6 * points[:, 1]), np.cos(5 * points[:, 0])], axis=1)
    ax.quiver(points[:, 0], points[:, 1], vectors[:, 0], vectors[:, 1], color=YELLOW, angles="xy",
              scale_units="xy", scale=1, width=0.03)
    ax.scatter(points[:, 0], points[:, 1], s=14, c="#ff4d4d")


ICONS = {
    ROOT / "Resources" / "Icons" / "LearnReg.png": smooth_grid,
    ROOT / "R2Register" / "Resources" / "Icons" / "R2Register.png": gaussian_step,
    ROOT / "ISTNRegister" / "Resources" / "Icons" / "ISTNRegister.png": affine_focus,
    ROOT / "CNNRegress" / "Resources" / "Icons" / "CNNRegress.png": active_points,
}

brain = load_image(sample_image("brain_t1_slice")).array[0]
for out, motif in ICONS.items():
    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(brain[8:-8, :], cmap="gray", extent=(0, 1, 1, 0))
    motif(ax)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.axis("off")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(out)
