"""Registration in a Slicer scene, in three parts: read the inputs, register, add the result to the scene.

- :func:`read_inputs` reads the fixed and moving volumes (and optional landmark point lists and label
  maps) from the scene and checks everything a user can get wrong before any work starts (the panel's
  job, on the GUI thread);
- the registrar registers the images (anywhere: the panel runs it in a worker thread);
- :func:`add_registration_to_scene` adds one registration result to a scene. The command line, the
  panels and the benchmarks all build their scenes with it; inputs that came from files rather than
  nodes are added as nodes first.

:func:`run_registration` does all three in one call. The nodes added for a result:

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

Input nodes are never changed. If building fails or is cancelled, every node it added is removed again,
so the scene holds no half-made result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from learnreg.progress import CancelToken, Progress, ProgressCallback
from learnreg.registration import Registrar, RegistrationResult, create_registrar
from learnreg.slicer.active_points import ActivePointNodes, add_active_point_nodes
from learnreg.slicer.inputs import SceneInputs, read_inputs
from learnreg.slicer.markups import add_markups_node
from learnreg.slicer.review import TREReview, add_tre_review
from learnreg.slicer.steps import StepSequences, add_step_sequences
from learnreg.slicer.structures import StructureReview, add_structure_review
from learnreg.slicer.transforms import add_linear_transform_node, add_transform_node, show_field
from learnreg.slicer.volumes import add_volume_node, update_volume_node

#: node attribute prefix for what produced a result node
ATTRIBUTE_PREFIX = "LearnReg."


@dataclass
class SceneRegistration:
    """A registration's result and the scene nodes made from it (``inputs``: the nodes it was read from,
    or added for it)."""

    result: RegistrationResult
    warped_volume: Any
    transform: Any
    steps: Optional[StepSequences] = None
    review: Optional[TREReview] = None
    notes: list[str] = field(default_factory=list)
    structures: Optional[StructureReview] = None
    images: list = field(default_factory=list)
    active_points: Optional[ActivePointNodes] = None
    inputs: Optional[SceneInputs] = None


def _tag(node, result: RegistrationResult) -> None:
    node.SetAttribute(ATTRIBUTE_PREFIX + "method", result.method)
    node.SetAttribute(ATTRIBUTE_PREFIX + "options", json.dumps(result.options, default=str))
    node.SetAttribute(ATTRIBUTE_PREFIX + "device", result.device)
    node.SetAttribute(ATTRIBUTE_PREFIX + "seconds", f"{result.timings.get('total', 0.0):.3f}")


class _AddedNodes:
    """Records every node added to a scene while it is open, so that a failed build removes exactly those.
    If the scene is closed meanwhile (a user closing it mid-run), they went with it and nothing is removed."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.ids: list = []
        self.closed = False
        self._tags = [scene.AddObserver(scene.NodeAddedEvent, self._added),
                      scene.AddObserver(scene.StartCloseEvent, self._closing)]

    def _added(self, caller, event) -> None:
        if not self.closed:
            self.ids.append(self.scene.GetNthNode(self.scene.GetNumberOfNodes() - 1).GetID())

    def _closing(self, caller, event) -> None:
        self.closed = True

    def close(self) -> None:
        for tag in self._tags:
            self.scene.RemoveObserver(tag)

    def remove_all(self) -> None:
        if self.closed:
            return
        for node_id in reversed(self.ids):
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)


def add_input_nodes(scene, inputs: SceneInputs) -> None:
    """Add volume (and point-list) nodes for inputs read from files (the command line, the benchmarks, the
    self-test), and record them in ``inputs``."""
    inputs.fixed_node = add_volume_node(scene, inputs.fixed, inputs.names[0])
    inputs.moving_node = add_volume_node(scene, inputs.moving, inputs.names[1])
    if inputs.landmarks is not None:
        fixed_points, moving_points = inputs.landmarks.as_landmarks()
        inputs.fixed_landmarks_node = add_markups_node(scene, fixed_points, f"{inputs.names[0]} landmarks")
        inputs.moving_landmarks_node = add_markups_node(scene, moving_points, f"{inputs.names[1]} landmarks")


def add_registration_to_scene(scene, inputs: SceneInputs, result: RegistrationResult, *, warped_volume=None,
                              transform=None, progress: Optional[ProgressCallback] = None,
                              cancel: Optional[CancelToken] = None) -> SceneRegistration:
    """Add a registration result to ``scene`` (the nodes listed in the module docstring).

    Inputs without nodes (:meth:`SceneInputs.from_images`) get volume and point-list nodes first.
    ``warped_volume`` and ``transform`` are existing nodes to overwrite; new nodes by default.
    ``progress`` is called after every part (and every step of a stepwise result); ``cancel`` is checked
    there. On failure or cancel every node added is removed again and the exception propagates
    (:class:`~learnreg.errors.RegistrationCancelled` for a cancel).
    """
    reporter = Progress(progress, cancel)
    added = _AddedNodes(scene)
    try:
        reporter.report(0.0, "adding the result to the scene")
        if inputs.fixed_node is None:
            add_input_nodes(scene, inputs)
        fixed_node, name = inputs.fixed_node, result.method
        if warped_volume is None:
            warped_volume = add_volume_node(scene, result.warped, f"{inputs.names[1]} warped ({name})",
                                            display_like=inputs.moving_node)
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
        reporter.report(0.2, "warped volume and transform added")
        steps = add_step_sequences(scene, result, inputs.moving, name, reporter.span(0.2, 0.8))
        review = None
        if inputs.landmarks is not None:
            review = add_tre_review(scene, name, inputs.landmarks, result.field, transform, inputs.fixed_landmarks_node,
                                    result.one_pass)
            reporter.report(0.85, "landmark review added")
        structures = None if inputs.labels is None else add_structure_review(scene, name, *inputs.labels, result)
        reporter.report(0.9, "structure review added" if structures is not None else "adding method images")
        images = [add_volume_node(scene, image, f"{name} {image_name}") for image_name, image in result.images.items()]
        active_points = add_active_point_nodes(scene, result, name)
        reporter.report(1.0, "scene ready")
    except BaseException:
        added.remove_all()
        raise
    finally:
        added.close()
    return SceneRegistration(result, warped_volume, transform, steps, review, list(inputs.notes) + result.notes,
                             structures, images,
                             active_points, inputs)


def run_registration(scene, fixed_node, moving_node, method: Union[str, Registrar] = "bspline",
                     options: Optional[dict] = None, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None, *, device: str = "auto", fixed_landmarks=None,
                     moving_landmarks=None, warped_volume=None, transform=None, fixed_labels=None,
                     moving_labels=None) -> SceneRegistration:
    """Register ``moving_node`` to ``fixed_node`` and add the result to ``scene``, in one call.

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
    inputs = read_inputs(fixed_node, moving_node, fixed_landmarks=fixed_landmarks, moving_landmarks=moving_landmarks,
                         fixed_labels=fixed_labels, moving_labels=moving_labels, warped_volume=warped_volume,
                         transform=transform)
    registrar = method if isinstance(method, Registrar) else create_registrar(method, options)
    reporter = Progress(progress, cancel)
    result = registrar.register(inputs.fixed, inputs.moving, device=device, cancel=cancel,
                                progress=reporter.span(0.0, 0.9).as_callback())
    return add_registration_to_scene(scene, inputs, result, warped_volume=warped_volume, transform=transform,
                                     progress=reporter.span(0.9, 1.0).as_callback(), cancel=cancel)
