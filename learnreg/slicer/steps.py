"""Per-step records -> sequences and a sequence browser, so a user can scrub through a registration.

For every step the browser shows three synchronised items:

- ``<method> step displacement``: the magnitude (mm) of the displacement this step added, a colour
  overlay on the fixed grid (for R2N2 this is the step's local Gaussian deformation);
- ``<method> step warped``: the moving image warped by the field accumulated up to and including the step;
- ``<method> step region`` (methods with local steps): a box at the step's centre spanning its extent (a
  box around the whole image for the steps that act everywhere, such as a refinement's levels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.progress import Progress
from learnreg.registration import RegistrationResult
from learnreg.slicer._mrml import slicer
from learnreg.slicer.volumes import RAS_LPS, update_volume_node
from learnreg.warp import resample_to_grid

#: colour table of the displacement overlay (built into every scene)
OVERLAY_COLOURS = "vtkMRMLColorTableNodeRainbow"


@dataclass
class StepSequences:
    """The browser and its sequences (``region`` is None for methods without local steps)."""

    browser: object
    displacement: object
    warped: object
    region: Optional[object]


def _volume(image: Image):
    node = slicer.vtkMRMLScalarVolumeNode()
    update_volume_node(node, image)
    return node


def _region(centre_lps, size_mm, ndim: int):
    """A box centred at ``centre_lps`` with edges ``size_mm`` long (along RAS; the third is 1 mm in 2D)."""
    node = slicer.vtkMRMLMarkupsROINode()
    node.SetCenter(*(RAS_LPS[:3, :3] @ np.asarray(centre_lps)))
    size = list(np.broadcast_to(np.asarray(size_mm, dtype=float), (3,)))
    if ndim == 2:
        size[2] = 1.0
    node.SetSize(*size)
    return node


def _step_region(step, grid):
    """A local step's box (its centre, twice its extent); a step that acts everywhere (a refinement level):
    a box around the whole image."""
    if step.centre is not None and step.extent_mm is not None:
        return _region(step.centre, 2.0 * step.extent_mm, grid.ndim)
    corners = grid.index_to_physical(np.array([[0.0, 0.0, 0.0], np.asarray(grid.size, float) - 1]))
    return _region(corners.mean(axis=0), np.abs(RAS_LPS[:3, :3] @ (corners[1] - corners[0])), grid.ndim)


def _new_sequence(scene, name: str):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", scene.GenerateUniqueName(name))
    sequence.SetIndexName("step")
    sequence.SetIndexUnit("")
    sequence.SetIndexType(sequence.NumericIndex)
    return sequence


def add_step_sequences(scene, result: RegistrationResult, moving: Image, method: str,
                       progress: Optional[Progress] = None) -> Optional[StepSequences]:
    """Sequences and a browser for ``result.steps``; None when the method recorded no step displacements.

    ``progress`` is told after every step (each step resamples the moving image), and cancels there."""
    progress = progress or Progress()
    steps = [s for s in result.steps if s.displacement is not None]
    if not steps:
        return None
    grid = result.field.grid
    displacement = _new_sequence(scene, f"{method} step displacement")
    warped = _new_sequence(scene, f"{method} step warped")
    local = any(s.centre is not None and s.extent_mm is not None for s in steps)
    region = _new_sequence(scene, f"{method} step region") if local else None
    accumulated = np.zeros_like(result.field.vectors)
    largest_mm = 0.0
    for number, step in enumerate(steps, 1):
        value = str(step.index)
        accumulated = accumulated + step.displacement.vectors
        magnitude = step.displacement.magnitude().astype(np.float32)
        largest_mm = max(largest_mm, float(magnitude.max()))
        displacement.SetDataNodeAtValue(_volume(Image(magnitude, grid)), value)
        field = DisplacementField(accumulated, grid).to_axis_tensor()
        warped.SetDataNodeAtValue(_volume(resample_to_grid(moving, grid, field)), value)
        if region is not None:
            region.SetDataNodeAtValue(_step_region(step, grid), value)
        progress.report(number / len(steps), f"step {number} of {len(steps)} added to the scene")

    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", scene.GenerateUniqueName(f"{method} steps"))
    browser.SetAndObserveMasterSequenceNodeID(displacement.GetID())
    browser.AddSynchronizedSequenceNode(warped)
    if region is not None:
        browser.AddSynchronizedSequenceNode(region)
    browser.SetSelectedItemNumber(len(steps) - 1)
    _style_proxies(browser, displacement, warped, region, largest_mm)
    return StepSequences(browser, displacement, warped, region)


def _style_proxies(browser, displacement, warped, region, max_mm: float) -> None:
    """Colour overlay from 0 to the largest step displacement; the warped proxy in grey; the step's region
    as an outline (a filled box would hide the overlay under it), locked against dragging."""
    overlay = browser.GetProxyNode(displacement)
    overlay.CreateDefaultDisplayNodes()
    display = overlay.GetDisplayNode()
    display.SetAndObserveColorNodeID(OVERLAY_COLOURS)
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, max(max_mm, 1e-3))
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(0.05 * max_mm)
    browser.GetProxyNode(warped).CreateDefaultDisplayNodes()
    if region is not None:
        box = browser.GetProxyNode(region)
        box.CreateDefaultDisplayNodes()
        box.SetLocked(True)
        box.GetDisplayNode().SetFillVisibility(False)
        box.GetDisplayNode().SetHandlesInteractive(False)
