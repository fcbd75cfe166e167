"""The command line: outputs, bad input (one-line error, exit 2, nothing written, inputs untouched), cancel."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from learnreg import device as device_module
from learnreg.cli import main
from learnreg.errors import RegistrationCancelled
from learnreg.image import save_image
from learnreg.progress import CancelToken
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_pairs


def _digest(paths):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


def _args(paths, out, *extra):
    return ["register", "--fixed", str(paths["fixed"]), "--moving", str(paths["moving"]), "--out", str(out),
            "--quiet", "-o", "iterations=5,5,5", *extra]


def test_methods_lists_classical(capsys):
    assert main(["methods"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("affine", "bspline", "ddf"))


def test_register_writes_all_outputs(pair2d, tmp_path, capsys):
    _, paths = pair2d
    out = tmp_path / "out"
    assert main(_args(paths, out, "--fixed-landmarks", str(paths["fixed_landmarks"]),
                      "--moving-landmarks", str(paths["moving_landmarks"]))) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "scene.mrb", "transform.h5", "warped.nii.gz"]
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"]["scene"] == "scene.mrb" and report["notes"] == []
    for key in ("method", "device", "timings_s", "parameter_count", "tre_mm", "folding"):
        assert key in report
    assert set(report["tre_mm"]["before"]) >= {"mean", "median", "p95", "max"}
    assert {"load", "preprocess", "register", "warp", "write"} <= set(report["timings_s"])
    assert "mean TRE" in capsys.readouterr().out


def test_no_scene_skips_the_bundle(pair2d, tmp_path):
    _, paths = pair2d
    out = tmp_path / "out"
    assert main(_args(paths, out, "--no-scene")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "transform.h5", "warped.nii.gz"]


def _bad_cases(paths, tmp_path):
    nan_image = tmp_path / "nan.nrrd"  # ITK reads NaN in single-slice NIfTI back as 0
    from learnreg.image import load_image

    image = load_image(paths["fixed"])
    arr = np.asarray(image.array, np.float32).copy()
    arr[0, 0, :3] = np.nan
    save_image(image.with_array(arr), nan_image)
    constant = tmp_path / "constant.nii.gz"
    save_image(image.with_array(np.ones_like(arr)), constant)
    far = tmp_path / "far.csv"
    far.write_text("# CoordinateSystem = LPS\nlabel,x,y,z\n" + "".join(f"L{n},9999,0,0\n" for n in range(1, 26)))
    short = tmp_path / "short.csv"
    short.write_text("# CoordinateSystem = LPS\nlabel,x,y,z\nL1,0,0,0\n")
    volume = sample_pairs()["brain3d"].fixed
    return {
        "missing file": (["--fixed", str(tmp_path / "none.nii.gz")], "not found"),
        "NaN voxels": (["--moving", str(nan_image)], "NaN"),
        "constant image": (["--moving", str(constant)], "constant"),
        "2D vs 3D": (["--moving", str(volume)], "same dimensionality"),
        "unknown method": (["--method", "magic"], "unknown method"),
        "bad option": (["-o", "iterations=a,b"], "not a valid int"),
        "unknown option": (["-o", "colour=red"], "unknown option"),
        "landmarks outside": (["--fixed-landmarks", str(far), "--moving-landmarks", str(paths["moving_landmarks"])],
                              "outside the fixed image"),
        "unequal landmarks": (["--fixed-landmarks", str(paths["fixed_landmarks"]), "--moving-landmarks", str(short)],
                              "differ in number"),
        "one landmark file": (["--fixed-landmarks", str(paths["fixed_landmarks"])], "both"),
    }


def test_bad_input_is_one_clear_line_and_writes_nothing(pair2d, tmp_path, capsys):
    _, paths = pair2d
    inputs = [paths[k] for k in ("fixed", "moving", "fixed_landmarks", "moving_landmarks")]
    before = _digest(inputs)
    for name, (override, message) in _bad_cases(paths, tmp_path).items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        argv = _args(paths, out)
        for i in range(0, len(override), 2):
            if override[i] in argv:
                argv[argv.index(override[i]) + 1] = override[i + 1]
            else:
                argv += override[i:i + 2]
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("learnreg: error:") and message in err, (name, err)
        assert "\n" not in err and "Traceback" not in err, name
        assert not out.exists(), name
    assert _digest(inputs) == before


def test_volume_too_large_for_memory(pair2d, tmp_path, capsys, monkeypatch):
    _, paths = pair2d
    monkeypatch.setattr(device_module, "available_memory_bytes", lambda device: 1024 ** 2)
    assert main(_args(paths, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "downsample" in err
    assert not (tmp_path / "out").exists()


def test_cuda_without_gpu_is_refused(pair2d, tmp_path, capsys, monkeypatch):
    import torch

    _, paths = pair2d
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(_args(paths, tmp_path / "out", "--device", "cuda")) == 2
    assert "no GPU" in capsys.readouterr().err


def test_progress_and_cancel(pair2d):
    pair, _ = pair2d
    seen = []
    registrar = create_registrar("bspline", {"iterations": (10, 10, 10)})
    registrar.register(pair.fixed, pair.moving, device="cpu", progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:]))

    token = CancelToken()

    def cancel_midway(fraction, message):
        if fraction > 0.3:
            token.cancel()

    with pytest.raises(RegistrationCancelled):
        registrar.register(pair.fixed, pair.moving, device="cpu", progress=cancel_midway, cancel=token)


def test_demo_runs_on_bundled_pairs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet", "--pairs", "brain2d", "ratlung2d"]) == 0
    for pair in ("brain2d", "ratlung2d"):
        files = sorted(p.name for p in (tmp_path / pair).iterdir())
        assert files == ["overview.png", "report.json", "scene.mrb", "transform.h5", "views.png", "warped.nii.gz"]
    report = json.loads((tmp_path / "brain2d" / "report.json").read_text())
    assert report["tre_mm"]["after"]["mean"] < 0.35 * report["tre_mm"]["before"]["mean"]
