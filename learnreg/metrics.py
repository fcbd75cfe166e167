"""Registration metrics in physical units (mm), following the Learn2Reg conventions.

* TRE: the fixed landmark ``x_f`` is mapped by the pull field to ``x_f + u(x_f)`` (linear interpolation
  of the field, no snapping to voxels) and compared with its moving partner ``x_m``; in mm.
* Dice per label after nearest-neighbour warping of the moving labels.
* HD95 and ASSD in mm from surface voxels (voxels of the label with a 6- or 4-connected neighbour outside).
* Folding: percentage of voxels with ``det(I + du/dx) <= 0``; SD log J is the *plain* standard
  deviation of ``log det J`` over voxels with ``det J > 0`` (not Learn2Reg's ``log(det J + 3)``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from learnreg.field import DisplacementField


def summarise_distances(distances) -> dict:
    """Mean, median, p95, max and std of distances in mm (and their count)."""
    d = np.asarray(distances, dtype=float)
    if d.size == 0:
        return {"n": 0}
    return {
        "n": int(d.size),
        "mean": float(d.mean()),
        "median": float(np.median(d)),
        "p95": float(np.percentile(d, 95)),
        "max": float(d.max()),
        "std": float(d.std()),
    }


def target_registration_errors(fixed_points, moving_points, field: DisplacementField | None = None) -> np.ndarray:
    """Per-landmark TRE in mm; ``field=None`` gives the error before registration (identity)."""
    fixed_points = np.atleast_2d(np.asarray(fixed_points, dtype=float))
    moving_points = np.atleast_2d(np.asarray(moving_points, dtype=float))
    mapped = fixed_points if field is None else field.transform_points(fixed_points)
    return np.linalg.norm(mapped - moving_points, axis=1)


def tre(fixed_points, moving_points, field: DisplacementField | None = None) -> dict:
    """TRE statistics (mean, median, p95, max, std in mm) plus the per-landmark values."""
    errors = target_registration_errors(fixed_points, moving_points, field)
    return {**summarise_distances(errors), "per_landmark": [float(e) for e in errors]}


def _label_values(fixed_labels: np.ndarray, warped_labels: np.ndarray, labels) -> list:
    if labels is not None:
        return list(labels)
    return sorted((set(np.unique(fixed_labels)) | set(np.unique(warped_labels))) - {0})


def dice_per_label(fixed_labels: np.ndarray, warped_labels: np.ndarray, labels=None) -> dict[int, float]:
    """Dice overlap of each label value (background 0 excluded unless listed)."""
    fixed_labels, warped_labels = np.asarray(fixed_labels), np.asarray(warped_labels)
    out = {}
    for value in _label_values(fixed_labels, warped_labels, labels):
        a, b = fixed_labels == value, warped_labels == value
        total = a.sum() + b.sum()
        out[int(value)] = float(2.0 * np.logical_and(a, b).sum() / total) if total else float("nan")
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def _surface_distances(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from a's surface voxels to b's surface and back; arrays in (k, j, i) order."""
    sa, sb = _surface(a), _surface(b)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return dist_to_b[sa], dist_to_a[sb]


def surface_distances(fixed_labels: np.ndarray, warped_labels: np.ndarray, spacing_ijk, labels=None) -> dict:
    """HD95 and ASSD in mm per label; ``spacing_ijk`` is the grid spacing along ``(i, j, k)``.

    Labels absent from either image get NaN.
    """
    fixed_labels, warped_labels = np.asarray(fixed_labels), np.asarray(warped_labels)
    labels = _label_values(fixed_labels, warped_labels, labels)
    squeeze = fixed_labels.ndim == 3 and fixed_labels.shape[0] == 1
    spacing = tuple(reversed(spacing_ijk[:2])) if squeeze else tuple(reversed(spacing_ijk[:3]))
    out = {}
    for value in labels:
        a, b = fixed_labels == value, warped_labels == value
        if squeeze:
            a, b = a[0], b[0]
        if not a.any() or not b.any():
            out[int(value)] = {"hd95": float("nan"), "assd": float("nan")}
            continue
        d_ab, d_ba = _surface_distances(a, b, spacing)
        both = np.concatenate([d_ab, d_ba])
        out[int(value)] = {"hd95": float(np.percentile(both, 95)), "assd": float(both.mean())}
    return out


def folding(field: DisplacementField) -> dict:
    """Folding statistics of a field: % voxels with det J <= 0, plain SD of log det J, det J range."""
    det = field.jacobian_determinant()
    positive = det[det > 0]
    return {
        "percent_nonpositive_jacobian": float(100.0 * (det <= 0).mean()),
        "sd_log_jacobian": float(np.log(positive).std()) if positive.size else float("nan"),
        "min_jacobian": float(det.min()),
        "max_jacobian": float(det.max()),
    }
