"""Registering in-memory images through a headless scene: how the command line gets ``scene.mrb``.

The images and landmarks become nodes of a new scene, :func:`~learnreg.slicer.run.run_registration`
registers them exactly as a module panel would, and the scene then holds everything a user opens in
Slicer: fixed, moving, warped, the transform with glyphs, landmarks with the TRE review, step sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from learnreg.image import Image
from learnreg.landmarks import LandmarkPairs
from learnreg.progress import CancelToken, ProgressCallback
from learnreg.registration import Registrar
from learnreg.slicer.markups import add_markups_node
from learnreg.slicer.run import SceneRegistration, run_registration
from learnreg.slicer.scene import create_scene
from learnreg.slicer.volumes import add_volume_node


@dataclass
class PairNodes:
    """The input nodes of a registration: volumes, and point lists when there are landmarks."""

    fixed: Any
    moving: Any
    fixed_landmarks: Optional[Any] = None
    moving_landmarks: Optional[Any] = None


def add_pair_nodes(scene, fixed: Image, moving: Image, names: tuple[str, str] = ("fixed", "moving"),
                   landmarks: Optional[LandmarkPairs] = None) -> PairNodes:
    """Add the images (and landmark pairs) to ``scene`` as volumes (and point lists) named after ``names``."""
    nodes = PairNodes(add_volume_node(scene, fixed, names[0]), add_volume_node(scene, moving, names[1]))
    if landmarks is not None:
        fixed_points, moving_points = landmarks.as_landmarks()
        nodes.fixed_landmarks = add_markups_node(scene, fixed_points, f"{names[0]} landmarks")
        nodes.moving_landmarks = add_markups_node(scene, moving_points, f"{names[1]} landmarks")
    return nodes


@dataclass
class HeadlessRegistration:
    """The scene a registration was run in, its input nodes, and the result nodes."""

    scene: Any
    nodes: PairNodes
    registration: SceneRegistration


def register_in_new_scene(fixed: Image, moving: Image, registrar: Registrar, *, names: tuple[str, str] = ("fixed", "moving"),
                          landmarks: Optional[LandmarkPairs] = None, device: str = "auto",
                          progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelToken] = None) -> HeadlessRegistration:
    """Put the images (and landmarks) into a new headless scene and register them there."""
    scene = create_scene()
    nodes = add_pair_nodes(scene, fixed, moving, names, landmarks)
    registration = run_registration(scene, nodes.fixed, nodes.moving, registrar, progress=progress, cancel=cancel,
                                    device=device, fixed_landmarks=nodes.fixed_landmarks,
                                    moving_landmarks=nodes.moving_landmarks)
    return HeadlessRegistration(scene, nodes, registration)
