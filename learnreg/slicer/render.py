"""Pictures of a registration as a Slicer user sees it, rendered without a screen.

Slices come from Slicer's own slice logic (``vtkMRMLSliceLogic`` reslices a volume node with its display
node's window/level, no OpenGL needed), in the fixed volume's native plane through its centre. The
displacement arrows are the glyphs Slicer draws in a slice view (``vtkSlicerTransformLogic.
GetVisualization2d`` with the transform's display settings), mapped into the slice's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from vtk.util.numpy_support import vtk_to_numpy

from learnreg.slicer._mrml import slicer, vtk
from learnreg.slicer.markups import landmarks_from_markups
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


@dataclass
class RegistrationViews:
    """One registration seen in the fixed volume's centre slice: grey slices in [0, 1] (top row first),
    the displacement glyphs as pixel polygons, and the fixed landmarks near the slice (pixels)."""

    fixed: np.ndarray
    moving: np.ndarray
    warped: np.ndarray
    glyphs: list
    landmarks: Optional[np.ndarray]

    def panels(self) -> list[tuple[np.ndarray, str]]:
        return [
            (colour_overlay(self.fixed, self.moving), "before: fixed (magenta) / moving (green)"),
            (colour_overlay(self.fixed, self.warped), "after: fixed (magenta) / warped (green)"),
            (checkerboard(self.fixed, self.warped), "checkerboard fixed / warped"),
            (self.warped, "warped + displacement glyphs"),
        ]


def registration_views(scene, fixed_node, moving_node, warped_node, transform_node,
                       fixed_landmarks=None) -> RegistrationViews:
    """Render the slices and glyphs of one registration through a temporary slice view."""
    view = SliceView(scene, fixed_node)
    try:
        return RegistrationViews(view.grey(fixed_node), view.grey(moving_node), view.grey(warped_node),
                                 view.glyph_polygons(transform_node.GetDisplayNode()),
                                 _landmark_pixels(view, fixed_landmarks))
    finally:
        view.close()


def _draw(ax, picture: np.ndarray, title: str, views: Optional[RegistrationViews] = None) -> None:
    """One panel; with ``views``, the glyphs and landmarks on top."""
    from matplotlib.collections import PolyCollection

    ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    ax.set_xlim(-0.5, picture.shape[1] - 0.5)
    ax.set_ylim(picture.shape[0] - 0.5, -0.5)
    if views is not None:
        ax.add_collection(PolyCollection(views.glyphs, closed=False, facecolors="none", edgecolors="#ffcc00",
                                         linewidths=0.8), autolim=False)
        if views.landmarks is not None:
            ax.scatter(views.landmarks[:, 0], views.landmarks[:, 1], s=22, facecolors="none", edgecolors="#00e5ff",
                       linewidths=1)


def save_views_png(path, rows: list[tuple[str, RegistrationViews]], title: str, columns=(0, 1, 2, 3),
                   dpi: int = 90) -> Path:
    """A PNG with one row of panels per registration (``columns`` picks from before, after, checkerboard,
    glyphs), each row labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(columns), figsize=(4 * len(columns), 4.1 * len(rows) + 0.4),
                             squeeze=False)
    for row, (axes_row, (label, views)) in enumerate(zip(axes, rows)):
        panels = views.panels()
        for ax, column in zip(axes_row, columns):
            picture, panel_title = panels[column]
            _draw(ax, picture, panel_title if row == 0 else "", views if column == 3 else None)
        if len(rows) > 1:
            axes_row[0].text(-0.03, 0.5, label, rotation=90, transform=axes_row[0].transAxes, ha="right",
                             va="center", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0.02 if len(rows) > 1 else 0.0, 0.0, 1.0, 0.97 if len(rows) > 1 else 0.95))
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_registration_views(path, registration) -> Path:
    """Write a PNG of four slice views of a :class:`~learnreg.slicer.run.SceneRegistration`: before and after
    overlays, a checkerboard, and the warped volume with the displacement glyphs (and the fixed landmarks
    near the slice as circles)."""
    inputs = registration.inputs
    views = registration_views(inputs.fixed_node.GetScene(), inputs.fixed_node, inputs.moving_node,
                               registration.warped_volume, registration.transform, inputs.fixed_landmarks_node)
    result = registration.result
    title = f"{result.method}: {result.timings.get('total', 0.0):.1f} s on {result.device}"
    if registration.review is not None:
        title += f"; landmark TRE {registration.review.before['mean']:.2f} -> {registration.review.after['mean']:.2f} mm (mean)"
    return save_views_png(path, [(result.method, views)], title)


def _landmark_pixels(view: SliceView, fixed_landmarks) -> Optional[np.ndarray]:
    """Pixel positions of the fixed landmarks within 1.5 slices of the view."""
    if fixed_landmarks is None:
        return None
    pixels = view.to_pixels(landmarks_from_markups(fixed_landmarks, "fixed landmarks").in_system("RAS"))
    return pixels[np.abs(pixels[:, 2]) <= 1.5, :2]
