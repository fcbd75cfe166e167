"""What every learned method does after its network's pass (learnreg.learned), with the shipped 2D weights:

- a pass that makes the images less similar is never kept silently: on a pair of identical images (where any
  deformation is wrong), the result says so and keeps the better start;
- the network's pass after an affine start is one of the starts (``prealign``);
- refinement by the shared B-spline optimiser starts from the network's field and lowers the TRE further;
  both numbers reach report.json and the command line;
- the Fast preset is one pass; training refuses the held-out evaluation images.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from learnreg.cli import main
from learnreg.errors import InputError
from learnreg.metrics import tre
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_pairs
from learnreg.slicer.module_logic import method_options
from learnreg.training import held_out
from learnreg.training.held_out import HELD_OUT_FOLDER
from learnreg.training.image_bank import expand_paths

LEARNED = ("r2n2", "istn", "cnnregress")


@pytest.fixture(scope="module")
def brain2d():
    return sample_pairs()["brain2d"].load()


@pytest.mark.parametrize("method", LEARNED)
def test_a_pass_that_harms_is_set_aside_and_said(method, brain2d):
    fixed = brain2d[0]
    result = create_registrar(method, {"refine": "none"}).register(fixed, fixed, device="cpu")
    similarity = result.similarity
    assert set(similarity) >= {"identity", "affine", "network", "chosen", "final"}
    assert similarity["identity"] == pytest.approx(0.0, abs=1e-5)
    if similarity["network"] <= min(similarity["identity"], similarity["affine"]):
        pytest.skip(f"{method}'s pass left identical images as they were")
    assert similarity["chosen"] != "network"
    assert any("less similar" in note for note in result.notes), result.notes
    assert similarity["final"] <= similarity["network"]
    assert np.abs(result.field.vectors).max() < np.abs(result.one_pass.vectors).max()


@pytest.mark.parametrize("method", LEARNED)
def test_refinement_starts_from_the_pass_and_lowers_the_tre(method, brain2d):
    fixed, moving, landmarks = brain2d
    refined = create_registrar(method).register(fixed, moving, device="cpu")
    one_pass = tre(landmarks.fixed, landmarks.moving, refined.one_pass)["mean"]
    after = tre(landmarks.fixed, landmarks.moving, refined.field)["mean"]
    before = tre(landmarks.fixed, landmarks.moving)["mean"]
    assert after < min(one_pass, before) * 0.5, (before, one_pass, after)
    assert [s.parameters.get("stage") for s in refined.steps][-3:] == ["refinement"] * 3  # bspline's 3 levels
    field_from_steps = sum(s.displacement.vectors for s in refined.steps)
    assert np.allclose(field_from_steps, refined.field.vectors, atol=1e-3)
    assert "bspline_refinement" in refined.timings


def test_the_refinement_pyramid_is_an_option(brain2d):
    fixed, moving, landmarks = brain2d
    result = create_registrar("ddfnet", {"refine_levels": "2,1", "refine_iterations": "20,10"}).register(
        fixed, moving, device="cpu")
    refinement = [s.parameters for s in result.steps if s.parameters.get("stage") == "refinement"]
    assert [p["shrink_factor"] for p in refinement] == [2.0, 1.0]
    assert tre(landmarks.fixed, landmarks.moving, result.field)["mean"] < tre(landmarks.fixed, landmarks.moving,
                                                                               result.one_pass)["mean"]


def test_refining_from_both_starts_keeps_the_affine_one_where_it_ends_more_similar(brain2d):
    """ddfnet's pass on brain2d is more similar than the affine start, yet refines to 0.30 mm where the affine
    start refines to 0.10: refine_from=both (the Accurate preset) refines both, keeps the more similar result and
    says so; its steps are the affine start's and their refinement. Refined from the affine start, the B-spline is
    added to it as bspline adds its own to its affine stage: the field is bspline's."""
    fixed, moving, landmarks = brain2d
    default = create_registrar("ddfnet").register(fixed, moving, device="cpu")
    both = create_registrar("ddfnet", {"refine_from": "both"}).register(fixed, moving, device="cpu")
    assert default.similarity["chosen"] == "network" and both.similarity["chosen"] == "affine"
    assert both.similarity["final"] < default.similarity["final"]
    assert any("refine_from=both" in note for note in both.notes), both.notes
    assert tre(landmarks.fixed, landmarks.moving, both.field)["mean"] < 0.5 * tre(
        landmarks.fixed, landmarks.moving, default.field)["mean"]
    stages = [s.parameters.get("stage") for s in both.steps]
    assert stages == ["affine start"] + ["refinement"] * 3
    assert np.allclose(sum(s.displacement.vectors for s in both.steps), both.field.vectors, atol=1e-3)
    bspline = create_registrar("bspline").register(fixed, moving, device="cpu")
    assert np.allclose(both.field.vectors, bspline.field.vectors, atol=1e-5)


def test_the_pass_after_the_affine_start_is_a_start_and_said(brain2d):
    """brain2d's moving image is 4 degrees and 4 mm away besides a smooth field: CNNRegress's pass leaves 1.70 mm,
    its pass on the moving image aligned by the affine start, composed with it, 0.81 mm and more similar images.
    With prealign=both the result builds on that one and says so, with steps that add up to the field; the default,
    prealign=none, runs the paper's pass only. The network's pass on the images as given is reported either way."""
    fixed, moving, landmarks = brain2d
    both = create_registrar("cnnregress", {"refine": "none", "prealign": "both"}).register(fixed, moving, device="cpu")
    given = create_registrar("cnnregress", {"refine": "none"}).register(fixed, moving, device="cpu")
    assert both.similarity["chosen"] == "affine+network" and "affine+network" not in given.similarity
    assert both.similarity["affine+network"] < both.similarity["network"] == pytest.approx(given.similarity["network"])
    assert any("after an affine registration" in note and "builds on it" in note for note in both.notes), both.notes
    assert tre(landmarks.fixed, landmarks.moving, both.field)["mean"] < 0.6 * tre(
        landmarks.fixed, landmarks.moving, given.field)["mean"]
    assert np.allclose(both.one_pass.vectors, given.one_pass.vectors)
    assert both.steps[0].parameters["stage"] == "affine start, after the network's pass"
    assert np.allclose(sum(s.displacement.vectors for s in both.steps), both.field.vectors, atol=1e-3)
    assert "pass_after_affine" in both.timings and "pass_after_affine" not in given.timings


def test_report_and_command_line_give_one_pass_and_refined_tre(tmp_path, capsys):
    files = sample_pairs()["brain2d"]
    code = main(["register", "--fixed", str(files.fixed), "--moving", str(files.moving), "--method", "r2n2",
                 "--out", str(tmp_path / "out"),
                 "--fixed-landmarks", str(files.fixed_landmarks), "--moving-landmarks", str(files.moving_landmarks),
                 "--no-scene", "--device", "cpu"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tre_mm"]["one_pass"]["mean"] > report["tre_mm"]["after"]["mean"]
    assert report["similarity"]["chosen"] in ("network", "affine+network", "affine", "identity")
    assert "(one pass)" in capsys.readouterr().out


def test_fast_preset_is_one_pass_and_default_refines():
    assert method_options("r2n2", "Fast")["refine"] == "none"
    assert "refine" not in method_options("bspline", "Fast")
    assert create_registrar("cnnregress").options.refine == "bspline"
    assert method_options("ddfnet", "Accurate") == {"refine_from": "both"}
    with pytest.raises(InputError, match="refine_from='all' must be one of start, both"):
        create_registrar("cnnregress", {"refine_from": "all"})
    with pytest.raises(InputError, match="refine"):
        create_registrar("istn", {"refine": "demons"})
    with pytest.raises(InputError, match="prealign='affine' must be one of none, both"):
        create_registrar("r2n2", {"prealign": "affine"})
    with pytest.raises(InputError, match="one refine_iterations per refine_levels"):
        create_registrar("ddfnet", {"refine_levels": "2,1"})
    with pytest.raises(InputError, match="shrink factors >= 1"):
        create_registrar("r2n2", {"refine_levels": "0.5", "refine_iterations": "10"})


def test_training_refuses_held_out_images(tmp_path):
    source = sample_pairs()["brain2d"].fixed
    held = tmp_path / HELD_OUT_FOLDER / source.name
    held.parent.mkdir()
    shutil.copy(source, held)
    with pytest.raises(InputError, match="held out"):
        expand_paths([str(tmp_path / HELD_OUT_FOLDER / "*")])
    assert expand_paths([str(source)]) == [source]


def test_training_refuses_a_copy_of_a_held_out_image_by_its_content(tmp_path, monkeypatch):
    copy = tmp_path / "renamed.nii.gz"
    shutil.copy(sample_pairs()["brain2d"].moving, copy)
    assert expand_paths([str(copy)]) == [copy]
    monkeypatch.setitem(held_out.HELD_OUT_SHA256, "stand-in.nii.gz", hashlib.sha256(copy.read_bytes()).hexdigest())
    with pytest.raises(InputError, match="copy of a held-out"):
        expand_paths([str(copy)])


@pytest.mark.parametrize("method", LEARNED + ("ddfnet",))
def test_memory_estimate_covers_the_refinement(method):
    """A volume is refused before a run only if it cannot fit: with refinement on, a learned method's estimate is at
    least ``bspline``'s (the refinement runs its optimiser on the fixed grid; ISTN's pass alone was estimated at 96
    bytes a voxel where its refined run peaked at 488), and the Fast preset's is the pass's."""
    from learnreg.image import Grid

    grid = Grid.make((256, 256, 92), (1.25, 1.25, 2.5))
    refined = create_registrar(method)
    fast = create_registrar(method, {"refine": "none"})
    assert refined.estimate_memory_bytes(grid, grid) >= create_registrar("bspline").estimate_memory_bytes(grid, grid)
    assert fast.estimate_memory_bytes(grid, grid) == fast.pass_memory_bytes(grid, grid)
    assert fast.estimate_memory_bytes(grid, grid) < refined.estimate_memory_bytes(grid, grid)
