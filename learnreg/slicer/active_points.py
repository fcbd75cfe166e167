"""Where a method measured displacements, as scene nodes: the points as a point list, the displacements as arrows.

CNNRegress predicts displacements at its active points (:attr:`learnreg.registration.StepRecord.points`,
one set per iteration, LPS). :func:`add_active_point_nodes` adds

- one locked point list of the points (labels hidden, each point's description listing its predicted
  displacement per iteration, LPS mm), and
- per iteration a model node of arrows from each point along its predicted (pull) displacement, drawn in
  the 3D view and as intersections in the slice views. Arrows are ``scale`` times the displacement's
  length (the node's name says the factor), chosen like the transform glyphs: long predictions about
  0.8 of the points' mean spacing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from learnreg.landmarks import Landmarks
from learnreg.registration import RegistrationResult
from learnreg.slicer._mrml import vtk
from learnreg.slicer.markups import add_markups_node
from learnreg.slicer.volumes import RAS_LPS


@dataclass
class ActivePointNodes:
    """The point list and one arrow model per step with points; ``scale``: arrow length per mm."""

    points: object
    arrows: list = field(default_factory=list)
    scale: float = 1.0


def arrow_scale(points_lps: np.ndarray, vectors_lps: np.ndarray) -> float:
    """Arrow length per mm of displacement: the 95th-percentile prediction drawn 0.8 mean point spacings long,
    between 1 and 20."""
    extent = np.ptp(points_lps, axis=0)
    extent = extent[extent > 0]
    volume = float(np.prod(extent)) if extent.size else 1.0
    spacing = (volume / max(len(points_lps), 1)) ** (1.0 / max(extent.size, 1))
    long = float(np.percentile(np.linalg.norm(vectors_lps, axis=1), 95)) if len(vectors_lps) else 0.0
    return float(np.clip(0.8 * spacing / long, 1.0, 20.0)) if long > 1e-6 else 1.0


def arrow_polydata(points_lps: np.ndarray, vectors_lps: np.ndarray, scale: float):
    """Arrows (``vtkPolyData``) from each point (converted to RAS) along ``scale`` x its vector."""
    flip = RAS_LPS[:3, :3]
    source = vtk.vtkPolyData()
    vtk_points = vtk.vtkPoints()
    vectors = vtk.vtkDoubleArray()
    vectors.SetNumberOfComponents(3)
    vectors.SetName("displacement")
    for point, vector in zip(points_lps, vectors_lps):
        vtk_points.InsertNextPoint(*(flip @ point))
        vectors.InsertNextTuple3(*(flip @ vector))
    source.SetPoints(vtk_points)
    source.GetPointData().SetVectors(vectors)
    arrow = vtk.vtkArrowSource()
    arrow.SetTipLength(0.35)
    arrow.SetTipRadius(0.12)
    arrow.SetShaftRadius(0.04)
    glyphs = vtk.vtkGlyph3D()
    glyphs.SetInputData(source)
    glyphs.SetSourceConnection(arrow.GetOutputPort())
    glyphs.SetVectorModeToUseVector()
    glyphs.SetScaleModeToScaleByVector()
    glyphs.SetScaleFactor(scale)
    glyphs.OrientOn()
    glyphs.Update()
    output = vtk.vtkPolyData()
    output.DeepCopy(glyphs.GetOutput())
    return output


def add_active_point_nodes(scene, result: RegistrationResult, name: str):
    """The nodes described in the module docstring, or ``None`` when no step has points."""
    steps = [s for s in result.steps if s.points is not None and s.point_displacements is not None]
    if not steps:
        return None
    points = steps[0].points
    scale = arrow_scale(points, np.concatenate([s.point_displacements for s in steps]))
    descriptions = ["; ".join(f"iteration {s.index + 1}: ({', '.join(f'{v:.2f}' for v in s.point_displacements[n])}) "
                              f"LPS mm, |d| = {np.linalg.norm(s.point_displacements[n]):.2f} mm" for s in steps)
                    for n in range(len(points))]
    labels = tuple(f"p{n + 1}" for n in range(len(points)))
    point_list = add_markups_node(scene, Landmarks.from_points(points, labels), f"{name} active points", descriptions)
    display = point_list.GetDisplayNode()
    display.SetPointLabelsVisibility(False)
    display.SetGlyphScale(1.0)
    display.SetSelectedColor(1.0, 0.85, 0.1)
    nodes = ActivePointNodes(point_list, scale=scale)
    for step in steps:
        model = scene.AddNewNodeByClass("vtkMRMLModelNode", scene.GenerateUniqueName(
            f"{name} predictions, iteration {step.index + 1} (arrows x{scale:.1f})"))
        model.SetAndObservePolyData(arrow_polydata(step.points, step.point_displacements, scale))
        model.CreateDefaultDisplayNodes()
        model_display = model.GetDisplayNode()
        model_display.SetColor(*((1.0, 0.55, 0.0) if step.index == 0 else (0.2, 0.8, 1.0)))
        model_display.SetVisibility2D(True)
        model_display.SetSliceIntersectionThickness(2)
        model.SetAttribute("LearnReg.arrow_scale", f"{scale:.4g}")
        nodes.arrows.append(model)
    return nodes
