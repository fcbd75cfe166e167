"""Write the 128 x 128 thumbnails Slicer's Sample Data module shows for the bundled pairs: the fixed
image's middle slice (axial for 3D), grey, on black. Run after changing a pair's fixed image."""

from __future__ import annotations

import numpy as np

from learnreg.image import load_image
from learnreg.sample_data import DATA_DIR, sample_pairs


def thumbnail(fixed_path, out_path, size: int = 128) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = load_image(fixed_path)
    array = image.array  # (k, j, i)
    plane = array[array.shape[0] // 2]
    low, high = np.percentile(plane, (1, 99))
    spacing = image.grid.spacing
    figure = plt.figure(figsize=(1, 1), dpi=size)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(np.flipud(plane), cmap="gray", vmin=low, vmax=high, aspect=spacing[1] / spacing[0],
                interpolation="bilinear")
    axes.set_facecolor("black")
    axes.axis("off")
    figure.savefig(out_path, dpi=size, facecolor="black")
    plt.close(figure)


def main() -> None:
    for name, pair in sample_pairs().items():
        out = DATA_DIR / ("rat_lung_thumbnail.png" if name == "ratlung2d" else f"pairs/{name}/thumbnail.png")
        thumbnail(pair.fixed, out)
        print(out)


if __name__ == "__main__":
    main()
