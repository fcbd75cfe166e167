"""The three module panels as Slicer runs them: Slicer's own Python layer at v5.8.0 and v5.10.0 (its
parameter-node wrapper, ``slicer.util``, the module base classes, Sample Data), a real ``slicer-core``
scene, PySide6 standing in for PythonQt and minimal CTK/qMRML widget stand-ins (``Testing/slicer_gui``).

Each test plays a user: open the module, choose nodes and options in the widgets, Apply, wait, Cancel in
each phase, close the scene or leave the module mid-run; and checks what the user would see and what the
scene holds.
"""

from __future__ import annotations

import sys
import time
import typing

import numpy as np
import pytest

pytest.importorskip("slicer")
pytest.importorskip("PySide6")

from slicer_gui import ROOT, TAGS, reference_available, start_slicer  # noqa: E402

MODULES = ("R2Register", "ISTNRegister", "CNNRegress")
NETWORK = {"R2Register": "r2n2", "ISTNRegister": "istn", "CNNRegress": "cnnregress"}

pytestmark = pytest.mark.skipif(not reference_available(), reason="Slicer's reference files are not beside the checkout")


@pytest.fixture(params=TAGS)
def slicer_app(request):
    session = start_slicer(request.param)
    yield session
    for instance in session.modules.values():  # no worker may outlive its test
        widget = instance.widget
        if widget is not None and widget.last_run is not None and widget.last_run.job is not None:
            widget.last_run.job.wait(30)
    session.stop()


def open_module(session, module: str):
    """Load the module, show its panel, and wait for the method list (loaded off the GUI thread)."""
    instance = session.load_module(ROOT / module / f"{module}.py")
    session.enter(module)
    widget = instance.widget
    session.wait_until(lambda: widget._methods_job is None, 120, "loading the method list")
    return widget


def add_pair(scene, name: str = "brain2d"):
    """A bundled pair as nodes (volumes and landmark point lists), as Sample Data would load it."""
    from learnreg.slicer.module_logic import add_sample_pair

    return add_sample_pair(scene, name)


def choose_inputs(widget, inputs) -> None:
    """Pick the pair in the panel's selectors, as a user clicks them."""
    for selector, node in ((widget.ui.fixedVolumeSelector, inputs.fixed_node),
                           (widget.ui.movingVolumeSelector, inputs.moving_node),
                           (widget.ui.fixedLandmarksSelector, inputs.fixed_landmarks_node),
                           (widget.ui.movingLandmarksSelector, inputs.moving_landmarks_node)):
        selector.chooseIndex(selector.findData(node.GetID()))


def choose_method(widget, method: str) -> None:
    combo = widget.ui.methodComboBox
    combo.currentIndex = combo.findText(method)


def node_ids(scene) -> list:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def within_range(parameter_class, name):
    from slicer.parameterNodeWrapper import WithinRange

    hint = typing.get_type_hints(parameter_class, include_extras=True)[name]
    return next((a for a in getattr(hint, "__metadata__", ()) if isinstance(a, WithinRange)), None)


# ----------------------------------------------------------------- opening the module (rows 1, 2, 7, 8, 9)
@pytest.mark.parametrize("module", MODULES)
def test_module_opens_binds_every_control_and_keeps_ranges(slicer_app, module):
    import slicer

    widget = open_module(slicer_app, module)
    p = widget._parameterNode
    parameter_class = type(p)
    mapping = widget._gui_mapping()
    assert set(mapping) == set(parameter_class.allParameters) - {"method"}  # every field has its widget
    assert set(p._parameterGUIs[widget._parameterNodeGuiTag]) == set(mapping)
    assert not widget.ui.methodComboBox.property("SlicerParameterName")  # filled at run time, synchronised by hand

    methods = [widget.ui.methodComboBox.itemText(i) for i in range(widget.ui.methodComboBox.count)]
    assert methods == widget.logic.methods() and methods[0] == NETWORK[module] and p.method == methods[0]
    choose_method(widget, "affine")
    assert p.method == "affine"
    p.method = "ddf"
    assert widget.ui.methodComboBox.currentText == "ddf"

    for name in parameter_class.allParameters:  # Slicer's connectors must keep the ranges the panel needs
        bounds = within_range(parameter_class, name)
        if bounds is not None:
            assert (mapping[name].minimum, mapping[name].maximum) == (bounds.minimum, bounds.maximum), name
    if module == "R2Register":
        assert widget.ui.stepsSpinBox.specialValueText == "trained length" and widget.ui.stepsSpinBox.minimum == 0

    from learnreg.slicer.parameters import Device, Preset

    assert [widget.ui.presetComboBox.itemText(i) for i in range(widget.ui.presetComboBox.count)] == \
        [preset.value for preset in Preset]
    widget.ui.presetComboBox.currentIndex = 1
    assert p.preset is Preset.Fast
    p.device = Device.cpu
    assert widget.ui.deviceComboBox.currentText == Device.cpu.label()

    from learnreg.slicer.module_logic import method_options
    from learnreg.slicer.parameters import COMMON_FIELDS, method_option_values

    own = [name for name in parameter_class.allParameters if name not in COMMON_FIELDS]
    assert own, f"{module} has no controls of its own"
    for name in own:  # each of the module's own controls, changed in its widget, reaches the method's options
        control = mapping[name]
        if isinstance(control, __import__("qt").QComboBox):  # an enum: its last member
            control.currentIndex = control.count - 1
            expected = list(type(getattr(p, name)))[-1].value
        else:  # a number: its largest allowed value
            control.value = control.maximum
            expected = control.maximum
        assert method_option_values(p)[name] == expected, name
        assert method_options(NETWORK[module], "Default", method_option_values(p), "")[name] == expected, name

    labels = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "structures")
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "volume")
    for selector in (widget.ui.fixedLabelsSelector, widget.ui.movingLabelsSelector):
        assert labels in selector.nodes()  # the selector has the scene (row 7)
    assert labels not in widget.ui.fixedVolumeSelector.nodes() and volume in widget.ui.fixedVolumeSelector.nodes()

    for _ in range(3):  # leaving and re-entering never piles up connectors (row 9)
        slicer_app.exit(module)
        slicer_app.enter(module)
    assert len(widget._parameterNode._parameterGUIs) == 1
    writes = []
    widget._parameterNode.AddObserver(__import__("vtk").vtkCommand.ModifiedEvent, lambda *a: writes.append(1))
    widget.ui.optionsLineEdit.text = "iterations=5,5"
    assert widget._parameterNode.options == "iterations=5,5" and len(writes) == 1


# ----------------------------------------------------------------- a whole run
@pytest.mark.parametrize("module", MODULES)
def test_apply_registers_in_the_background_and_fills_the_scene(slicer_app, module):
    import slicer

    from learnreg.slicer.volumes import image_from_volume_node

    widget = open_module(slicer_app, module)
    inputs = add_pair(slicer.mrmlScene)
    choose_inputs(widget, inputs)
    moving_before = image_from_volume_node(inputs.moving_node).array.copy()
    p = widget._parameterNode
    if slicer_app.tag == "v5.10.0":  # the module's network on one tag, a quick classical run on the other
        choose_method(widget, NETWORK[module])
        widget.ui.presetComboBox.currentIndex = widget.ui.presetComboBox.findText("Fast")
    else:
        choose_method(widget, "affine")
        widget.ui.optionsLineEdit.text = "iterations=10,10"
    assert widget.ui.applyButton.enabled

    widget.ui.applyButton.click()
    assert widget.ui.applyButton.text == "Cancel" and widget.ui.applyButton.enabled
    for name in ("inputsCollapsibleButton", "outputsCollapsibleButton", "landmarksCollapsibleButton",
                 "structuresCollapsibleButton"):
        assert not getattr(widget.ui, name).enabled, name  # locked while the run is on (row 11)
    slicer_app.wait_until(lambda: widget._run is None, 300, "the registration")

    run = widget.last_run
    assert run.outcome == "done", widget.ui.statusLabel.text
    assert widget.ui.applyButton.text == "Apply" and widget.ui.inputsCollapsibleButton.enabled
    assert widget.ui.statusLabel.text.startswith("Done in")
    registration = run.registration
    assert registration.warped_volume.GetScene() is slicer.mrmlScene
    assert registration.transform.GetScene() is slicer.mrmlScene
    assert widget.ui.treTableView.mrmlTableNode() is registration.review.table
    assert registration.review.after["mean"] < registration.review.before["mean"]
    assert np.array_equal(image_from_volume_node(inputs.moving_node).array, moving_before)
    fractions = [f for _, f, _ in run.updates]
    assert len(fractions) >= 3 and fractions[-1] == pytest.approx(1.0)
    assert p.method in (NETWORK[module], "affine")


# ----------------------------------------------------------------- cancel, scene close, leaving (rows 10, 11)
def _start(slicer_app, module: str, method: str, options: str = "", pair: str = "brain2d"):
    import slicer

    widget = open_module(slicer_app, module)
    inputs = add_pair(slicer.mrmlScene, pair)
    choose_inputs(widget, inputs)
    choose_method(widget, method)
    widget.ui.optionsLineEdit.text = options
    return widget, node_ids(slicer.mrmlScene)


def _interrupt_in(slicer_app, widget, phase: str, interrupt) -> None:
    """Apply, then call ``interrupt()`` as soon as the run is in ``phase`` (loading: at once; registering: after
    the first progress the registrar reported; building: at the first part added to the scene)."""
    if phase == "building":
        show = widget._show_progress

        def show_and_interrupt(run, fraction, message):
            show(run, fraction, message)
            if message.startswith("Adding to the scene") and run.cancelled_at is None and not interrupted:
                interrupted.append(True)
                interrupt()
        interrupted = []
        widget._show_progress = show_and_interrupt
    widget.ui.applyButton.click()
    if phase == "loading":
        interrupt()
    elif phase == "registering":
        slicer_app.wait_until(lambda: widget._run is not None and any(f > 0.05 for _, f, _ in widget._run.updates),
                              120, "the first progress report")
        assert widget._run.phase == "registering"
        interrupt()
    slicer_app.wait_until(lambda: widget._run is None, 120, "the panel going idle")


@pytest.mark.parametrize("phase", ["loading", "registering", "building"])
def test_cancel_in_every_phase_leaves_the_scene_as_it_was(slicer_app, phase):
    import slicer

    # bspline reports every iteration; r2n2's steps make the scene build in several parts
    method, options = ("r2n2", "") if phase == "building" else ("bspline", "iterations=400,400,400")
    widget, before = _start(slicer_app, "R2Register", method, options)
    _interrupt_in(slicer_app, widget, phase, widget.ui.applyButton.click)
    run = widget.last_run
    assert run.outcome == "cancelled" and run.phase == "ended"
    assert run.idle_at - run.cancelled_at < 1.0  # idle within a second of the click
    assert widget.ui.statusLabel.text.startswith("Cancelled") and widget.ui.applyButton.text == "Apply"
    assert node_ids(slicer.mrmlScene) == before
    assert run.job.wait(10)  # the worker ends on its own soon after
    slicer_app.process_events(0.2)  # its late events change nothing
    assert node_ids(slicer.mrmlScene) == before and widget._run is None


@pytest.mark.parametrize("phase", ["registering", "building"])
def test_closing_the_scene_mid_run_cancels_cleanly(slicer_app, phase):
    import slicer

    method, options = ("r2n2", "") if phase == "building" else ("bspline", "iterations=400,400,400")
    widget, _ = _start(slicer_app, "R2Register", method, options)
    _interrupt_in(slicer_app, widget, phase, slicer.mrmlScene.Clear)
    assert widget.last_run.outcome == "cancelled"
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLGridTransformNode") == 0
    assert widget._parameterNode is not None and widget._parameterNode.parameterNode.GetScene() is slicer.mrmlScene
    assert not widget.ui.applyButton.enabled  # nothing to register in the new scene
    assert widget.last_run.job.wait(10)


def test_leaving_the_module_cancels_the_run(slicer_app):
    import slicer

    widget, before = _start(slicer_app, "R2Register", "bspline", "iterations=400,400,400")
    _interrupt_in(slicer_app, widget, "registering", lambda: slicer_app.exit("R2Register"))
    assert widget.last_run.outcome == "cancelled" and node_ids(slicer.mrmlScene) == before


def test_a_mistake_gets_one_message_and_no_run(slicer_app, caplog):
    import slicer

    widget, before = _start(slicer_app, "CNNRegress", "bspline", "iterations=banana")
    widget.ui.applyButton.click()
    assert widget._run is None and widget.ui.applyButton.text == "Apply"
    assert "iterations" in caplog.text and node_ids(slicer.mrmlScene) == before
    widget.ui.optionsLineEdit.text = ""
    p = widget._parameterNode
    p.movingVolume = p.fixedVolume  # the same node twice
    widget.ui.applyButton.click()
    assert widget._run is None and "same node" in caplog.text


# ----------------------------------------------------------------- the module's own self-test
@pytest.mark.parametrize("module", MODULES)
def test_module_self_test_passes(slicer_app, module):
    import slicer

    instance = slicer_app.load_module(ROOT / module / f"{module}.py", setup_widget=False)
    instance.module.runTest(msec=0)  # Slicer's SelfTests run it this way
    scene = slicer.mrmlScene
    assert scene.GetNumberOfNodesByClass("vtkMRMLGridTransformNode") == 1
    assert scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode") == 1
    active_points = module == "CNNRegress"  # CNNRegress adds its active points and an arrow model per pass
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == 3 + active_points


# ----------------------------------------------------------------- Sample Data (row 6)
def test_sample_data_lists_each_pair_once_with_real_files(slicer_app, tmp_path):
    import SampleData
    import slicer

    from learnreg.sample_data import sample_pairs

    for module in MODULES:  # each module registers the pairs once the application has started
        slicer_app.load_module(ROOT / module / f"{module}.py", setup_widget=False)
    slicer.app.startupCompleted.emit()
    sources = SampleData.SampleDataLogic.sampleDataSourcesByCategory("LearnReg")
    names = [s.sampleName for s in sources]
    assert sorted(names) == sorted(f"LearnReg {name}" for name in sample_pairs())
    slicer.mrmlScene.GetCacheManager().SetRemoteCacheDirectory(str(tmp_path))
    logic = SampleData.SampleDataLogic()
    brain3d = next(s for s in sources if s.sampleName == "LearnReg brain3d")
    assert brain3d.loadFileTypes == ["VolumeFile"] * 4 + ["MarkupsFile"] * 2
    for source in sources:
        assert source.thumbnailFileName and (ROOT / source.thumbnailFileName).is_file()
        for uri, file_name, checksum in zip(source.uris, source.fileNames, source.checksums):
            path = logic.downloadFileIntoCache(uri, file_name, checksum)  # copies and verifies the SHA-256
            assert (tmp_path / file_name).is_file() and path.endswith(file_name)


# ----------------------------------------------------------------- installing what is missing (row 13)
def test_install_uses_the_pytorch_extension_with_a_version_requirement(slicer_app, monkeypatch, caplog):
    import types

    import slicer

    import learnreg.slicer.panel as panel

    widget = open_module(slicer_app, "R2Register")
    pip_calls, torch_calls = [], []
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements: pip_calls.append(requirements))
    monkeypatch.setattr(panel, "missing_requirements", lambda: ["torch>=2.2", "scipy"])
    widget.ui.installButton.click()  # no PyTorch extension: a message naming it, and no pip install of torch
    assert "Extensions Manager" in caplog.text and pip_calls == []

    class PyTorchUtilsLogic:  # the PyTorch extension's logic, as far as LearnReg calls it
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                         torchvisionVersionRequirement=None):
            torch_calls.append((askConfirmation, torchVersionRequirement))
            return object()
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    slicer.modules.pytorchutils = object()
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: True)  # the user clicks OK
    widget.ui.installButton.click()
    assert torch_calls == [(True, ">=2.2")] and pip_calls == ["scipy"]  # scipy alone through pip
    del slicer.modules.pytorchutils


def test_requirements_name_an_old_torch(monkeypatch):
    import importlib.metadata

    from learnreg.slicer import module_logic

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.1.2+cu118")
    assert module_logic.missing_requirements() == ["torch>=2.2"]
    assert "installed: 2.1.2" in module_logic.requirement_message(["torch>=2.2"])
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.13.0+cpu")
    assert module_logic.missing_requirements() == []


def test_module_opens_without_torch(slicer_app, monkeypatch):
    """Before PyTorch is installed the module opens, says what is missing, and imports no torch."""
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.") or n.startswith("learnreg")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError; find_spec finds none
    instance = slicer_app.load_module(ROOT / "R2Register" / "R2Register.py")
    slicer_app.enter("R2Register")
    widget = instance.widget
    assert widget.ui.dependencyFrame.isVisibleTo(widget.panel)
    assert "PyTorch >=2.2" in widget.ui.dependencyLabel.text and not widget.ui.applyButton.enabled
    assert widget.ui.methodComboBox.count == 0 and widget._methods_job is None


# ----------------------------------------------------------------- the logic without the GUI
def test_logic_options_come_from_preset_controls_and_text():
    from learnreg.errors import InputError
    from learnreg.slicer.module_logic import method_options, parse_option_text, preset_options, supported_options

    assert preset_options("bspline", "Fast") == {"iterations": "50,30,10"}
    assert preset_options("r2n2", "R2N2 paper baseline") == {}
    assert preset_options("bspline", "R2N2 paper baseline")["regulariser"] == "tv"
    assert supported_options("r2n2", {"steps": 10, "tolerance": 0.01}) == {"steps": 10, "tolerance": 0.01}
    assert supported_options("bspline", {"steps": 10, "tolerance": 0.01}) == {}
    assert method_options("bspline", "Fast", {"steps": 3}, "iterations=5,5") == {"iterations": "5,5"}
    assert parse_option_text("iterations=5,5; image_loss=ncc\nlevels=2,1") == {
        "iterations": "5,5", "image_loss": "ncc", "levels": "2,1"}
    with pytest.raises(InputError, match="key=value"):
        parse_option_text("iterations")


def test_background_job_reports_and_stops_at_its_next_check():
    from learnreg.errors import InputError
    from learnreg.slicer.background import BackgroundJob

    def work(progress, cancel):
        for index in range(1000):
            progress(index / 1000, f"step {index}")
            time.sleep(0.002)
        return "finished"

    job = BackgroundJob(work).start()
    time.sleep(0.05)
    job.cancel()
    assert job.wait(1.0)
    kinds = [event.kind for event in job.poll()]
    assert kinds[0] == "progress" and kinds[-1] == "cancelled"
    assert job.ended_at - job.started_at < 0.5

    def mistake(progress, cancel):
        raise InputError("the fixed image is empty")
    job = BackgroundJob(mistake).start()
    job.wait(1.0)
    (event,) = job.poll()
    assert event.kind == "error" and str(event.payload) == "the fixed image is empty"
