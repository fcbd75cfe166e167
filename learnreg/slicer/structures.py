"""Structure review: Dice and surface distances per structure before and after a registration, as a table.

The moving label map is warped onto the fixed grid through the result's field (nearest neighbour) and
compared with the fixed label map, label by label: Dice, average symmetric surface distance (ASSD, mm) and
95th-percentile Hausdorff distance (mm). Methods whose steps are named stages (ISTN: "one pass",
"refined") get one column per stage, so the table shows what refinement added; others get before/after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learnreg.errors import InputError
from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.metrics import dice_per_label, surface_distances
from learnreg.registration import RegistrationResult
from learnreg.slicer.tables import add_table_node
from learnreg.warp import resample_to_grid


@dataclass
class StructureReview:
    """The table node and the metrics: stage -> label -> {"dice", "assd", "hd95"}."""

    table: object
    metrics: dict


def stage_fields(result: RegistrationResult) -> dict[str, DisplacementField]:
    """The field after each named stage (cumulative sum of the stages' steps), or just the final field."""
    if not result.steps or any("stage" not in s.parameters or s.displacement is None for s in result.steps):
        return {"after": result.field}
    fields, total = {}, None
    for step in result.steps:
        vectors = step.displacement.vectors if total is None else total + step.displacement.vectors
        total = vectors
        fields[f"after {step.parameters['stage']}"] = DisplacementField(vectors, result.field.grid)
    return fields


def structure_metrics(fixed_labels: Image, moving_labels: Image, field: DisplacementField | None) -> dict:
    """label -> {"dice", "assd", "hd95"} of the moving labels warped by ``field`` (None: not moved)."""
    warped = resample_to_grid(moving_labels, fixed_labels.grid,
                              None if field is None else field.to_axis_tensor(), nearest=True)
    labels = sorted(int(v) for v in np.unique(fixed_labels.array) if v != 0)
    dice = dice_per_label(fixed_labels.array, warped.array, labels)
    surfaces = surface_distances(fixed_labels.array, warped.array, fixed_labels.grid.spacing, labels)
    return {label: {"dice": dice[label], **surfaces[label]} for label in labels}


def add_structure_review(scene, method: str, fixed_labels: Image, moving_labels: Image,
                         result: RegistrationResult) -> StructureReview:
    """A table with one row per label of the fixed label map and Dice/ASSD/HD95 columns per stage."""
    if fixed_labels.grid.size != result.field.grid.size or not np.allclose(
            fixed_labels.grid.index_to_physical_matrix, result.field.grid.index_to_physical_matrix, atol=1e-3):
        raise InputError("the fixed label map must lie on the fixed volume's grid (same size, spacing, origin and "
                         "direction); resample it onto the fixed volume first")
    if not np.any(fixed_labels.array):
        raise InputError("the fixed label map holds no labels (all zero); choose the label map of the structures")
    stages = {"before": None, **stage_fields(result)}
    metrics = {stage: structure_metrics(fixed_labels, moving_labels, field) for stage, field in stages.items()}
    labels = list(metrics["before"])
    columns: dict = {"label": [str(label) for label in labels]}
    for quantity, unit in (("dice", ""), ("assd", " (mm)"), ("hd95", " (mm)")):
        for stage in stages:
            columns[f"{quantity.upper() if quantity != 'dice' else 'Dice'} {stage}{unit}"] = [
                metrics[stage][label][quantity] for label in labels]
    table = add_table_node(scene, f"{method} structures", columns)
    return StructureReview(table, metrics)
