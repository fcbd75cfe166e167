"""Pictures of a registration as a Slicer user sees it, rendered without a screen.

Slices come from Slicer's own slice logic (``vtkMRMLSliceLogic`` reslices a volume node with its display
node's window/level, no OpenGL needed), in the fixed volume's native plane through its centre. The
displacement arrows are the glyphs Slicer draws in a slice view (``vtkSlicerTransformLogic.
GetVisualization2d`` with the transform's display settings), mapped into the slice's pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from vtk.util.numpy_support import vtk_to_numpy

from learnreg.slicer._mrml import slicer, vtk
from learnreg.slicer.volumes import vtk_matrix_to_array


class SliceView:
    """A slice view of ``reference_node``'s centre plane, ``size`` pixels, rendered through a slice logic."""

    def __init__(self, scene, reference_node, size: int = 360, layout_name: str = "LearnRegPreview"):
        self.logic = slicer.vtkMRMLSliceLogic()
        self.logic.SetMRMLScene(scene)
        self.node = self.logic.AddSliceNode(layout_name)
        self.composite = self.logic.GetSliceCompositeNode()
        self.node.SetDimensions(size, size, 1)
        self.node.RotateToVolumePlane(reference_node)
        self.composite.SetBackgroundVolumeID(reference_node.GetID())
        self.logic.FitSliceToVolume(reference_node, size, size)
        bounds = [0.0] * 6
        reference_node.GetRASBounds(bounds)
        centre = [(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2]
        self.node.JumpSliceByCentering(*centre)
        self.size = size
        self._scene = scene
        self._nodes = [self.node, self.composite]

    def grey(self, volume_node) -> np.ndarray:
        """The volume resliced on this view with its display window/level: ``(size, size)`` in [0, 1], top row first."""
        self.composite.SetBackgroundVolumeID(volume_node.GetID())
        self.composite.SetForegroundVolumeID(None)
        self.logic.UpdateImageData()
        producer = self.logic.GetImageDataConnection().GetProducer()
        producer.Update()
        image = producer.GetOutputDataObject(0)
        width, height, _ = image.GetDimensions()
        rgba = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return rgba[::-1, :, 0].astype(np.float32) / 255.0

    def to_pixels(self, points_ras: np.ndarray) -> np.ndarray:
        """RAS points ``(N, 3)`` -> pixel ``(column, row)`` (row 0 at the top) and offset from the plane in slices."""
        xy_to_ras = vtk_matrix_to_array(self.node.GetXYToRAS())
        ras_to_xy = np.linalg.inv(xy_to_ras)
        homogeneous = np.c_[np.asarray(points_ras, float), np.ones(len(points_ras))] @ ras_to_xy.T
        columns, rows = homogeneous[:, 0], self.size - 1 - homogeneous[:, 1]
        return np.c_[columns, rows, homogeneous[:, 2]]

    def glyph_polygons(self, display_node) -> list[np.ndarray]:
        """The transform's 2D glyphs on this view as pixel polygons."""
        polydata = vtk.vtkPolyData()
        if not slicer.vtkSlicerTransformLogic.GetVisualization2d(polydata, display_node, self.node):
            return []
        if polydata.GetNumberOfPoints() == 0:
            return []
        pixels = self.to_pixels(vtk_to_numpy(polydata.GetPoints().GetData()))[:, :2]
        polygons = []
        for cells in (polydata.GetPolys(), polydata.GetLines()):
            ids = vtk.vtkIdList()
            cells.InitTraversal()
            while cells.GetNextCell(ids):
                polygons.append(pixels[[ids.GetId(i) for i in range(ids.GetNumberOfIds())]])
        return polygons

    def close(self) -> None:
        """Remove the view's slice and composite nodes from the scene."""
        for node in self._nodes:
            if node.GetScene() is not None:
                self._scene.RemoveNode(node)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Alternate square tiles of ``a`` and ``b``."""
    rows, columns = np.indices(a.shape)
    tile = max(a.shape) // tiles
    return np.where(((rows // tile) + (columns // tile)) % 2 == 0, a, b)


def colour_overlay(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Fixed in magenta, moving in green: aligned structures look grey, misaligned ones coloured."""
    return np.clip(np.stack([fixed, moving, fixed], axis=-1), 0.0, 1.0)


def save_registration_views(path, scene, fixed_node, moving_node, registration, fixed_landmarks=None) -> Path:
    """Write a PNG of four slice views: before and after overlays, a checkerboard, and the warped
    volume with the displacement glyphs (and the fixed landmarks near the slice as circles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    view = SliceView(scene, fixed_node)
    try:
        fixed, moving = view.grey(fixed_node), view.grey(moving_node)
        warped = view.grey(registration.warped_volume)
        glyphs = view.glyph_polygons(registration.transform.GetDisplayNode())
        landmarks = _landmark_pixels(view, fixed_landmarks)
    finally:
        view.close()

    method = registration.result.method
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    panels = [
        (colour_overlay(fixed, moving), "before: fixed (magenta) / moving (green)"),
        (colour_overlay(fixed, warped), "after: fixed (magenta) / warped (green)"),
        (checkerboard(fixed, warped), "checkerboard fixed / warped"),
        (warped, f"warped + displacement glyphs ({len(glyphs)})"),
    ]
    for ax, (picture, title) in zip(axes, panels):
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        ax.set_xlim(-0.5, picture.shape[1] - 0.5)
        ax.set_ylim(picture.shape[0] - 0.5, -0.5)
    axes[3].add_collection(PolyCollection(glyphs, closed=False, facecolors="none", edgecolors="#ffcc00",
                                          linewidths=0.8), autolim=False)
    if landmarks is not None:
        axes[3].scatter(landmarks[:, 0], landmarks[:, 1], s=22, facecolors="none", edgecolors="#00e5ff", linewidths=1)
    subtitle = f"{method}: {registration.result.timings.get('total', 0.0):.1f} s on {registration.result.device}"
    if registration.review is not None:
        subtitle += (f"; landmark TRE {registration.review.before['mean']:.2f} -> "
                     f"{registration.review.after['mean']:.2f} mm (mean)")
    fig.suptitle(subtitle, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _landmark_pixels(view: SliceView, fixed_landmarks) -> Optional[np.ndarray]:
    """Pixel positions of the fixed landmarks within 1.5 slices of the view."""
    if fixed_landmarks is None:
        return None
    points = np.zeros((fixed_landmarks.GetNumberOfControlPoints(), 3))
    for i in range(len(points)):
        fixed_landmarks.GetNthControlPointPositionWorld(i, points[i])
    pixels = view.to_pixels(points)
    return pixels[np.abs(pixels[:, 2]) <= 1.5, :2]
