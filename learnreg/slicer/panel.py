"""The Qt side of the three LearnReg module panels, shared by ``R2Register``, ``ISTNRegister`` and ``CNNRegress``.

Each module's Widget class is ``ScriptedLoadableModuleWidget`` + ``VTKObservationMixin`` +
:class:`RegistrationPanel`; it loads its own ``.ui`` file and hands over its Logic. The panel binds the
``.ui`` widgets to a parameter node through their ``SlicerParameterName`` properties, turns Apply into
Cancel while a registration runs (progress bar and status line, events processed between steps), shows
errors from learnreg in a dialog, and offers to install PyTorch (through the PyTorch extension when it is
there, else pip) instead of failing. Qt, ctk and the application are imported only when a panel is
built, so this module imports anywhere.
"""

from __future__ import annotations

import functools
import traceback
from typing import Optional

from learnreg.slicer.module_logic import PRESETS, missing_requirements, register_sample_data

DEVICES = ("auto", "cpu", "cuda")


def describe_module(parent, title: str, summary: str, paper: str) -> None:
    """Fill in a module's title, category, help and acknowledgement (``parent`` is the module's parent)."""
    parent.title = title
    parent.categories = ["Registration.LearnReg"]
    parent.dependencies = []
    parent.contributors = ["LearnReg developers"]
    parent.helpText = (
        f"{summary}<br><br>Choose the fixed and moving volumes and a method, then Apply. The result is a new "
        "warped volume on the fixed grid and a grid transform (resampling direction: put the moving volume "
        "under it to align it), drawn as displacement arrows. With fixed and moving landmarks, the table lists "
        "the target registration error per landmark, worst first. Methods that work in steps can be scrubbed "
        "with the step slider. The same runs from the command line: <tt>learnreg register</tt>.")
    parent.acknowledgementText = f"Method: {paper}. Sample data: Colin27 (BSD-3), ITK example images (Apache-2.0)."


def sample_data_on_startup(icon_path: str) -> None:
    """Register the bundled pairs in Sample Data once the application has started."""
    import slicer

    slicer.app.connect("startupCompleted()", lambda: register_sample_data(icon_path))


@functools.cache
def parameter_node_class():
    """The parameter node wrapper every panel uses (fields named as the ``.ui`` ``SlicerParameterName``)."""
    from slicer import vtkMRMLGridTransformNode, vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode
    from slicer.parameterNodeWrapper import parameterNodeWrapper

    @parameterNodeWrapper
    class RegistrationParameterNode:
        fixedVolume: vtkMRMLScalarVolumeNode
        movingVolume: vtkMRMLScalarVolumeNode
        method: str = ""
        preset: str = "Default"
        options: str = ""
        device: str = "auto"
        warpedVolume: vtkMRMLScalarVolumeNode
        outputTransform: vtkMRMLGridTransformNode
        fixedLandmarks: vtkMRMLMarkupsFiducialNode
        movingLandmarks: vtkMRMLMarkupsFiducialNode
        # method controls a module's .ui may offer (R2Register: R2N2's most steps and stopping tolerance;
        # ISTNRegister: transformation model, variant and refinement steps; CNNRegress: active-point density
        # and passes)
        steps: int = 0
        tolerance: float = 0.002
        transformation: str = "affine"
        variant: str = "istn-i"
        refine_steps: int = 50
        density_percent: float = 0.9
        passes: int = 2
        # label maps of the structures to evaluate (every module)
        fixedLabels: vtkMRMLScalarVolumeNode
        movingLabels: vtkMRMLScalarVolumeNode

    return RegistrationParameterNode


#: parameter-node fields passed to the method as options when the module's .ui has a control for them
PANEL_OPTIONS = ("steps", "tolerance", "transformation", "variant", "refine_steps", "density_percent", "passes")
#: parameter-node fields a module's .ui may leave out (the other modules' method controls)
OPTIONAL_FIELDS = PANEL_OPTIONS


class RegistrationPanel:
    """Behaviour of a LearnReg module panel; mixed into the module's Widget class."""

    def setup_panel(self, ui_path: str, logic) -> None:
        import slicer

        panel = slicer.util.loadUI(ui_path)
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = logic
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._cancel = None
        self._browser = None
        self.ui.deviceComboBox.addItems(list(DEVICES))
        self.ui.presetComboBox.addItems(list(PRESETS))
        self.ui.progressBar.setVisible(False)
        self.ui.stepSlider.setEnabled(False)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.installButton.connect("clicked(bool)", self.onInstallButton)
        self.ui.stepSlider.connect("valueChanged(double)", self.onStepChanged)
        self.refresh_requirements()
        self.initializeParameterNode()

    # ----------------------------------------------------------------- parameter node (Slicer template)
    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk_modified_event(), self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        import slicer

        parameters = parameter_node_class()(self.logic.getParameterNode())
        if not parameters.fixedVolume:
            parameters.fixedVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not parameters.method and self.ui.methodComboBox.count:
            parameters.method = self.ui.methodComboBox.itemText(0)
        self.setParameterNode(parameters)

    def setParameterNode(self, parameters) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk_modified_event(), self._checkCanApply)
        self._parameterNode = parameters
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk_modified_event(), self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        if self._cancel is not None:
            return  # running: the button is Cancel
        p = self._parameterNode
        missing = missing_requirements()
        ready = bool(p and p.fixedVolume and p.movingVolume and p.method) and not missing
        self.ui.applyButton.enabled = ready
        if missing:
            self.ui.applyButton.toolTip = f"Install {', '.join(missing)} first"
        elif not ready:
            self.ui.applyButton.toolTip = "Choose a fixed and a moving volume"
        else:
            self.ui.applyButton.toolTip = f"Register with {p.method}"

    # ----------------------------------------------------------------- dependencies
    def refresh_requirements(self) -> None:
        missing = missing_requirements()
        self.ui.dependencyFrame.setVisible(bool(missing))
        if missing:
            self.ui.dependencyLabel.text = (f"LearnReg needs {', '.join(missing)}, which is not installed in "
                                            "Slicer's Python yet.")
            return
        self.ui.methodComboBox.clear()
        self.ui.methodComboBox.addItems(self.logic.methods())

    def onInstallButton(self) -> None:
        import slicer

        missing = missing_requirements()
        if "torch" in missing and hasattr(slicer.modules, "pytorchutils"):
            import PyTorchUtils

            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
                return
            missing.remove("torch")
        if missing and slicer.util.confirmOkCancelDisplay(
                f"Install {', '.join(missing)} into Slicer's Python with pip? This downloads packages and can take "
                "several minutes.", windowTitle="LearnReg"):
            with _busy_cursor():
                slicer.util.pip_install(" ".join(missing))
        self.refresh_requirements()
        self._checkCanApply()

    # ----------------------------------------------------------------- running
    def onApplyButton(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self.ui.statusLabel.text = "Cancelling..."
            return
        import slicer

        from learnreg.errors import LearnRegError, RegistrationCancelled
        from learnreg.progress import CancelToken

        p = self._parameterNode
        self._set_running(CancelToken())
        try:
            result = self.logic.process(
                slicer.mrmlScene, p.fixedVolume, p.movingVolume, p.method, p.preset, p.options, p.device,
                warped_volume=p.warpedVolume, transform=p.outputTransform, fixed_landmarks=p.fixedLandmarks,
                moving_landmarks=p.movingLandmarks, progress=self._on_progress, cancel=self._cancel,
                panel_options=self._panel_options(), fixed_labels=p.fixedLabels, moving_labels=p.movingLabels)
        except RegistrationCancelled:
            self.ui.statusLabel.text = "Cancelled; the scene is as it was."
        except LearnRegError as error:
            self.ui.statusLabel.text = "Not registered: see the message."
            slicer.util.errorDisplay(str(error), windowTitle=f"{self.moduleName}: cannot register")
        except Exception as error:  # an unexpected failure: the message, with details for a bug report
            self.ui.statusLabel.text = "Failed: see the message."
            slicer.util.errorDisplay(f"Registration failed unexpectedly: {error}", windowTitle=self.moduleName,
                                     detailedText=traceback.format_exc())
        else:
            self._show_result(result)
        finally:
            self._set_running(None)

    def _panel_options(self) -> dict:
        """Values of the method controls this module's .ui has (see :data:`PANEL_OPTIONS`)."""
        bound = {w.property("SlicerParameterName") for w in vars(self.ui).values() if hasattr(w, "property")}
        return {name: getattr(self._parameterNode, name) for name in PANEL_OPTIONS if name in bound}

    def _set_running(self, cancel) -> None:
        self._cancel = cancel
        running = cancel is not None
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = True
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.outputsCollapsibleButton.enabled = not running
        if not running:
            self._checkCanApply()

    def _on_progress(self, fraction: float, message: str) -> None:
        import slicer

        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message
        slicer.app.processEvents()  # lets Cancel be clicked between steps

    def _show_result(self, result) -> None:
        import slicer

        p = self._parameterNode
        slicer.util.setSliceViewerLayers(background=p.fixedVolume, foreground=result.warped_volume,
                                         foregroundOpacity=0.5)
        r = result.result
        text = f"Done in {r.timings.get('total', 0.0):.1f} s on {r.device}"
        if r.steps:
            text += f", {len(r.steps)} steps"
        text += f"; the transformation has {r.parameter_count:,} parameters."
        if result.review is not None:
            text += (f" Mean TRE {result.review.before['mean']:.2f} -> {result.review.after['mean']:.2f} mm; "
                     f"worst: {result.review.table.GetCellText(0, 0)}.")
            self.ui.treTableView.setMRMLTableNode(result.review.table)
            slicer.modules.plots.logic().ShowChartInLayout(result.review.chart)
        if result.structures is not None:
            self.ui.structuresTableView.setMRMLTableNode(result.structures.table)
            before, after = (result.structures.metrics[k] for k in (next(iter(result.structures.metrics)),
                                                                     list(result.structures.metrics)[-1]))
            text += " Dice " + ", ".join(f"label {label} {before[label]['dice']:.2f} -> {after[label]['dice']:.2f}"
                                         for label in before) + "."
        if result.images:
            text += f" Also made: {', '.join(node.GetName() for node in result.images)}."
        if result.active_points is not None:
            text += (f" {result.active_points.points.GetNumberOfControlPoints():,} active points, with their "
                     f"predicted displacements as arrows (x{result.active_points.scale:.1f}).")
        self._browser = result.steps.browser if result.steps is not None else None
        self.ui.stepSlider.setEnabled(self._browser is not None)
        if self._browser is not None:
            count = self._browser.GetNumberOfItems()
            self.ui.stepSlider.maximum = max(count - 1, 0)
            self.ui.stepSlider.value = count - 1
        for note in result.notes:
            text += f"\nNote: {note}."
        self.ui.statusLabel.text = text

    def onStepChanged(self, value: float) -> None:
        if self._browser is not None:
            self._browser.SetSelectedItemNumber(int(value))


def vtk_modified_event() -> int:
    import vtk

    return vtk.vtkCommand.ModifiedEvent


class _busy_cursor:
    """Show the wait cursor while a long call runs."""

    def __enter__(self):
        import qt
        import slicer

        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)

    def __exit__(self, *exc):
        import slicer

        slicer.app.restoreOverrideCursor()


def define_module(name: str, network_method: str, summary: str, paper: str, module_file: str,
                  self_test_options: Optional[dict] = None) -> dict:
    """The four classes Slicer's module loader looks for in ``<name>.py``, after the scripted-module template:
    ``<name>`` (the module: title, help, sample data), ``<name>Widget`` (this panel on ``Resources/UI/<name>.ui``),
    ``<name>Logic`` (:class:`~learnreg.slicer.module_logic.RegistrationLogic` offering ``network_method``) and
    ``<name>Test`` (runs :func:`~learnreg.slicer.module_logic.run_self_test` in the application's scene).

    ``self_test_options`` are the network's options for the self-test (e.g. ISTN's B-spline model for the
    deformable bundled pair). The module file puts the classes into its namespace:
    ``globals().update(define_module(...))``.
    """
    import os

    import slicer
    from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                               ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
    from slicer.util import VTKObservationMixin

    from learnreg.slicer.module_logic import RegistrationLogic, run_self_test

    icon = os.path.join(os.path.dirname(os.path.abspath(module_file)), "Resources", "Icons", f"{name}.png")

    def module_init(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describe_module(self.parent, name, summary, paper)
        sample_data_on_startup(icon)

    def logic_init(self):
        ScriptedLoadableModuleLogic.__init__(self)

    logic_class = type(f"{name}Logic", (RegistrationLogic, ScriptedLoadableModuleLogic),
                       {"__init__": logic_init, "network_method": network_method,
                        "self_test_options": dict(self_test_options or {})})

    def widget_init(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def widget_setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.setup_panel(self.resourcePath(f"UI/{name}.ui"), logic_class())

    def test_set_up(self):
        slicer.mrmlScene.Clear()

    def test_run(self):
        self.setUp()
        self.test_register_bundled_pair()

    def test_register_bundled_pair(self):
        self.delayDisplay("Registering the bundled brain2d pair")
        run_self_test(slicer.mrmlScene, logic_class(), self.delayDisplay)
        self.delayDisplay("Test passed")

    classes = {
        name: type(name, (ScriptedLoadableModule,), {"__init__": module_init}),
        f"{name}Widget": type(f"{name}Widget", (RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin),
                              {"__init__": widget_init, "setup": widget_setup}),
        f"{name}Logic": logic_class,
        f"{name}Test": type(f"{name}Test", (ScriptedLoadableModuleTest,), {
            "setUp": test_set_up, "runTest": test_run, "test_register_bundled_pair": test_register_bundled_pair}),
    }
    module_name = os.path.splitext(os.path.basename(module_file))[0]
    for cls in classes.values():
        cls.__module__ = module_name  # Slicer derives resource paths and test names from it
    return classes
