"""One call from two volume nodes to a registration's scene nodes: what the modules and the command line run.

``run_registration`` reads the fixed and moving volumes (and optional landmark point lists) from the
scene, checks everything a user can get wrong before any work starts, registers, and only then adds
the result to the scene:

- the warped moving volume on the fixed grid (a new node unless an output node is given);
- a grid transform node holding the pull field as FromParent (resampling direction), drawn as glyphs
  over the fixed volume: put the moving volume under it and it lines up with the fixed one (a linear
  transform node instead for an affine result, unless an output grid transform node is given);
- for methods that work in steps, sequences and a browser to scrub through the steps;
- with landmarks, the TRE review (table, chart, mapped landmarks, glyphs at the landmarks);
- with label maps of both volumes, the structure review (Dice and surface distances per label, per stage);
- images the method exposes (ISTN: its representations of both volumes) as volumes;
- points where the method measured displacements (CNNRegress: its active points) as a point list, with
  their displacements as arrows per step.

Input nodes are never changed. If the registration fails or is cancelled, or building a node fails,
every node this call added is removed again, so the scene holds no half-made result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from learnreg.errors import InputError
from learnreg.image import Image
from learnreg.landmarks import LandmarkPairs, pair_landmarks
from learnreg.progress import CancelToken, ProgressCallback
from learnreg.registration import Registrar, RegistrationResult, create_registrar
from learnreg.slicer.active_points import ActivePointNodes, add_active_point_nodes
from learnreg.slicer.markups import landmarks_from_markups
from learnreg.slicer.review import TREReview, add_tre_review
from learnreg.slicer.steps import StepSequences, add_step_sequences
from learnreg.slicer.structures import StructureReview, add_structure_review
from learnreg.slicer.transforms import add_linear_transform_node, add_transform_node, show_field
from learnreg.slicer.volumes import add_volume_node, read_volume_node, update_volume_node

#: node attribute prefix for what produced a result node
ATTRIBUTE_PREFIX = "LearnReg."


@dataclass
class SceneRegistration:
    """A registration's result and the scene nodes made from it."""

    result: RegistrationResult
    warped_volume: Any
    transform: Any
    steps: Optional[StepSequences] = None
    review: Optional[TREReview] = None
    notes: list[str] = field(default_factory=list)
    structures: Optional[StructureReview] = None
    images: list = field(default_factory=list)
    active_points: Optional[ActivePointNodes] = None


def _check_output(node, expected_class: str, role: str, inputs: tuple) -> None:
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


def _read_labels(fixed_labels, moving_labels):
    if fixed_labels is None and moving_labels is None:
        return None
    if fixed_labels is None or moving_labels is None:
        raise InputError("choose both fixed and moving label maps (structures to evaluate), or neither")
    return (read_volume_node(fixed_labels, "fixed label map", labels=True).image,
            read_volume_node(moving_labels, "moving label map", labels=True).image)


def _notes(fixed_node, moving_node, fixed_parent: Optional[str], moving_parent: Optional[str]) -> list[str]:
    notes = []
    if fixed_parent:
        notes.append(f"the fixed volume '{fixed_node.GetName()}' is under the linear transform '{fixed_parent}'; "
                     "the result lies on the fixed grid where that transform places it")
    if moving_parent:
        notes.append(f"the moving volume '{moving_node.GetName()}' is under the linear transform '{moving_parent}'; "
                     f"the registration started from that position: to apply the result to '{moving_node.GetName()}', "
                     f"put '{moving_parent}' under the new transform")
    return notes


def _tag(node, result: RegistrationResult) -> None:
    node.SetAttribute(ATTRIBUTE_PREFIX + "method", result.method)
    node.SetAttribute(ATTRIBUTE_PREFIX + "options", json.dumps(result.options, default=str))
    node.SetAttribute(ATTRIBUTE_PREFIX + "device", result.device)
    node.SetAttribute(ATTRIBUTE_PREFIX + "seconds", f"{result.timings.get('total', 0.0):.3f}")


def _node_ids(scene) -> set:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def run_registration(scene, fixed_node, moving_node, method: Union[str, Registrar] = "bspline",
                     options: Optional[dict] = None, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None, *, device: str = "auto", fixed_landmarks=None,
                     moving_landmarks=None, warped_volume=None, transform=None, fixed_labels=None,
                     moving_labels=None) -> SceneRegistration:
    """Register ``moving_node`` to ``fixed_node`` and add the result to ``scene``.

    Args:
        scene: the ``vtkMRMLScene`` holding the nodes (``slicer.mrmlScene`` inside Slicer).
        fixed_node, moving_node: scalar volume nodes (2D single-slice or 3D; any geometry).
        method: a method name (``learnreg methods``) or a ready :class:`Registrar`.
        options: method options, name -> value (strings are parsed), ignored for a ready registrar.
        progress: called with ``(fraction, message)``; cancel: a :class:`CancelToken` checked throughout.
        device: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``), ``mps``.
        fixed_landmarks, moving_landmarks: point list nodes for the TRE review (both or neither).
        warped_volume, transform: existing nodes to overwrite with the result; new nodes by default.
        fixed_labels, moving_labels: label map volumes of the structures to evaluate (both or neither; the
            fixed one on the fixed volume's grid).

    Raises:
        InputError: a problem with the inputs, named with its fix. ResourceError: not enough memory.
        RegistrationCancelled: cancelled; the scene is as it was.
    """
    if fixed_node is None or moving_node is None:
        raise InputError("choose both a fixed and a moving volume")
    if fixed_node is moving_node:
        raise InputError(f"the fixed and moving volume are the same node '{fixed_node.GetName()}'; choose two volumes")
    inputs = (fixed_node, moving_node, fixed_landmarks, moving_landmarks, fixed_labels, moving_labels)
    _check_output(warped_volume, "vtkMRMLScalarVolumeNode", "volume", inputs)
    _check_output(transform, "vtkMRMLGridTransformNode", "transform", inputs)
    registrar = method if isinstance(method, Registrar) else create_registrar(method, options)
    fixed_in = read_volume_node(fixed_node, "fixed")
    moving_in = read_volume_node(moving_node, "moving")
    landmarks = _read_landmarks(fixed_landmarks, moving_landmarks, fixed_in.image, moving_in.image)
    labels = _read_labels(fixed_labels, moving_labels)
    if labels is not None and labels[0].grid.size != fixed_in.image.grid.size:
        raise InputError(f"the fixed label map '{fixed_labels.GetName()}' has size {labels[0].grid.size} but the fixed "
                         f"volume has {fixed_in.image.grid.size}; choose the label map made on the fixed volume")

    result = registrar.register(fixed_in.image, moving_in.image, device=device, progress=progress, cancel=cancel)

    before = _node_ids(scene)
    try:
        name = result.method
        if warped_volume is None:
            warped_volume = add_volume_node(scene, result.warped, f"{moving_node.GetName()} warped ({name})",
                                            display_like=moving_node)
        else:
            update_volume_node(warped_volume, result.warped)
        if transform is None and result.affine_lps is not None:
            transform = add_linear_transform_node(scene, result.affine_lps, result.field, f"{name} transform",
                                                  region_node=fixed_node)
        elif transform is None:
            transform = add_transform_node(scene, result.field, f"{name} transform", region_node=fixed_node)
        else:
            show_field(transform, result.field, region_node=fixed_node)
        _tag(warped_volume, result)
        _tag(transform, result)
        steps = add_step_sequences(scene, result, moving_in.image, name)
        review = None
        if landmarks is not None:
            review = add_tre_review(scene, name, landmarks, result.field, transform, fixed_landmarks)
        structures = None if labels is None else add_structure_review(scene, name, *labels, result)
        images = [add_volume_node(scene, image, f"{name} {image_name}") for image_name, image in result.images.items()]
        active_points = add_active_point_nodes(scene, result, name)
    except BaseException:
        for node_id in _node_ids(scene) - before:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)
        raise
    return SceneRegistration(result, warped_volume, transform, steps, review,
                             _notes(fixed_node, moving_node, fixed_in.parent_transform, moving_in.parent_transform),
                             structures, images, active_points)
