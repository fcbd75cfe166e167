"""Registering in-memory images through a headless scene: how the command line gets ``scene.mrb``.

The images and landmarks become nodes of a new scene, :func:`~learnreg.slicer.run.run_registration`
registers them exactly as a module panel would, and the scene then holds everything a user opens in
Slicer: fixed, moving, warped, the transform with glyphs, landmarks with the TRE review, step sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from learnreg.image import Image
from learnreg.landmarks import Landmarks
from learnreg.progress import CancelToken, ProgressCallback
from learnreg.registration import Registrar
from learnreg.slicer.markups import add_markups_node
from learnreg.slicer.run import SceneRegistration, run_registration
from learnreg.slicer.scene import create_scene
from learnreg.slicer.volumes import add_volume_node


@dataclass
class HeadlessRegistration:
    """The scene a registration was run in, its input nodes, and the result nodes."""

    scene: Any
    fixed_node: Any
    moving_node: Any
    fixed_landmarks: Optional[Any]
    moving_landmarks: Optional[Any]
    registration: SceneRegistration


def register_in_new_scene(fixed: Image, moving: Image, registrar: Registrar, *, names: tuple[str, str] = ("fixed", "moving"),
                          landmarks: Optional[tuple[Landmarks, Landmarks]] = None, device: str = "auto",
                          progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelToken] = None) -> HeadlessRegistration:
    """Put the images (and landmarks) into a new headless scene and register them there."""
    scene = create_scene()
    fixed_node = add_volume_node(scene, fixed, names[0])
    moving_node = add_volume_node(scene, moving, names[1])
    fixed_points = moving_points = None
    if landmarks is not None:
        fixed_points = add_markups_node(scene, landmarks[0], f"{names[0]} landmarks")
        moving_points = add_markups_node(scene, landmarks[1], f"{names[1]} landmarks")
    registration = run_registration(scene, fixed_node, moving_node, registrar, progress=progress, cancel=cancel,
                                    device=device, fixed_landmarks=fixed_points, moving_landmarks=moving_points)
    return HeadlessRegistration(scene, fixed_node, moving_node, fixed_points, moving_points, registration)
