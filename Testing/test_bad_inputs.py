"""Every bad input a user can give, through the command line, the Python API and the Slicer bridge.

Each case is a mistake (a file, an option, a landmark list, an output folder, a device, weights, a
cancel). Through ``learnreg register`` it must give exit code 2 (130 for a cancel) and one line
``learnreg: error: ...`` naming the problem and the fix, never a traceback; nothing is written and the
inputs are unchanged. Through :func:`learnreg.pipeline.register_files` the same case raises
:class:`learnreg.errors.LearnRegError` with the same message. The cases that exist for scene nodes too
(image content, method and options, landmarks, device, memory, weights) leave a Slicer scene unchanged
when run through :func:`learnreg.slicer.run.run_registration`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from learnreg import device as device_module
from learnreg.cli import main
from learnreg.errors import LearnRegError
from learnreg.image import load_image, save_image
from learnreg.landmarks import read_landmarks
from learnreg.model_files import MODELS_DIR
from learnreg.pipeline import register_files
from learnreg.sample_data import sample_pairs

QUICK = {"iterations": "5,5,5"}


@dataclass
class Case:
    """A mistake: the files and options of a ``learnreg register`` call that differ from a good one, the words
    its message must hold, and how to try it on scene nodes (None: a file-level mistake only)."""

    message: str
    fixed: Optional[Path] = None
    moving: Optional[Path] = None
    method: str = "bspline"
    options: dict = field(default_factory=lambda: dict(QUICK))
    fixed_landmarks: Optional[Path] = None
    moving_landmarks: Optional[Path] = None
    out: Optional[Path] = None
    device: str = "cpu"
    patch: Optional[Callable] = None  # monkeypatch -> None, for the machine's circumstances (no GPU, little memory)
    in_scene: bool = False


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def _truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    return _write(path, data[: len(data) // 2])


def _nrrd_with_spacing(image, path: Path, directions: bytes) -> Path:
    save_image(image, path.with_suffix(".tmp.nrrd"))  # gzip-encoded; the header is text before a blank line
    data = path.with_suffix(".tmp.nrrd").read_bytes()
    end = data.index(b"\n\n")
    return _write(path, re.sub(rb"space directions: [^\n]*", b"space directions: " + directions, data[:end])
                  + data[end:])


def _weights_cases(tmp: Path) -> dict:
    shipped = MODELS_DIR / "r2n2_2d.pt"
    corrupt = _write(tmp / "corrupt" / "model.pt", os.urandom(2048))
    shutil.copy(MODELS_DIR / "r2n2_2d.card.json", tmp / "corrupt" / "model.card.json")
    tampered = tmp / "tampered" / "model.pt"
    tampered.parent.mkdir()
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    shutil.copy(MODELS_DIR / "r2n2_2d.card.json", tmp / "tampered" / "model.card.json")
    foreign = tmp / "foreign" / "model.pt"
    foreign.parent.mkdir()
    shutil.copy(MODELS_DIR / "cnnregress_2d.pt", foreign)
    shutil.copy(MODELS_DIR / "cnnregress_2d.card.json", tmp / "foreign" / "model.card.json")

    class Payload:  # unpickling this would run a shell command
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp / "code-ran"),))
    code = _write(tmp / "code" / "model.pt", pickle.dumps({"state": Payload()}))
    card = (MODELS_DIR / "r2n2_2d.card.json").read_text()
    digest = hashlib.sha256(code.read_bytes()).hexdigest()
    _write(tmp / "code" / "model.card.json", re.sub(r'"sha256": "[0-9a-f]+"', f'"sha256": "{digest}"', card))
    return {
        "weights: corrupt file": Case("corrupt or was replaced", method="r2n2", options={"weights": str(corrupt)},
                                      in_scene=True),
        "weights: one byte flipped": Case("corrupt or was replaced", method="r2n2", options={"weights": str(tampered)},
                                          in_scene=True),
        "weights: another method's": Case("is a 'cnnregress' model, not 'r2n2'", method="r2n2",
                                          options={"weights": str(foreign)}, in_scene=True),
        "weights: carrying code": Case("cannot be read safely", method="r2n2", options={"weights": str(code)},
                                       in_scene=True),
        "weights: missing file": Case("does not exist", method="r2n2", options={"weights": str(tmp / "none.pt")},
                                      in_scene=True),
    }


def too_large(monkeypatch) -> None:
    """A machine with 1 MiB free, where the command line must refuse from the headers before reading voxels."""
    monkeypatch.setattr(device_module, "available_memory_bytes", lambda device: 1024 ** 2)
    monkeypatch.setattr("learnreg.pipeline.load_image",
                        lambda *args, **kwargs: pytest.fail("voxels were read before the memory check"))


def build_cases(tmp: Path, paths: dict) -> dict:
    fixed_image = load_image(paths["fixed"])
    arr = np.asarray(fixed_image.array, np.float32)
    nan, inf = arr.copy(), arr.copy()
    nan[0, 0, :3] = np.nan
    inf[0, 5, 5] = np.inf
    save_image(fixed_image.with_array(nan), tmp / "nan.nrrd")  # ITK reads NaN in single-slice NIfTI back as 0
    save_image(fixed_image.with_array(inf), tmp / "inf.nrrd")
    save_image(fixed_image.with_array(np.ones_like(arr)), tmp / "constant.nii.gz")
    save_image(fixed_image, tmp / "plain.nii")
    lm = lambda name, text: _write(tmp / name, "# CoordinateSystem = LPS\nlabel,x,y,z\n" + text)  # noqa: E731
    n = len(read_landmarks(paths["moving_landmarks"]))

    def relabelled(source, name: str, prefix: str, last: str = "") -> Path:
        """The landmarks of ``source`` as a CSV with labels prefix1..prefixN (the last one ``last`` if given)."""
        points = read_landmarks(source).points
        labels = [f"{prefix}{i + 1}" for i in range(len(points))]
        if last:
            labels[-1] = last
        return lm(name, "".join(f"{label},{x},{y},{z}\n" for label, (x, y, z) in zip(labels, points)))
    volume3d = sample_pairs()["brain3d"].fixed
    cases = {
        # image files
        "missing file": Case("not found", fixed=tmp / "none.nii.gz"),
        "a folder": Case("is a folder", fixed=tmp),
        "empty file": Case("is empty", moving=_write(tmp / "empty.nii.gz", b"")),
        "not an image (text)": Case("not an image, or a corrupt one", moving=_write(tmp / "text.nii.gz", "not an image")),
        "not an image format": Case("not an image format", moving=_write(tmp / "image.txt", "x")),
        "truncated .nii": Case("is truncated", moving=_truncated(tmp / "plain.nii", tmp / "half.nii")),
        "truncated .nii.gz": Case("truncated or corrupt", moving=_truncated(Path(paths["moving"]), tmp / "half.nii.gz")),
        "truncated .nrrd": Case("truncated or corrupt", fixed=_truncated(Path(paths["fixed"]), tmp / "half.nrrd")),
        "zero spacing": Case("voxel spacing", moving=_nrrd_with_spacing(fixed_image, tmp / "zero.nrrd",
                                                                          b"(0,0,0) (0,1,0) (0,0,1)")),
        "NaN spacing": Case("voxel spacing", moving=_nrrd_with_spacing(fixed_image, tmp / "nanspacing.nrrd",
                                                                         b"(nan,0,0) (0,1,0) (0,0,1)")),
        "NaN voxels": Case("NaN", moving=tmp / "nan.nrrd", in_scene=True),
        "Inf voxels": Case("NaN or Inf", fixed=tmp / "inf.nrrd", in_scene=True),
        "constant image": Case("constant", moving=tmp / "constant.nii.gz", in_scene=True),
        "2D vs 3D": Case("same dimensionality", moving=volume3d, in_scene=True),
        "same file twice": Case("same file", moving=Path(paths["fixed"])),
        # method and options
        "unknown method": Case("unknown method", method="magic", in_scene=True),
        "unknown option": Case("unknown option", options={"colour": "red"}, in_scene=True),
        "bad option value": Case("not a valid int", options={"iterations": "a,b"}, in_scene=True),
        "option value out of range": Case("image_loss", options={"image_loss": "euclid"}, in_scene=True),
        # landmarks
        "landmarks: one file": Case("both", fixed_landmarks=paths["fixed_landmarks"]),
        "landmarks: missing file": Case("not found", fixed_landmarks=tmp / "none.csv",
                                        moving_landmarks=paths["moving_landmarks"]),
        "landmarks: unequal counts": Case("differ in number", fixed_landmarks=paths["fixed_landmarks"],
                                          moving_landmarks=lm("short.csv", "L1,0,0,0\n"), in_scene=True),
        "landmarks: labels that half match": Case("share some labels but not all", fixed_landmarks=relabelled(
            paths["fixed_landmarks"], "fixed_half.csv", "L"), moving_landmarks=relabelled(
                paths["moving_landmarks"], "moving_half.csv", "L", last="X"), in_scene=True),
        "landmarks: outside the image": Case("outside the fixed image", fixed_landmarks=lm("far.csv", "".join(
            f"L{i},9999,0,0\n" for i in range(1, n + 1))), moving_landmarks=paths["moving_landmarks"], in_scene=True),
        "landmarks: unknown coordinate system": Case("unknown coordinate system", fixed_landmarks=_write(
            tmp / "system.csv", "# CoordinateSystem = XYZ\nlabel,x,y,z\nL1,0,0,0\n"),
            moving_landmarks=paths["moving_landmarks"]),
        "landmarks: invalid JSON": Case("is not valid JSON: Expecting", fixed_landmarks=_write(
            tmp / "broken.mrk.json", '{"markups": [ {"controlPoints": [}'), moving_landmarks=paths["moving_landmarks"]),
        "landmarks: not markups JSON": Case("no 'markups' list", fixed_landmarks=_write(
            tmp / "other.mrk.json", '{"points": []}'), moving_landmarks=paths["moving_landmarks"]),
        "landmarks: malformed CSV": Case("must be numbers", fixed_landmarks=lm("letters.csv", "L1,a,b,c\n"),
                                         moving_landmarks=paths["moving_landmarks"]),
        # output folder
        "--out is a file": Case("is not a folder", out=_write(tmp / "taken", "x")),
        "--out inside a file": Case("is a file, not a folder", out=tmp / "taken" / "results"),
        "--out not writable": Case("cannot create or write the output folder", out=Path("/proc/learnreg-results")),
        # the machine
        "--device cuda without a GPU": Case("no GPU", device="cuda", in_scene=True,
                                            patch=lambda mp: mp.setattr("torch.cuda.is_available", lambda: False)),
        "too large for memory": Case("downsample", in_scene=True, patch=too_large),
    }
    cases.update(_weights_cases(tmp))
    return cases


@pytest.fixture(scope="module")
def bad_cases(pair2d, tmp_path_factory):
    _, paths = pair2d
    return paths, build_cases(tmp_path_factory.mktemp("bad"), paths)


#: every case, by name (a test checks that it lists exactly what build_cases makes)
CASE_NAMES = (
    "missing file", "a folder", "empty file", "not an image (text)", "not an image format", "truncated .nii",
    "truncated .nii.gz", "truncated .nrrd", "zero spacing", "NaN spacing", "NaN voxels", "Inf voxels",
    "constant image", "2D vs 3D", "same file twice", "unknown method", "unknown option", "bad option value",
    "option value out of range", "landmarks: one file", "landmarks: missing file", "landmarks: unequal counts",
    "landmarks: labels that half match", "landmarks: outside the image", "landmarks: unknown coordinate system",
    "landmarks: invalid JSON", "landmarks: not markups JSON", "landmarks: malformed CSV", "--out is a file",
    "--out inside a file", "--out not writable", "--device cuda without a GPU", "too large for memory",
    "weights: corrupt file", "weights: one byte flipped", "weights: another method's", "weights: carrying code",
    "weights: missing file")


#: the cases that exist for scene nodes too (``Case.in_scene``)
SCENE_CASES = (
    "NaN voxels", "Inf voxels", "constant image", "2D vs 3D", "unknown method", "unknown option", "bad option value",
    "option value out of range", "landmarks: unequal counts", "landmarks: labels that half match",
    "landmarks: outside the image", "--device cuda without a GPU", "too large for memory", "weights: corrupt file",
    "weights: one byte flipped", "weights: another method's", "weights: carrying code", "weights: missing file")


def test_the_case_list_is_complete(bad_cases):
    _, cases = bad_cases
    assert tuple(cases) == CASE_NAMES
    assert tuple(name for name, case in cases.items() if case.in_scene) == SCENE_CASES


def _argv(case: Case, paths: dict, out: Path) -> list:
    argv = ["register", "--fixed", str(case.fixed or paths["fixed"]), "--moving", str(case.moving or paths["moving"]),
            "--out", str(out), "--quiet", "--method", case.method, "--device", case.device]
    for key, value in case.options.items():
        argv += ["-o", f"{key}={value}"]
    for flag, value in (("--fixed-landmarks", case.fixed_landmarks), ("--moving-landmarks", case.moving_landmarks)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def _digests(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(name, bad_cases, tmp_path, capsys, monkeypatch):
    paths, cases = bad_cases
    case = cases[name]
    if case.patch is not None:
        case.patch(monkeypatch)
    out = case.out or tmp_path / "results"
    watched = [Path(paths["fixed"]).parent, Path(case.fixed or paths["fixed"]).parent]
    before = {folder: _digests(folder) for folder in watched}
    out_before = _digests(out) if out.is_dir() else None

    assert main(_argv(case, paths, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("learnreg: error: ") and "\n" not in err and "Traceback" not in err, err
    assert case.message in err, err
    message = err[len("learnreg: error: "):]
    if case.out is None:
        assert not out.exists()  # nothing written
    else:
        assert (_digests(out) if out.is_dir() else None) == out_before
    assert {folder: _digests(folder) for folder in watched} == before  # inputs unchanged, no leftovers
    assert not (Path(str(paths["fixed"])).parent / "code-ran").exists()

    with pytest.raises(LearnRegError) as raised:  # the Python API: the same exception type and message
        register_files(case.fixed or paths["fixed"], case.moving or paths["moving"], case.method, out,
                       fixed_landmarks=case.fixed_landmarks, moving_landmarks=case.moving_landmarks,
                       device=case.device, options=case.options)
    assert str(raised.value) == message


@pytest.mark.parametrize("name", SCENE_CASES)
def test_bad_input_leaves_a_slicer_scene_unchanged(name, bad_cases, monkeypatch):
    pytest.importorskip("slicer")
    from learnreg.slicer.markups import add_markups_node
    from learnreg.slicer.run import run_registration
    from learnreg.slicer.scene import create_scene
    from learnreg.slicer.volumes import add_volume_node

    paths, cases = bad_cases
    case = cases[name]
    if case.patch is not None:
        case.patch(monkeypatch)
    scene = create_scene()
    fixed, moving = load_image(case.fixed or paths["fixed"]), load_image(case.moving or paths["moving"])
    nodes = {"fixed_node": add_volume_node(scene, fixed, "fixed"), "moving_node": add_volume_node(scene, moving, "moving")}
    if case.fixed_landmarks is not None:
        fixed_points, moving_points = read_landmarks(case.fixed_landmarks), read_landmarks(case.moving_landmarks)
        nodes["fixed_landmarks"] = add_markups_node(scene, fixed_points, "fixed landmarks")
        nodes["moving_landmarks"] = add_markups_node(scene, moving_points, "moving landmarks")
    ids = [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]
    with pytest.raises(LearnRegError, match=re.escape(case.message)):
        run_registration(scene, nodes.pop("fixed_node"), nodes.pop("moving_node"), case.method, case.options,
                         device=case.device, **nodes)
    assert [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())] == ids


# ----------------------------------------------------------------- cancel (Ctrl-C) in every stage
def _interrupt():
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; the command line's handler sets its cancel token


@pytest.mark.parametrize("stage", ["loading", "registering", "adding to the scene", "writing"])
def test_ctrl_c_in_every_stage_exits_130_and_writes_nothing(stage, pair2d, tmp_path, capsys, monkeypatch):
    import learnreg.pipeline as pipeline
    import learnreg.slicer.run as scene_run
    from learnreg.registration import Registrar

    _, paths = pair2d
    if stage == "loading":
        original = pipeline.load_image

        def load_and_interrupt(*args, **kwargs):
            image = original(*args, **kwargs)
            _interrupt()
            return image
        monkeypatch.setattr(pipeline, "load_image", load_and_interrupt)
    elif stage == "registering":
        original_run = Registrar.register

        def register_and_interrupt(self, *args, **kwargs):
            progress = kwargs.get("progress")
            kwargs["progress"] = lambda f, m: (_interrupt() if f > 0.2 else None, progress and progress(f, m))
            return original_run(self, *args, **kwargs)
        monkeypatch.setattr(Registrar, "register", register_and_interrupt)
    elif stage == "adding to the scene":
        original_add = scene_run.add_registration_to_scene

        def add_and_interrupt(*args, **kwargs):
            _interrupt()
            return original_add(*args, **kwargs)
        monkeypatch.setattr(scene_run, "add_registration_to_scene", add_and_interrupt)
    else:
        original_save = pipeline.save_image

        def save_and_interrupt(*args, **kwargs):
            original_save(*args, **kwargs)
            _interrupt()
        monkeypatch.setattr(pipeline, "save_image", save_and_interrupt)
    out = tmp_path / "results"
    before = _digests(Path(paths["fixed"]).parent)
    assert main(["register", "--fixed", str(paths["fixed"]), "--moving", str(paths["moving"]), "--out", str(out),
                 "--quiet", "--device", "cpu", "-o", "iterations=5,5,5"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "learnreg: cancelled; nothing was written"
    assert not out.exists() and not list(tmp_path.glob(".results*"))
    assert _digests(Path(paths["fixed"]).parent) == before
