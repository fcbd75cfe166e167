#!/usr/bin/env python3
"""Render Resources/Icons/LearnReg.png (128x128): a grid deformed by a smooth field over a brain slice."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnreg.image import load_image  # noqa: E402
from learnreg.sample_data import sample_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
brain = load_image(sample_image("brain_t1_slice")).array[0]
fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
ax = fig.add_axes([0, 0, 1, 1])
ax.imshow(brain[8:-8, :], cmap="gray", extent=(0, 1, 1, 0))
t = np.linspace(0, 1, 60)
for c in np.linspace(0.08, 0.92, 7):
    ax.plot(t, c + 0.04 * np.sin(2 * np.pi * (t + c)), color="#ffcc00", lw=1.1)
    ax.plot(c + 0.04 * np.sin(2 * np.pi * (t + 2 * c)), t, color="#ffcc00", lw=1.1)
ax.set_xlim(0, 1)
ax.set_ylim(1, 0)
ax.axis("off")
out = ROOT / "Resources" / "Icons" / "LearnReg.png"
out.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(out, dpi=100)
print(out)
