"""The web app's session below the page (learnreg.web.session) on a real headless Slicer scene: sources stay
inside their folders, uploads are checked with the command line's messages, one run at a time, a cancelled
run leaves the scene as it was, and the downloads are the command line's files."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import SimpleITK as sitk

from learnreg.cli import main
from learnreg.errors import InputError
from learnreg.sample_data import sample_pairs
from learnreg.slicer.scene import create_scene, nodes_of_class
from learnreg.web.session import InputChoice, WebSession


@pytest.fixture()
def session(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    pair = sample_pairs()["brain2d"]
    (data / "sub" / "fixed.nii.gz").write_bytes(pair.fixed.read_bytes())
    (data / "moving.nii.gz").write_bytes(pair.moving.read_bytes())
    (tmp_path / "secret.nii.gz").write_bytes(pair.fixed.read_bytes())
    web = WebSession(create_scene(), data, upload_limit=2**20)
    yield web
    web.close()


def _wait(job, timeout=120):
    assert job.wait(timeout)
    return job.poll()


def _volume_names(scene):
    return sorted(node.GetName() for node in nodes_of_class(scene, "vtkMRMLScalarVolumeNode"))


def test_sources_list_the_bundled_pairs_and_the_data_folder_and_nothing_outside(session):
    values = [item["value"] for item in session.sources()]
    assert "sample:brain2d/fixed.nii.gz" in values and "sample:brain3d/fixed_labels.nii.gz" in values
    assert "data:sub/fixed.nii.gz" in values and "data:moving.nii.gz" in values
    assert session.resolve("data:sub/fixed.nii.gz") == session.data_dir / "sub" / "fixed.nii.gz"
    for outside in ("data:../secret.nii.gz", "data:/etc/passwd", "sample:brain2d/../../__init__.py",
                    "upload:../data/moving.nii.gz", "file:/etc/passwd", "sample:nopair/fixed.nii.gz"):
        with pytest.raises(InputError):
            session.resolve(outside)


def test_without_a_data_folder_data_sources_are_refused():
    web = WebSession(create_scene())
    with pytest.raises(InputError, match="--data"):
        web.resolve("data:x.nii.gz")
    with pytest.raises(InputError, match="not a folder"):
        WebSession(create_scene(), data_dir=sample_pairs()["brain2d"].fixed)


def test_a_broken_upload_gives_the_command_line_message_and_is_not_kept(session, tmp_path, capsys):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(sample_pairs()["brain2d"].fixed.read_bytes()[:3000])
    assert main(["register", "--fixed", str(broken), "--moving", str(sample_pairs()["brain2d"].moving),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("learnreg: error: ")
    with pytest.raises(InputError) as refused:
        session.receive_upload("broken.nii.gz", broken.read_bytes())
    assert str(refused.value) == cli_line.replace("fixed image", "uploaded image").replace(str(broken),
                                                                                         "broken.nii.gz")
    assert not [i for i in session.sources() if i["value"].startswith("upload:")]


@pytest.mark.parametrize("name, content, message", [
    ("big.nii.gz", b"\0" * (2**20 + 1), "over the upload limit of 1 MB"),
    ("notes.txt", b"hello", "not a file the app reads"),
    ("landmarks.fcsv", b"this is not a markups file\n1,2", "landmark"),
])
def test_uploads_that_are_refused(session, name, content, message):
    with pytest.raises(InputError, match=message):
        session.receive_upload(name, content)


def test_uploads_keep_a_safe_name_and_can_be_registered(session):
    pair = sample_pairs()["brain2d"]
    fixed = session.receive_upload("../../evil/fixed.nii.gz", pair.fixed.read_bytes())
    moving = session.receive_upload("moving.nii.gz", gzip.compress(gzip.decompress(pair.moving.read_bytes())))
    assert fixed == "upload:fixed.nii.gz" and (session.upload_dir / "fixed.nii.gz").is_file()
    inputs = session.load_inputs(InputChoice(fixed, moving))
    assert inputs.names == ("fixed", "moving") and _volume_names(session.scene) == ["fixed", "moving"]


def test_an_image_with_nan_voxels_is_refused_as_the_command_line_refuses_it(session, tmp_path, capsys):
    image = sitk.ReadImage(str(sample_pairs()["brain2d"].moving), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    array[0, 10, 10] = np.nan
    nan_image = sitk.GetImageFromArray(array)
    nan_image.CopyInformation(image)
    path = tmp_path / "nan.nrrd"  # (ITK reads NaN in a single-slice NIfTI back as 0)
    sitk.WriteImage(nan_image, str(path))
    assert main(["register", "--fixed", str(sample_pairs()["brain2d"].fixed), "--moving", str(path), "--out",
                 str(tmp_path / "out"), "--quiet", "--no-scene"]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("learnreg: error: ")
    source = session.receive_upload("nan.nrrd", path.read_bytes())  # a readable image: kept
    session.load_inputs(InputChoice.sample("brain2d"))
    before = _volume_names(session.scene)
    with pytest.raises(InputError) as refused:
        session.load_inputs(InputChoice("sample:brain2d/fixed.nii.gz", source))
    assert str(refused.value) == cli_line and "NaN" in cli_line
    assert _volume_names(session.scene) == before


def test_2d_against_3d_is_refused_and_the_scene_stays(session):
    session.load_inputs(InputChoice.sample("brain2d"))
    before = _volume_names(session.scene)
    with pytest.raises(InputError, match="2D but moving image is 3D"):
        session.load_inputs(InputChoice("sample:brain2d/fixed.nii.gz", "sample:brain3d/moving.nii.gz"))
    assert _volume_names(session.scene) == before


def test_one_run_at_a_time_and_a_cancel_leaves_the_scene_as_it_was(session):
    session.load_inputs(InputChoice.sample("brain3d"))
    before = session.scene.GetNumberOfNodes()
    job = session.start_run("bspline", {"iterations": "400,400,400"})
    with pytest.raises(InputError, match="already running"):
        session.start_run("bspline", {})
    with pytest.raises(InputError, match="a registration is running"):
        session.load_inputs(InputChoice.sample("brain2d"))
    job.cancel()
    assert [e.kind for e in _wait(job) if e.kind != "progress"] == ["cancelled"]
    assert session.scene.GetNumberOfNodes() == before and session.last_run is None
    with pytest.raises(InputError, match="no result yet"):
        session.download("report.json")


def test_a_run_s_tables_and_downloads_are_the_command_line_s(session, tmp_path):
    session.load_inputs(InputChoice.sample("brain3d"))
    job = session.start_run("bspline", {"iterations": "20,10,5"})
    done = [e for e in _wait(job) if e.kind == "done"]
    record = session.finish_run(done[0].payload)
    tables = {t.name: t for t in session.result_tables()}
    assert set(tables) == {"bspline TRE per landmark", "bspline TRE summary", "bspline structures"}
    report = json.loads(session.download("report.json"))
    tre = tables["bspline TRE per landmark"]
    after = dict(zip(report["tre_mm"]["labels"], report["tre_mm"]["after"]["per_landmark"]))
    column = tre.columns.index("TRE after (mm)")
    assert {row[0]: row[column] for row in tre.rows} == {k: f"{v:.3f}" for k, v in after.items()}
    assert record.report["tre_mm"]["after"]["mean"] < 0.5 * record.report["tre_mm"]["before"]["mean"]
    (tmp_path / "transform.h5").write_bytes(session.download("transform.h5"))
    transform = sitk.ReadTransform(str(tmp_path / "transform.h5"))
    point = (0.0, 0.0, 0.0)
    assert np.isfinite(transform.TransformPoint(point)).all()
    (tmp_path / "warped.nii.gz").write_bytes(session.download("warped.nii.gz"))
    assert sitk.ReadImage(str(tmp_path / "warped.nii.gz")).GetSize() == sitk.ReadImage(
        str(sample_pairs()["brain3d"].fixed)).GetSize()
    bundle = tmp_path / "scene.mrb"
    bundle.write_bytes(session.download("scene.mrb"))
    with pytest.raises(InputError, match="unknown download"):
        session.download("../etc/passwd")

    other = WebSession(create_scene())
    other.open_scene(bundle)
    reopened = {t.name: t for t in other.result_tables()}
    rows = reopened["bspline TRE per landmark"].rows  # the bundle keeps the table's numbers as text, to 1e-3 mm
    assert [r[:2] for r in rows] == [r[:2] for r in tre.rows]
    assert np.allclose(np.array([r[2:] for r in rows], float), np.array([r[2:] for r in tre.rows], float), atol=2e-3)
