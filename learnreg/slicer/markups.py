"""Point list (markups) nodes <-> learnreg landmarks.

Markups nodes keep control points in RAS world coordinates whatever coordinate system their file
used (``.mrk.json`` says LPS or RAS; Slicer converts on load), so reading world positions and flipping
to LPS gives learnreg landmarks. Points whose position is not defined yet are skipped.
"""

from __future__ import annotations

from learnreg.errors import InputError
from learnreg.landmarks import Landmarks

def landmarks_from_markups(node, role: str = "landmarks") -> Landmarks:
    """The node's defined control points as LPS landmarks (world positions, so parent transforms count)."""
    if node is None:
        raise InputError(f"choose a point list for the {role}")
    points, labels = [], []
    for index in range(node.GetNumberOfControlPoints()):
        if not node.GetNthControlPointPositionVisibility(index):
            continue  # a point placed but not yet positioned
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(index, position)
        points.append(position)
        labels.append(node.GetNthControlPointLabel(index) or str(index + 1))
    if not points:
        raise InputError(f"the {role} point list '{node.GetName()}' has no placed points")
    return Landmarks.from_points(points, labels, "RAS")


def add_markups_node(scene, landmarks: Landmarks, name: str, descriptions=None, selected=None):
    """A new point list holding ``landmarks`` (LPS -> RAS), with optional per-point descriptions and selection."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    for index, (point, label) in enumerate(zip(landmarks.in_system("RAS"), landmarks.labels)):
        node.AddControlPoint(*point, label)
        if descriptions is not None:
            node.SetNthControlPointDescription(index, descriptions[index])
        if selected is not None:
            node.SetNthControlPointSelected(index, bool(selected[index]))
    node.SetLocked(True)
    return node

