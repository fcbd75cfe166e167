"""The command line: outputs, help, progress and cancel (every bad input: Testing/test_bad_inputs.py)."""

from __future__ import annotations

import json
import re

import pytest

from learnreg.cli import main
from learnreg.errors import RegistrationCancelled
from learnreg.progress import CancelToken
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_pairs


def _args(paths, out, *extra):
    return ["register", "--fixed", str(paths["fixed"]), "--moving", str(paths["moving"]), "--out", str(out),
            "--quiet", "-o", "iterations=5,5,5", *extra]


def test_methods_lists_classical(capsys):
    assert main(["methods"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("affine", "bspline", "ddf"))


def test_methods_verbose_documents_every_option_in_o_syntax(capsys):
    import dataclasses

    from learnreg.methods import all_methods
    from learnreg.options import option_descriptions, option_value_text

    assert main(["methods", "--verbose"]) == 0
    listed = capsys.readouterr().out
    assert "(4, 2, 1)" not in listed and "-o levels=4,2,1" in listed  # defaults as -o takes them
    assert "mse, ncc or lncc" in listed  # allowed values
    for name, method in all_methods().items():
        descriptions = option_descriptions(method.options)
        for f in dataclasses.fields(method.options):
            assert f"-o {f.name}={option_value_text(f.default)}" in listed, (name, f.name)
            assert descriptions.get(f.name), f"{name}: option {f.name} has no description in its docstring"
            if f.default in ("", None):  # what an empty value means is said
                assert re.search(r"[Ee]mpty|automatic|chosen", descriptions[f.name]), (name, f.name)


def test_version_and_help_name_the_defaults(capsys):
    from learnreg import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"learnreg {__version__}"
    with pytest.raises(SystemExit):
        main(["register", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: bspline" in text and "default: auto" in text and "--log FILE" in text


def test_help_starts_without_torch():
    """``learnreg --help`` answers at once: it imports neither torch nor Slicer's MRML library."""
    import subprocess
    import sys

    code = ("import sys\nfrom learnreg.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'slicer', 'vtk') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_quiet_run_prints_only_its_summary_and_logs_the_libraries(tmp_path, capfd):
    pair = sample_pairs()["brain2d"]
    out, log = tmp_path / "out", tmp_path / "run.log"
    assert main(["register", "--fixed", str(pair.fixed), "--moving", str(pair.moving), "--method", "r2n2",
                 "--out", str(out), "--quiet", "--log", str(log), "--fixed-landmarks", str(pair.fixed_landmarks),
                 "--moving-landmarks", str(pair.moving_landmarks)]) == 0
    captured = capfd.readouterr()  # what reached the terminal, C++ libraries' output included
    assert captured.err == "" and "WARN" not in captured.out
    assert captured.out.splitlines()[0].startswith("r2n2 on ")
    assert "vtkMRMLMarkupsNode" in log.read_text()  # VTK's warnings went to the log


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
