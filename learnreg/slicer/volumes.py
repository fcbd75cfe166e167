"""Volume nodes <-> learnreg images, with exact geometry (Slicer is RAS, learnreg is LPS).

A volume node keeps its geometry in ``IJKToRAS`` (its vtkImageData has origin 0 and spacing 1);
``IJKToRAS = diag(-1, -1, 1, 1) @ IndexToLPS``. Voxel arrays are ``(k, j, i)`` on both sides, and a 2D
image is a single-slice volume on both sides. A volume under a linear parent transform is read where it
is shown in the scene (its world geometry); one under a non-linear transform must be hardened first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from learnreg.errors import InputError
from learnreg.image import Grid, Image
from learnreg.slicer._mrml import slicer, vtk

#: RAS <-> LPS flip of homogeneous coordinates (its own inverse)
RAS_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def vtk_matrix_to_array(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def array_to_vtk_matrix(array: np.ndarray):
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def ijk_to_ras(node) -> np.ndarray:
    """The node's own 4x4 ``IJKToRAS`` matrix (ignoring parent transforms)."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return vtk_matrix_to_array(matrix)


def grid_from_ijk_to_ras(matrix: np.ndarray, size, what: str = "the volume") -> Grid:
    """The LPS grid of a volume with this ``IJKToRAS`` matrix and size ``(i, j, k)``."""
    index_to_lps = RAS_LPS @ matrix
    columns = index_to_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"{what} has a zero voxel spacing; fix its geometry in the Volumes module")
    direction = columns / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(
            f"{what} has a sheared or non-uniformly scaled geometry (a linear transform with shear or scaling "
            "above it?); harden the transform and resample the volume onto an orthogonal grid first")
    return Grid.make(size, spacing, index_to_lps[:3, 3], direction)


def grid_to_ijk_to_ras(grid: Grid) -> np.ndarray:
    return RAS_LPS @ grid.index_to_physical_matrix


@dataclass(frozen=True)
class VolumeInput:
    """A volume node read for registration: its image in world space, and what was done to get it."""

    image: Image
    parent_transform: Optional[str] = None  #: name of the linear parent transform accounted for, if any


def _world_matrix(node, role: str) -> tuple[np.ndarray, Optional[str]]:
    """The node's ``IJKToRAS`` in world space, folding in a linear parent transform."""
    matrix = ijk_to_ras(node)
    parent = node.GetParentTransformNode()
    if parent is None:
        return matrix, None
    if not parent.IsTransformToWorldLinear():
        raise InputError(
            f"the {role} volume '{node.GetName()}' is under the non-linear transform '{parent.GetName()}'; "
            "harden it first (Data module: right-click the volume, 'Harden transform') or remove the transform")
    to_world = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(to_world)
    return vtk_matrix_to_array(to_world) @ matrix, parent.GetName()


def read_volume_node(node, role: str, labels: bool = False) -> VolumeInput:
    """Read a scalar volume node as a learnreg image in world space (LPS), checking that it can be registered
    (``labels``: a label map, for evaluation; label map nodes are accepted then).

    Raises:
        InputError: no node, no image data, a label map (unless ``labels``) or vector volume, a non-linear
            parent transform, or a sheared geometry.
    """
    if node is None:
        raise InputError(f"choose a {role} volume")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(f"the {role} volume '{node.GetName()}' is a {node.GetClassName()}; choose a scalar volume")
    if node.IsA("vtkMRMLLabelMapVolumeNode") and not labels:
        raise InputError(
            f"the {role} volume '{node.GetName()}' is a label map; registration needs an intensity image (convert it "
            "in the Volumes module with 'Convert to scalar volume' if it really is one)")
    image_data = node.GetImageData()
    if image_data is None or image_data.GetNumberOfPoints() == 0:
        raise InputError(f"the {role} volume '{node.GetName()}' has no image data; load or create its voxels first")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(
            f"the {role} volume '{node.GetName()}' has {image_data.GetNumberOfScalarComponents()} components per "
            "voxel; convert it to a single-component (grey-value) volume")
    matrix, parent = _world_matrix(node, role)
    size = image_data.GetDimensions()
    grid = grid_from_ijk_to_ras(matrix, size, f"the {role} volume '{node.GetName()}'")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)  # never a view into the input node
    return VolumeInput(Image(array, grid), parent)


def image_from_volume_node(node, role: str = "volume") -> Image:
    """The node's voxels and world geometry as a learnreg :class:`Image` (LPS)."""
    return read_volume_node(node, role).image


def update_volume_node(node, image: Image) -> None:
    """Replace ``node``'s voxels and geometry with ``image`` (LPS grid -> RAS node)."""
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(image.array))
    node.SetIJKToRASMatrix(array_to_vtk_matrix(grid_to_ijk_to_ras(image.grid)))


def add_volume_node(scene, image: Image, name: str, display_like=None):
    """A new scalar volume node holding ``image``; window/level copied from ``display_like`` when given."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    update_volume_node(node, image)
    node.CreateDefaultDisplayNodes()
    if display_like is not None and display_like.GetDisplayNode() is not None:
        source, target = display_like.GetDisplayNode(), node.GetDisplayNode()
        target.SetAutoWindowLevel(False)
        target.SetWindowLevel(source.GetWindow(), source.GetLevel())
        target.SetAndObserveColorNodeID(source.GetColorNodeID())
    return node
