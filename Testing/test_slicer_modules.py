"""Checks, runnable here, of the three Slicer modules that otherwise run only inside Slicer.

- every module file compiles; every ``CMakeLists.txt`` names files that exist;
- every widget the panel code uses (``self.ui.<name>``) exists in each module's ``.ui``, and the ``.ui``
  ``SlicerParameterName`` properties are exactly the parameter node's fields;
- each module's Logic, with Slicer's scripted-module base classes replaced by the smallest stand-ins
  (what Slicer's module loader provides; MRML itself is real, from slicer-core), registers the bundled
  pair in a headless scene through the module's self-test body and creates the expected nodes;
- the module imports without torch (the panel then offers to install it).
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import re
import sys
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("R2Register", "ISTNRegister", "CNNRegress")
PANEL = ROOT / "learnreg" / "slicer" / "panel.py"


def _ui_widgets(module: str) -> dict[str, ET.Element]:
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    return {w.get("name"): w for w in tree.iter("widget")}


def _used_widget_names() -> set[str]:
    names = set()
    for path in [PANEL] + [ROOT / m / f"{m}.py" for m in MODULES]:
        names |= set(re.findall(r"self\.ui\.(\w+)", path.read_text()))
    return names


def _parameter_fields() -> set[str]:
    tree = ast.parse(PANEL.read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "RegistrationParameterNode")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


@pytest.mark.parametrize("module", MODULES)
def test_module_files_compile_and_cmake_names_existing_files(module):
    folder = ROOT / module
    py_compile.compile(str(folder / f"{module}.py"), doraise=True)
    assert (folder / "CMakeLists.txt").read_text().strip() == f"learnreg_add_scripted_module({module})"
    top = (ROOT / "CMakeLists.txt").read_text()
    assert f"add_subdirectory({module})" in top
    function = top[top.index("function(learnreg_add_scripted_module"):top.index("endfunction()")]
    assert "slicerMacroBuildScriptedModule" in function and "slicer_add_python_unittest" in function
    named = set(re.findall(r"(\S*\$\{MODULE_NAME\}\.(?:py|png|ui))", function))
    assert len(named) == 3, named
    for name in named:
        assert (folder / name.replace("${MODULE_NAME}", module)).is_file(), name


@pytest.mark.parametrize("module", MODULES)
def test_every_widget_the_code_uses_is_in_the_ui(module):
    widgets = _ui_widgets(module)
    missing = _used_widget_names() - set(widgets)
    assert not missing, f"{module}.ui lacks {sorted(missing)}"
    bound = set()
    for widget in widgets.values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound.add(prop.find("string").text)
    from learnreg.slicer.panel import OPTIONAL_FIELDS

    fields = _parameter_fields()
    assert bound <= fields and fields - bound <= set(OPTIONAL_FIELDS)  # method controls are optional
    if module == "R2Register":  # R2N2's own controls: most steps and the stopping tolerance
        assert {"steps", "tolerance"} <= bound
    if module == "ISTNRegister":  # ISTN's controls and the structures to evaluate
        assert {"transformation", "variant", "refine_steps", "fixedLabels", "movingLabels"} <= bound


# ----------------------------------------------------------------- the Logic over a headless scene
class _Base:
    """Stand-in for Slicer's ScriptedLoadableModule* base classes (their constructors take an optional parent)."""

    def __init__(self, parent=None):
        self.parent = parent


class _ModuleLogicBase(_Base):
    def getParameterNode(self):
        return None


class _ModuleTestBase(unittest.TestCase):
    """Stand-in for ScriptedLoadableModuleTest: a TestCase whose delayDisplay records the message."""

    messages: list = []

    def delayDisplay(self, message, msec=None):
        self.messages.append(message)


@pytest.fixture()
def module_loader(monkeypatch):
    """Import a module file the way Slicer's loader does, with stand-in base classes."""
    slicer = pytest.importorskip("slicer")
    stand_in = types.ModuleType("slicer.ScriptedLoadableModule")
    stand_in.ScriptedLoadableModule = type("ScriptedLoadableModule", (_Base,), {})
    stand_in.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (_Base,), {})
    stand_in.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (_ModuleLogicBase,), {})
    stand_in.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (_ModuleTestBase,), {"messages": []})
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", stand_in)
    monkeypatch.setattr(slicer, "ScriptedLoadableModule", stand_in, raising=False)

    def load(module: str):
        spec = importlib.util.spec_from_file_location(f"{module}_under_test", ROOT / module / f"{module}.py")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded

    return load


@pytest.mark.parametrize("module", MODULES)
def test_self_test_and_logic_run_over_a_headless_scene(module, module_loader):
    from learnreg.slicer.scene import create_scene

    loaded = module_loader(module)
    for suffix in ("", "Widget", "Logic", "Test"):  # what Slicer's module loader looks up
        assert getattr(loaded, module + suffix).__name__ == module + suffix
    from learnreg.registration import available_methods

    network = {"R2Register": "r2n2", "ISTNRegister": "istn", "CNNRegress": "cnnregress"}.get(module)
    ready = network in available_methods() and available_methods()[network].ready()
    expected = network if ready else "bspline"  # a module's network first, once installed with its weights
    assert getattr(loaded, f"{module}Logic")().methods()[:1] == [expected]
    scene = create_scene()  # becomes slicer.mrmlScene, as the application's scene is inside Slicer
    test_case = getattr(loaded, f"{module}Test")()
    test_case.runTest()  # the module's own self-test: clear the scene, load the bundled pair, register, check
    counts = {c: scene.GetNumberOfNodesByClass(c) for c in (
        "vtkMRMLScalarVolumeNode", "vtkMRMLGridTransformNode", "vtkMRMLTableNode", "vtkMRMLPlotChartNode",
        "vtkMRMLSequenceBrowserNode", "vtkMRMLMarkupsFiducialNode")}
    assert counts["vtkMRMLGridTransformNode"] == 1 and counts["vtkMRMLPlotChartNode"] == 1
    assert counts["vtkMRMLTableNode"] == 2 and counts["vtkMRMLSequenceBrowserNode"] == 1
    active_points = expected == "cnnregress"  # CNNRegress adds its active points and an arrow model per iteration
    assert counts["vtkMRMLMarkupsFiducialNode"] == 3 + active_points and counts["vtkMRMLScalarVolumeNode"] >= 3
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") >= (2 if active_points else 0)
    assert any("Mean TRE" in m for m in test_case.messages) and test_case.messages[-1] == "Test passed"


def test_logic_options_come_from_preset_and_text(module_loader):
    from learnreg.errors import InputError
    from learnreg.slicer.module_logic import parse_option_text, preset_options, supported_options

    assert preset_options("bspline", "Fast") == {"iterations": "50,30,10"}
    assert preset_options("r2n2", "R2N2 paper baseline") == {}
    assert preset_options("bspline", "R2N2 paper baseline")["regulariser"] == "tv"
    assert supported_options("r2n2", {"steps": 10, "tolerance": 0.01}) == {"steps": 10, "tolerance": 0.01}
    assert supported_options("bspline", {"steps": 10, "tolerance": 0.01}) == {}
    assert parse_option_text("iterations=5,5; image_loss=ncc\nlevels=2,1") == {
        "iterations": "5,5", "image_loss": "ncc", "levels": "2,1"}
    with pytest.raises(InputError, match="key=value"):
        parse_option_text("iterations")


def test_module_file_imports_without_torch(module_loader, monkeypatch):
    """Loading a module must not need torch: block it and import the module and its panel code."""
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.") or n.startswith("learnreg")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    loaded = module_loader("R2Register")
    assert loaded.R2RegisterLogic.network_method == "r2n2"
    assert "torch" not in sys.modules or sys.modules["torch"] is None


def test_sample_data_entries_name_existing_files():
    from learnreg.slicer.module_logic import sample_data_sources

    sources = {s["name"]: s for s in sample_data_sources()}
    assert {"LearnReg brain2d", "LearnReg brain3d", "LearnReg ratlung2d"} <= set(sources)
    for source in sources.values():
        assert len(source["files"]) == len(source["node_names"]) in (2, 4)
        assert all(Path(f).is_file() for f in source["files"])
