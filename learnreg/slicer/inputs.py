"""What a registration reads from a Slicer scene, checked before any work starts.

:func:`read_inputs` turns the fixed and moving volume nodes (and optional landmark point lists and label
maps) into learnreg images and landmark pairs, and refuses every mistake a user can make with one message
naming the fix: the same node twice, a volume without image data, a label map or vector volume, a volume
under a non-linear transform, landmark lists of different counts or labels, an output node that is one of
the inputs. It imports neither torch nor the registrars, so a panel can call it on the GUI thread at once;
inputs that come from files (the command line) are made with :meth:`SceneInputs.from_images`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from learnreg.errors import InputError
from learnreg.image import Image
from learnreg.landmarks import LandmarkPairs, pair_landmarks
from learnreg.slicer.markups import landmarks_from_markups
from learnreg.slicer.volumes import read_volume_node


@dataclass
class SceneInputs:
    """The images a registration runs on, and where they came from.

    ``fixed_node`` and ``moving_node`` are the volume nodes read (None when the images came from files:
    :func:`~learnreg.slicer.run.add_registration_to_scene` then adds them as nodes named ``names``);
    ``fixed_landmarks_node`` and ``moving_landmarks_node`` are the point lists (glyphs are drawn at the
    fixed points); ``notes`` are things
    the user should know about the inputs (e.g. a linear transform above a volume).
    """

    fixed: Image
    moving: Image
    landmarks: Optional[LandmarkPairs] = None
    labels: Optional[tuple] = None
    names: tuple = ("fixed", "moving")
    fixed_node: Any = None
    moving_node: Any = None
    fixed_landmarks_node: Any = None
    moving_landmarks_node: Any = None
    notes: list = field(default_factory=list)

    @classmethod
    def from_images(cls, fixed: Image, moving: Image, landmarks: Optional[LandmarkPairs] = None,
                    names: tuple = ("fixed", "moving")) -> "SceneInputs":
        """Inputs read from files: no nodes yet."""
        return cls(fixed, moving, landmarks, names=tuple(names))


def check_output(node, expected_class: str, role: str, inputs: tuple) -> None:
    """Refuse an output node that is one of the inputs or of the wrong class (None: a new node is made)."""
    if node is None:
        return
    if any(node is n for n in inputs if n is not None):
        raise InputError(f"the output {role} '{node.GetName()}' is one of the inputs; choose 'Create new' or another node")
    if not node.IsA(expected_class):
        raise InputError(f"the output {role} '{node.GetName()}' is a {node.GetClassName()}, not a {expected_class}")


def _read_landmarks(fixed_markups, moving_markups, fixed: Image, moving: Image) -> Optional[LandmarkPairs]:
    if fixed_markups is None and moving_markups is None:
        return None
    if fixed_markups is None or moving_markups is None:
        raise InputError("choose both fixed and moving landmarks, or neither")
    if fixed_markups is moving_markups:
        raise InputError(f"fixed and moving landmarks are the same point list '{fixed_markups.GetName()}'")
    return pair_landmarks(landmarks_from_markups(fixed_markups, "fixed landmarks"),
                          landmarks_from_markups(moving_markups, "moving landmarks"), fixed, moving)


def _read_labels(fixed_labels, moving_labels, fixed: Image):
    if fixed_labels is None and moving_labels is None:
        return None
    if fixed_labels is None or moving_labels is None:
        raise InputError("choose both fixed and moving label maps (structures to evaluate), or neither")
    labels = (read_volume_node(fixed_labels, "fixed label map", labels=True).image,
              read_volume_node(moving_labels, "moving label map", labels=True).image)
    if labels[0].grid.size != fixed.grid.size:
        raise InputError(f"the fixed label map '{fixed_labels.GetName()}' has size {labels[0].grid.size} but the fixed "
                         f"volume has {fixed.grid.size}; choose the label map made on the fixed volume")
    return labels


def _notes(fixed_node, moving_node, fixed_parent: Optional[str], moving_parent: Optional[str]) -> list:
    notes = []
    if fixed_parent:
        notes.append(f"the fixed volume '{fixed_node.GetName()}' is under the linear transform '{fixed_parent}'; "
                     "the result lies on the fixed grid where that transform places it")
    if moving_parent:
        notes.append(f"the moving volume '{moving_node.GetName()}' is under the linear transform '{moving_parent}'; "
                     f"the registration started from that position: to apply the result to '{moving_node.GetName()}', "
                     f"put '{moving_parent}' under the new transform")
    return notes


def read_inputs(fixed_node, moving_node, *, fixed_landmarks=None, moving_landmarks=None, fixed_labels=None,
                moving_labels=None, warped_volume=None, transform=None) -> SceneInputs:
    """Read and check a registration's input nodes (and check the chosen output nodes).

    Raises:
        InputError: a problem with the inputs, named with its fix.
    """
    if fixed_node is None or moving_node is None:
        raise InputError("choose both a fixed and a moving volume")
    if fixed_node is moving_node:
        raise InputError(f"the fixed and moving volume are the same node '{fixed_node.GetName()}'; choose two volumes")
    nodes = (fixed_node, moving_node, fixed_landmarks, moving_landmarks, fixed_labels, moving_labels)
    check_output(warped_volume, "vtkMRMLScalarVolumeNode", "volume", nodes)
    check_output(transform, "vtkMRMLGridTransformNode", "transform", nodes)
    fixed_in = read_volume_node(fixed_node, "fixed")
    moving_in = read_volume_node(moving_node, "moving")
    return SceneInputs(
        fixed_in.image, moving_in.image,
        landmarks=_read_landmarks(fixed_landmarks, moving_landmarks, fixed_in.image, moving_in.image),
        labels=_read_labels(fixed_labels, moving_labels, fixed_in.image),
        names=(fixed_node.GetName(), moving_node.GetName()),
        fixed_node=fixed_node, moving_node=moving_node, fixed_landmarks_node=fixed_landmarks,
        moving_landmarks_node=moving_landmarks,
        notes=_notes(fixed_node, moving_node, fixed_in.parent_transform, moving_in.parent_transform))
