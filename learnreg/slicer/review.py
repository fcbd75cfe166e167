"""Landmark review: target registration error (TRE) per landmark before and after, as scene nodes.

TRE is measured without inverting anything: each fixed landmark ``y`` is pushed through the pull field
(``y + u(y)``, the point the registration says corresponds in the moving image) and compared with its
moving partner. The table lists landmarks worst first; a bar chart shows TRE per landmark before and
after; a point list holds the mapped landmarks, with the worst ones selected (drawn in the selection
colour) and each point's TRE in its description; and a second display of the transform draws glyphs
at the fixed landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from learnreg.field import DisplacementField
from learnreg.landmarks import LandmarkPairs, Landmarks
from learnreg.metrics import tre
from learnreg.slicer.markups import add_markups_node
from learnreg.slicer.tables import add_bar_chart, add_table_node
from learnreg.slicer.transforms import glyph_settings, show_as_glyphs

#: table column names
LANDMARK, RANK, BEFORE, AFTER = "landmark", "rank (worst first)", "TRE before (mm)", "TRE after (mm)"
ONE_PASS = "TRE one pass (mm)"


@dataclass
class TREReview:
    """The review nodes, and TRE summaries (mean, median, p95, max, std, per landmark) before and after."""

    table: object
    summary_table: object
    chart: object
    mapped_landmarks: object
    before: dict
    after: dict
    one_pass: Optional[dict] = None  # a learned method's network pass alone, before refinement


def worst_landmarks(errors: np.ndarray, count: int = 3) -> np.ndarray:
    """Boolean mask of the ``count`` landmarks with the largest error (fewer when there are fewer)."""
    mask = np.zeros(len(errors), bool)
    mask[np.argsort(-errors)[:count]] = True
    return mask


def add_tre_review(scene, method: str, pairs: LandmarkPairs, field: DisplacementField,
                   transform_node=None, fixed_markups_node=None,
                   one_pass_field: Optional[DisplacementField] = None) -> TREReview:
    """Create the TRE table, summary table, bar chart and mapped-landmark point list for one result (with a
    learned method's ``one_pass_field``, a column for its network's pass alone between before and after)."""
    before, after = tre(pairs.fixed, pairs.moving), tre(pairs.fixed, pairs.moving, field)
    one_pass = None if one_pass_field is None else tre(pairs.fixed, pairs.moving, one_pass_field)
    stages = {BEFORE: before, **({ONE_PASS: one_pass} if one_pass is not None else {}), AFTER: after}
    errors_before, errors_after = np.asarray(before["per_landmark"]), np.asarray(after["per_landmark"])
    order = np.argsort(-errors_after, kind="stable")
    table = add_table_node(scene, f"{method} TRE per landmark", {
        LANDMARK: [pairs.labels[i] for i in order],
        RANK: np.arange(1, len(order) + 1),
        **{column: np.asarray(stage["per_landmark"])[order] for column, stage in stages.items()},
    })
    statistics = ["mean", "median", "p95", "max", "std"]
    summary = add_table_node(scene, f"{method} TRE summary", {
        "statistic": statistics,
        **{column: [stage[s] for s in statistics] for column, stage in stages.items()},
    })
    series = {"before": BEFORE, **({"one pass": ONE_PASS} if one_pass is not None else {}), "after": AFTER}
    chart = add_bar_chart(scene, table, f"{method} TRE per landmark", RANK, series,
                          LANDMARK, "landmark (worst first)", "TRE (mm)")
    mapped = Landmarks(field.transform_points(pairs.fixed), pairs.labels)
    descriptions = [f"TRE {b:.2f} -> {a:.2f} mm" for b, a in zip(errors_before, errors_after)]
    mapped_node = add_markups_node(scene, mapped, f"{method} mapped landmarks", descriptions,
                                   worst_landmarks(errors_after))
    if transform_node is not None and fixed_markups_node is not None:
        display = scene.AddNewNodeByClass("vtkMRMLTransformDisplayNode",
                                          scene.GenerateUniqueName(f"{transform_node.GetName()} at landmarks"))
        transform_node.AddAndObserveDisplayNodeID(display.GetID())
        show_as_glyphs(display, glyph_settings(field), points_node=fixed_markups_node)
    return TREReview(table, summary, chart, mapped_node, before, after, one_pass)
