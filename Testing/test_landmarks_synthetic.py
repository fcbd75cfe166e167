"""Landmark files (mrk.json, fcsv, csv in RAS and LPS), pair matching, and the synthetic pair generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from learnreg.errors import InputError
from learnreg.image import Image
from learnreg.landmarks import Landmarks, match_pairs, read_landmarks, write_landmarks
from learnreg.synthetic import FIELD_FAMILIES, breathing_field, make_pair

POINTS = np.array([[1.5, -2.25, 3.0], [10.0, 20.0, -30.125], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("name", ["a.mrk.json", "a.fcsv", "a.csv"])
@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_landmark_round_trip(tmp_path, name, system):
    landmarks = Landmarks(POINTS, ("A", "B", "C"))
    write_landmarks(landmarks, tmp_path / name, system)
    back = read_landmarks(tmp_path / name)
    assert back.labels == ("A", "B", "C")
    assert np.allclose(back.points, POINTS)


def test_coordinate_systems_are_honoured(tmp_path):
    doc = {"markups": [{"type": "Fiducial", "coordinateSystem": "RAS",
                        "controlPoints": [{"label": "p", "position": [1, 2, 3]}]}]}
    (tmp_path / "ras.mrk.json").write_text(json.dumps(doc))
    assert np.allclose(read_landmarks(tmp_path / "ras.mrk.json").points, [[-1, -2, 3]])
    (tmp_path / "old.fcsv").write_text("# Markups fiducial file version = 4.10\n# CoordinateSystem = 0\n"
                                       "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                                       "1,1,2,3,0,0,0,1,1,1,0,p,,\n")
    assert np.allclose(read_landmarks(tmp_path / "old.fcsv").points, [[-1, -2, 3]])


def test_csv_must_state_coordinate_system(tmp_path):
    (tmp_path / "plain.csv").write_text("label,x,y,z\na,1,2,3\n")
    with pytest.raises(InputError, match="CoordinateSystem"):
        read_landmarks(tmp_path / "plain.csv")


def test_pairs_match_by_label_else_order():
    fixed = Landmarks(POINTS, ("A", "B", "C"))
    moving = Landmarks(POINTS[[2, 0, 1]] + 1, ("C", "A", "B"))
    _, matched, labels = match_pairs(fixed, moving)
    assert labels == ("A", "B", "C") and np.allclose(matched, POINTS + 1)
    unnamed = Landmarks(POINTS[[2, 0, 1]], ("x", "y", "z"))
    _, by_order, _ = match_pairs(fixed, unnamed)
    assert np.allclose(by_order, POINTS[[2, 0, 1]])
    with pytest.raises(InputError, match="differ in number"):
        match_pairs(fixed, Landmarks(POINTS[:2], ("A", "B")))


@pytest.mark.parametrize("family", FIELD_FAMILIES)
@pytest.mark.parametrize("case", ["colin_oblique", "slice_oblique"])
def test_generator_gives_exact_landmark_pairs(case, family, request):
    source: Image = request.getfixturevalue(case)
    pair = make_pair(source, seed=1, rotation_degrees=3, translation_mm=2, breathing_mm=4, landmark_count=15,
                     family=family)
    # the random part reaches the requested size (default: 5 % of the mean extent) on top of the rest
    assert pair.true_field.vectors.reshape(-1, 3).std(axis=0).max() > 0.5
    assert len(pair.fixed_landmarks) == 15
    # moving landmark = fixed landmark + v(fixed landmark), exactly (no inversion needed)
    assert np.allclose(pair.true_field.transform_points(pair.fixed_landmarks.points), pair.moving_landmarks.points)
    # fixed image = source warped by v: its voxel at a fixed landmark equals the source at the moving landmark
    idx = np.rint(pair.fixed.grid.physical_to_index(pair.fixed_landmarks.points)).astype(int)
    fixed_values = pair.fixed.array[idx[:, 2], idx[:, 1], idx[:, 0]]
    midx = source.grid.physical_to_index(pair.moving_landmarks.points)[:, ::-1].T
    expected = map_coordinates(np.asarray(source.array, np.float64), midx, order=1)
    assert np.allclose(fixed_values, expected, atol=1e-3 * float(source.array.max()))
    # all landmarks inside both images, spread out, and the field does not fold
    assert pair.fixed.grid.contains(pair.fixed_landmarks.points).all()
    assert source.grid.contains(pair.moving_landmarks.points).all()
    assert pair.true_field.jacobian_determinant().min() > 0
    # the same seed gives the same pair
    again = make_pair(source, seed=1, rotation_degrees=3, translation_mm=2, breathing_mm=4, landmark_count=15,
                      family=family)
    assert np.array_equal(again.fixed_landmarks.points, pair.fixed_landmarks.points)


def test_breathing_motion_grows_towards_the_diaphragm(colin_oblique):
    field = breathing_field(colin_oblique.grid, 10.0)
    magnitude = field[0].norm(dim=0)
    assert float(magnitude.max()) == pytest.approx(10.0 * np.sqrt(1 + 1 / 9), rel=0.05)
    assert float(magnitude.min()) < 0.5
