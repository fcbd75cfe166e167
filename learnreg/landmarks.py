"""Landmarks: Slicer markups (``.mrk.json``, ``.fcsv``) and CSV, in LPS mm inside learnreg.

* ``.mrk.json``: Slicer's markups JSON; its ``coordinateSystem`` (``LPS`` or ``RAS``) is honoured.
* ``.fcsv``: Slicer's older fiducial CSV; ``# CoordinateSystem = LPS|RAS|0|1`` (0 = RAS, 1 = LPS;
  a file without that line is RAS, as Slicer wrote them before 4.11).
* ``.csv``: one ``label,x,y,z`` row per landmark after a header line; the coordinate system must be
  stated in a comment line ``# CoordinateSystem = LPS`` (or ``RAS``).

Pairs are matched by label when both sets have unique labels with the same set of names, else by order.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from learnreg.errors import InputError

if TYPE_CHECKING:
    from learnreg.image import Image

LANDMARK_SUFFIXES = (".mrk.json", ".json", ".fcsv", ".csv")
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Named points in LPS mm: ``points`` is ``(N, 3)``, ``labels`` has N names."""

    points: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 3 or len(self.labels) != len(self.points):
            raise InputError("landmarks need N labels and an (N, 3) array of points")
        if not np.all(np.isfinite(self.points)):
            raise InputError("landmark coordinates hold NaN or Inf")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_points(cls, points, labels=None, coordinate_system: str = "LPS") -> "Landmarks":
        points = np.atleast_2d(np.asarray(points, dtype=float))
        if coordinate_system.upper() == "RAS":
            points = points * _RAS_TO_LPS
        elif coordinate_system.upper() != "LPS":
            raise InputError(f"unknown coordinate system {coordinate_system!r}; use LPS or RAS")
        labels = tuple(str(v) for v in labels) if labels is not None else tuple(str(i + 1) for i in range(len(points)))
        return cls(points, labels)

    def in_system(self, coordinate_system: str) -> np.ndarray:
        """Points in ``LPS`` or ``RAS`` mm."""
        return self.points * _RAS_TO_LPS if coordinate_system.upper() == "RAS" else self.points.copy()


def _parse_system(text: str, path: Path) -> str:
    value = text.strip().upper()
    if value in ("LPS", "1"):
        return "LPS"
    if value in ("RAS", "0"):
        return "RAS"
    raise InputError(f"{path.name}: unknown coordinate system {text.strip()!r}; use LPS or RAS")


def _read_mrk_json(path: Path) -> Landmarks:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not a text file; landmarks must be Slicer markups JSON, .fcsv or .csv") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; fix the "
                         "file or export the point list from Slicer again") from None
    try:
        markups = doc["markups"]
    except (KeyError, TypeError):
        raise InputError(f"{path.name} is not a Slicer markups JSON file (no 'markups' list)") from None
    if not markups:
        raise InputError(f"{path.name} holds no markups")
    markup = markups[0]
    system = _parse_system(markup.get("coordinateSystem", "LPS"), path)
    points, labels = [], []
    for i, cp in enumerate(markup.get("controlPoints", [])):
        if cp.get("positionStatus", "defined") != "defined" or "position" not in cp:
            continue
        points.append([float(v) for v in cp["position"]])
        labels.append(str(cp.get("label") or i + 1))
    if not points:
        raise InputError(f"{path.name} has no defined control points")
    return Landmarks.from_points(points, labels, system)


def _read_fcsv(path: Path) -> Landmarks:
    system = "RAS"
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatedNodeID"]
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip().lower() == "coordinatesystem":
                system = _parse_system(value, path)
            elif key.strip().lower() == "columns":
                columns = [c.strip() for c in value.split(",")]
        elif line.strip():
            rows.append(next(csv.reader([line])))
    try:
        ix, iy, iz, il = (columns.index(c) for c in ("x", "y", "z", "label"))
        points = [[float(r[ix]), float(r[iy]), float(r[iz])] for r in rows]
        labels = [r[il] if len(r) > il and r[il] else str(n + 1) for n, r in enumerate(rows)]
    except (ValueError, IndexError):
        raise InputError(f"{path.name} is not a valid .fcsv file (columns x, y, z, label expected)") from None
    if not points:
        raise InputError(f"{path.name} holds no landmarks")
    return Landmarks.from_points(points, labels, system)


def _read_csv(path: Path) -> Landmarks:
    system = None
    body = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip().lower().replace(" ", "") == "coordinatesystem":
                system = _parse_system(value, path)
        elif line.strip():
            body.append(line)
    if system is None:
        raise InputError(
            f"{path.name} does not state its coordinate system; add a first line '# CoordinateSystem = LPS' "
            "(or RAS)"
        )
    reader = csv.DictReader(io.StringIO("\n".join(body)))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if not {"label", "x", "y", "z"} <= set(fields):
        raise InputError(f"{path.name}: the header must be 'label,x,y,z' (found {','.join(fields) or 'nothing'})")
    points, labels = [], []
    for n, row in enumerate(reader):
        row = {k.strip().lower(): v for k, v in row.items() if k is not None}
        try:
            points.append([float(row["x"]), float(row["y"]), float(row["z"])])
        except (TypeError, ValueError):
            raise InputError(f"{path.name}, row {n + 2}: x, y and z must be numbers") from None
        labels.append(row["label"].strip() or str(n + 1))
    if not points:
        raise InputError(f"{path.name} holds no landmarks")
    return Landmarks.from_points(points, labels, system)


def read_landmarks(path) -> Landmarks:
    """Read landmarks from ``.mrk.json``, ``.fcsv`` or ``.csv`` into LPS mm."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"landmark file not found: {path}")
    name = path.name.lower()
    if name.endswith(".json"):
        return _read_mrk_json(path)
    if name.endswith(".fcsv"):
        return _read_fcsv(path)
    if name.endswith(".csv"):
        return _read_csv(path)
    raise InputError(f"{path.name}: landmarks must be .mrk.json, .fcsv or .csv")


def _xyz(point) -> str:
    return ",".join(repr(float(v)) for v in point)


def write_landmarks(landmarks: Landmarks, path, coordinate_system: str = "LPS") -> None:
    """Write landmarks as ``.mrk.json``, ``.fcsv`` or ``.csv`` in the given coordinate system."""
    path = Path(path)
    system = coordinate_system.upper()
    points = landmarks.in_system(system)
    name = path.name.lower()
    if name.endswith(".json"):
        doc = {
            "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                       "Schema/markups-schema-v1.0.3.json#",
            "markups": [{
                "type": "Fiducial",
                "coordinateSystem": system,
                "coordinateUnits": "mm",
                "controlPoints": [
                    {"id": str(i + 1), "label": label, "position": [float(v) for v in p],
                     "positionStatus": "defined"}
                    for i, (label, p) in enumerate(zip(landmarks.labels, points))
                ],
            }],
        }
        path.write_text(json.dumps(doc, indent=2))
    elif name.endswith(".fcsv"):
        lines = ["# Markups fiducial file version = 4.11", f"# CoordinateSystem = {system}",
                 "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"]
        lines += [f"{i + 1},{_xyz(p)},0,0,0,1,1,1,0,{label},," for i, (label, p)
                  in enumerate(zip(landmarks.labels, points))]
        path.write_text("\n".join(lines) + "\n")
    elif name.endswith(".csv"):
        lines = [f"# CoordinateSystem = {system}", "label,x,y,z"]
        lines += [f"{label},{_xyz(p)}" for label, p in zip(landmarks.labels, points)]
        path.write_text("\n".join(lines) + "\n")
    else:
        raise InputError(f"{path.name}: landmarks must be written as .mrk.json, .fcsv or .csv")


def match_pairs(fixed: Landmarks, moving: Landmarks) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Corresponding ``(fixed_points, moving_points, labels)``: by label when both sets carry the same
    labels, by order when they share none (e.g. Slicer's default names ``F-1`` and ``M-1``).

    Raises:
        InputError: the two sets have different numbers of landmarks, or share some labels but not all.
    """
    if len(fixed) != len(moving):
        raise InputError(
            f"the fixed landmarks ({len(fixed)}) and moving landmarks ({len(moving)}) differ in number; "
            "give one moving landmark for each fixed landmark"
        )
    unique = len(set(fixed.labels)) == len(fixed) and len(set(moving.labels)) == len(moving)
    if unique and set(fixed.labels) == set(moving.labels):
        order = [moving.labels.index(label) for label in fixed.labels]
        return fixed.points, moving.points[order], fixed.labels
    shared = set(fixed.labels) & set(moving.labels)
    if shared:
        unmatched = sorted(set(fixed.labels) ^ set(moving.labels))
        raise InputError(
            f"the fixed and moving landmarks share some labels but not all (no partner for {', '.join(unmatched[:5])}); "
            "give both lists the same labels, or entirely different ones to pair them by order")
    return fixed.points, moving.points, fixed.labels


@dataclass(frozen=True)
class LandmarkPairs:
    """Matched landmark pairs in LPS mm: ``fixed[n]`` corresponds to ``moving[n]``, both named ``labels[n]``."""

    fixed: np.ndarray
    moving: np.ndarray
    labels: tuple[str, ...]

    def as_landmarks(self) -> tuple[Landmarks, Landmarks]:
        """The fixed and the moving landmarks, each with the shared labels."""
        return Landmarks(self.fixed, self.labels), Landmarks(self.moving, self.labels)


def check_landmarks_inside(landmarks: Landmarks, image: "Image", role: str) -> None:
    """Raise :class:`InputError` naming the landmarks that lie outside ``image``."""
    outside = ~image.grid.contains(landmarks.points)
    if outside.any():
        names = ", ".join(np.asarray(landmarks.labels)[outside][:5])
        raise InputError(
            f"{int(outside.sum())} {role} landmark(s) lie outside the {role} image ({names}); check the landmark "
            "file's coordinate system (LPS or RAS) and that it belongs to this image"
        )


def pair_landmarks(fixed: Landmarks, moving: Landmarks, fixed_image: "Image", moving_image: "Image") -> LandmarkPairs:
    """Match fixed and moving landmarks (:func:`match_pairs`) and check each set lies inside its image."""
    fixed_points, moving_points, labels = match_pairs(fixed, moving)
    pairs = LandmarkPairs(fixed_points, moving_points, labels)
    matched_fixed, matched_moving = pairs.as_landmarks()
    check_landmarks_inside(matched_fixed, fixed_image, "fixed")
    check_landmarks_inside(matched_moving, moving_image, "moving")
    return pairs
