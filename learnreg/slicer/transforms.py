"""Displacement fields <-> grid transform nodes, and how a transform is drawn (glyphs).

A learnreg field is a pull field (fixed point -> moving point, LPS mm) on the fixed grid. In Slicer
that is a ``vtkOrientedGridTransform`` stored as the node's **FromParent** transform (the resampling
direction): put the moving volume under the node and it is shown aligned with the fixed one. The
grid holds RAS displacements on the fixed volume's geometry and interpolates cubically, as grids read
back from ITK files do, so a saved and reloaded scene maps points identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learnreg.errors import InputError
from learnreg.field import DisplacementField
from learnreg.slicer._mrml import slicer, vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from learnreg.slicer.volumes import RAS_LPS, array_to_vtk_matrix, grid_from_ijk_to_ras

_FLIP = RAS_LPS[:3, :3]


def grid_transform_from_field(field: DisplacementField):
    """A cubic ``vtkOrientedGridTransform`` holding ``field`` (converted to RAS) on its grid."""
    grid = field.grid
    vectors_ras = field.vectors @ _FLIP  # (k, j, i, 3), RAS mm
    image = vtk.vtkImageData()
    image.SetDimensions(*grid.size)
    image.SetOrigin(*(_FLIP @ np.asarray(grid.origin)))
    image.SetSpacing(*grid.spacing)
    scalars = numpy_to_vtk(
        np.ascontiguousarray(vectors_ras.reshape(-1, 3), dtype=np.float64), deep=True)
    scalars.SetNumberOfComponents(3)
    image.GetPointData().SetScalars(scalars)
    direction = np.eye(4)
    direction[:3, :3] = _FLIP @ grid.direction_matrix
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(image)
    transform.SetGridDirectionMatrix(array_to_vtk_matrix(direction))
    transform.SetInterpolationModeToCubic()
    return transform


def field_from_grid_transform(transform) -> DisplacementField:
    """The field a ``vtkOrientedGridTransform`` stores (RAS -> LPS) on the transform's own grid."""
    image = transform.GetDisplacementGrid()
    if image is None:
        raise InputError("the grid transform holds no displacement grid")
    direction = vtk.vtkMatrix4x4()
    if transform.GetGridDirectionMatrix() is not None:
        direction.DeepCopy(transform.GetGridDirectionMatrix())
    ijk_to_ras = np.eye(4)
    d = np.array([[direction.GetElement(r, c) for c in range(3)] for r in range(3)])
    ijk_to_ras[:3, :3] = d @ np.diag(image.GetSpacing())
    ijk_to_ras[:3, 3] = image.GetOrigin()
    grid = grid_from_ijk_to_ras(ijk_to_ras, image.GetDimensions(), "the displacement grid")
    values = vtk_to_numpy(image.GetPointData().GetScalars())
    vectors = values.reshape(*grid.shape, 3).astype(np.float64) @ _FLIP
    return DisplacementField(vectors, grid)


def set_field_on_transform_node(node, field: DisplacementField) -> None:
    """Store ``field`` in ``node`` as its FromParent (resampling direction) grid transform."""
    node.SetAndObserveTransformFromParent(grid_transform_from_field(field))


def field_from_transform_node(node) -> DisplacementField:
    """The pull field (LPS mm) a grid transform node stores as its FromParent transform."""
    transform = node.GetTransformFromParent()
    if transform is None or not transform.IsA("vtkOrientedGridTransform") or transform.GetInverseFlag():
        raise InputError(f"transform '{node.GetName()}' does not hold a displacement grid in the resampling direction")
    transform.Update()
    return field_from_grid_transform(transform)


# ----------------------------------------------------------------- glyph display
@dataclass(frozen=True)
class GlyphSettings:
    """How displacement glyphs (arrows) are laid out: spacing between arrows (mm) and length scale (%)."""

    spacing_mm: float
    scale_percent: float


def glyph_settings(field: DisplacementField, arrows_across: int = 24) -> GlyphSettings:
    """Arrows about ``arrows_across`` to the longest image side (at least 2 voxels apart), and long
    displacements (95th percentile) drawn about 0.8 arrow spacings long."""
    grid = field.grid
    extent = float(np.max(grid.extent_mm[: grid.ndim]))
    spacing = max(extent / arrows_across, 2 * float(min(grid.axis_spacing)))
    long_displacement = float(np.percentile(field.magnitude(), 95))
    scale = 100.0 if long_displacement < 1e-6 else 100.0 * 0.8 * spacing / long_displacement
    return GlyphSettings(round(spacing, 2), round(float(np.clip(scale, 10.0, 2000.0)), 1))


def show_as_glyphs(display_node, settings: GlyphSettings, region_node=None, points_node=None) -> None:
    """Draw the transform as arrows in slice and 3D views, over ``region_node`` or at ``points_node``'s points."""
    display_node.SetVisualizationMode(slicer.vtkMRMLTransformDisplayNode.VIS_MODE_GLYPH)
    display_node.SetGlyphType(slicer.vtkMRMLTransformDisplayNode.GLYPH_TYPE_ARROW)
    display_node.SetGlyphSpacingMm(settings.spacing_mm)
    display_node.SetGlyphScalePercent(settings.scale_percent)
    if region_node is not None:
        display_node.SetAndObserveRegionNode(region_node)
    if points_node is not None:
        display_node.SetAndObserveGlyphPointsNode(points_node)
    display_node.SetVisibility(True)
    display_node.SetVisibility2D(True)
    display_node.SetVisibility3D(True)


def show_field(node, field: DisplacementField, region_node=None) -> None:
    """Store ``field`` in the grid transform ``node`` (FromParent) and draw it as glyphs over ``region_node``."""
    set_field_on_transform_node(node, field)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    show_as_glyphs(node.GetDisplayNode(), glyph_settings(field), region_node)


def add_transform_node(scene, field: DisplacementField, name: str, region_node=None):
    """A new grid transform node holding ``field`` (FromParent), shown as glyphs over ``region_node``."""
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", scene.GenerateUniqueName(name))
    show_field(node, field, region_node)
    return node


def add_linear_transform_node(scene, matrix_lps: np.ndarray, field: DisplacementField, name: str, region_node=None):
    """A new linear transform node holding the pull map ``x_moving = M x_fixed`` (``matrix_lps``, 4 x 4, LPS mm)
    as its FromParent matrix (in RAS), drawn as glyphs of ``field`` (the same map as a field) over
    ``region_node``."""
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", scene.GenerateUniqueName(name))
    node.SetMatrixTransformFromParent(array_to_vtk_matrix(RAS_LPS @ np.asarray(matrix_lps) @ RAS_LPS))
    node.CreateDefaultDisplayNodes()
    show_as_glyphs(node.GetDisplayNode(), glyph_settings(field), region_node)
    return node
