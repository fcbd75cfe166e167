"""The Slicer extension as a Slicer developer builds it: ``cmake`` configure, build and install of the
top-level ``CMakeLists.txt`` against a stand-in ``SlicerConfig.cmake`` (``Testing/cmake``) that takes
Slicer's real directory variables and scripted-module macros from the reference files of v5.8.0 and
v5.10.0; then the build tree and the install tree each load every module as Slicer does, find their own
copy of ``learnreg`` and offer the learned methods (their weights and cards are in the tree).

Also: the package and the module files compile for Python 3.9 (Slicer 5.8) and 3.12 (Slicer 5.10).
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slicer_gui import ROOT, reference_available, reference_path

MODULES = ("R2Register", "ISTNRegister", "CNNRegress")
NETWORK = {"R2Register": "r2n2", "ISTNRegister": "istn", "CNNRegress": "cnnregress"}
VERSIONS = {"v5.8.0": "5.8", "v5.10.0": "5.10"}


def _cmake():
    """cmake on PATH, else the one the test extras install into the virtual environment."""
    beside = Path(sys.executable).with_name("cmake")
    return shutil.which("cmake") or (str(beside) if beside.is_file() else None)


def _run(command, cwd=None) -> str:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"{' '.join(map(str, command))}\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout + completed.stderr


def _tree_report(tag: str, tree: Path) -> dict:
    """Load the modules from ``tree`` in a fresh interpreter that cannot see the checkout's learnreg."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    completed = subprocess.run([sys.executable, "-m", "slicer_gui.tree_check", tag, str(tree)], cwd=ROOT / "Testing",
                               capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_cmake() is None or not reference_available(), reason="needs cmake and Slicer's reference files")
@pytest.mark.parametrize("tag", list(VERSIONS))
def test_extension_configures_builds_installs_and_each_tree_loads_the_modules(tag, tmp_path):
    build, install = tmp_path / "build", tmp_path / "install"
    cmake = _cmake()
    output = _run([cmake, "-S", str(ROOT), "-B", str(build), "--warn-uninitialized",
                   f"-DSlicer_DIR={ROOT / 'Testing' / 'cmake'}", f"-DLEARNREG_SLICER_REFERENCE={reference_path(tag)}",
                   f"-DLEARNREG_SLICER_VERSION={VERSIONS[tag]}"])
    # every variable the extension's own CMake files read is defined (the install rule used an undefined one)
    warnings = re.findall(r"CMake Warning \(dev\) at ([^:\n]+):\d+ \([^)]*\):\s*\n\s*uninitialized variable '([^']+)'",
                          output)
    ours = [(f, v) for f, v in warnings if not Path(f).is_absolute() or Path(f).is_relative_to(ROOT)]
    assert not [(f, v) for f, v in ours if "Testing" not in Path(f).parts], output
    _run([cmake, "--build", str(build)])
    _run([cmake, "--install", str(build), "--prefix", str(install)])

    description = dict(line.split(" ", 1) for line in (build / "LearnReg.s4ext").read_text().splitlines() if " " in line)
    assert description["category"] == "Registration" and description["depends"] == "PyTorch"
    for key in ("homepage", "iconurl", "screenshoturls"):
        assert description[key].startswith("https://") and "TemplateKey" not in description[key], key
    for key in ("iconurl", "screenshoturls"):  # the pictures the index shows are files of this repository
        assert (ROOT / description[key].split("/raw/main/", 1)[1]).is_file(), key

    scripted = f"lib/Slicer-{VERSIONS[tag]}/qt-scripted-modules"
    shipped = sorted(p.name for p in (ROOT / "Resources" / "Models").glob("*.pt"))
    for tree in (build / scripted, install / scripted):
        for module in MODULES:
            for part in (f"{module}.py", f"Resources/UI/{module}.ui", f"Resources/Icons/{module}.png"):
                assert (tree / part).is_file(), f"{tree}: {part}"
        assert (tree / "learnreg" / "slicer" / "panel.py").is_file()
        assert (tree / "learnreg" / "data" / "pairs" / "brain3d" / "fixed.nii.gz").is_file()
        assert sorted(p.name for p in (tree / "Resources" / "Models").glob("*.pt")) == shipped
        for weights in shipped:
            assert (tree / "Resources" / "Models" / weights.replace(".pt", ".card.json")).is_file()
        report = _tree_report(tag, tree)
        assert Path(report["learnreg"]).is_relative_to(tree), report  # the tree's own copy
        assert Path(report["models"]) == tree / "Resources" / "Models"
        for module in MODULES:  # its own network first, then the classical methods and ddfnet: all weights found
            assert report["modules"][module] == [NETWORK[module], "bspline", "affine", "ddf", "ddfnet"], report


def _python_files() -> list:
    return sorted(ROOT.joinpath("learnreg").rglob("*.py")) + [ROOT / m / f"{m}.py" for m in MODULES]


def _interpreter(version: str):
    """A working Python ``version`` interpreter on this machine (pyenv's, else one on PATH), or None."""
    candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")))
    candidates += [found for found in [shutil.which(f"python{version}")] if found]
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", ["3.9", "3.12"])
def test_package_compiles_for_the_pythons_slicer_ships(version):
    """Slicer 5.8 ships Python 3.9 and 5.10 ships 3.12: every file must compile with both."""
    minor = tuple(int(v) for v in version.split("."))
    for path in _python_files():  # the grammar check of this interpreter, as far as it goes
        ast.parse(path.read_text(), str(path), feature_version=minor)
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine")
    code = ("import sys\nfor p in sys.argv[1:]:\n    compile(open(p, encoding='utf-8').read(), p, 'exec', dont_inherit=True)")
    _run([python, "-c", code, *map(str, _python_files())])


def test_new_style_annotations_stay_unevaluated():
    """``X | None`` in an annotation breaks Python 3.9 when evaluated: it may appear only in files with
    ``from __future__ import annotations``, and never in an options dataclass, which
    ``typing.get_type_hints`` evaluates."""
    for path in _python_files():
        tree = ast.parse(path.read_text())
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                     any(a.name == "annotations" for a in n.names) for n in tree.body)
        for node in ast.walk(tree):
            annotation = getattr(node, "annotation", None) or getattr(node, "returns", None)
            if annotation is not None and any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                                              for n in ast.walk(annotation)):
                assert future, f"{path}:{node.lineno} uses 'X | Y' without 'from __future__ import annotations'"
            if isinstance(node, ast.ClassDef) and node.name == "Options":
                text = ast.get_source_segment(path.read_text(), node)
                assert not re.search(r":\s*[^=\n]*\|\s*None", text), f"{path}: Options uses 'X | None'"
