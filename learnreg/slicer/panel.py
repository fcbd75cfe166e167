"""The Qt side of the three LearnReg module panels, shared by ``R2Register``, ``ISTNRegister`` and ``CNNRegress``.

Each module's Widget class is :class:`RegistrationPanel` + ``ScriptedLoadableModuleWidget`` +
``VTKObservationMixin`` with its parameter-node class (declared in the module file, see
:mod:`learnreg.slicer.parameters`). The panel:

- binds the ``.ui`` widgets to the parameter node through their ``SlicerParameterName`` properties with
  the wrapper's public ``connectParametersToGui`` (which returns its tag in Slicer 5.8 as in 5.10, where
  ``connectGui`` returns nothing in 5.8), once per parameter node, so connectors never pile up;
- fills the method combo box from the installed methods off the GUI thread (that imports torch) and
  keeps it in step with the parameter node's ``method`` by hand;
- runs a registration as a :class:`~learnreg.slicer.background.BackgroundJob` and polls it every
  50 ms: progress reaches the bar as the registrar reports it, Apply turns into Cancel, the rest of the
  panel is locked, and Cancel, closing the scene or leaving the module make the panel idle at once with
  the scene as it was;
- then adds the result to the scene on the GUI thread, in parts, reporting and processing events between
  them (Cancel there removes what was added);
- offers to install what is missing: PyTorch through the PyTorch extension (with learnreg's version
  requirement), never a bare pip install of torch; scipy with pip.

Qt, ctk and the application are imported only when a panel is built, so this module imports anywhere.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

from learnreg.slicer.module_logic import TORCH_REQUIREMENT, method_options, missing_requirements, requirement_message

#: how often the panel polls a running job (ms)
POLL_INTERVAL_MS = 50
#: the part of the overall progress bar the registration fills; adding the result to the scene fills the rest
REGISTRATION_SHARE = 0.9
#: the parts of the panel locked while a registration runs (Apply stays: it is Cancel then)
LOCKED_WHILE_RUNNING = ("inputsCollapsibleButton", "outputsCollapsibleButton", "landmarksCollapsibleButton",
                        "structuresCollapsibleButton", "stepSlider", "installButton")


@dataclass
class PanelRun:
    """One Apply, from the click to the idle panel.

    ``updates`` holds ``(time, fraction, message)`` for every progress update the panel showed, from the
    worker's reports and from building the scene (the panel benchmark reads the gaps); ``phase`` is
    ``registering`` (the job runs), ``building`` (the result is being added to the scene) or ``ended``.
    """

    inputs: Any
    method: str
    outputs: dict
    job: Any = None
    phase: str = "registering"
    started_at: float = field(default_factory=time.monotonic)
    updates: list = field(default_factory=list)
    build_cancel: Any = None
    cancelled_at: Optional[float] = None
    idle_at: Optional[float] = None
    outcome: str = ""
    registration: Any = None


class RegistrationPanel:
    """Behaviour of a LearnReg module panel, mixed in first into the module's Widget class
    (``class R2RegisterWidget(RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin)``),
    which sets ``parameter_node_class`` and ``logic_class``. The panel is ``Resources/UI/<module>.ui``."""

    parameter_node_class: Any = None
    logic_class: Any = None

    def __init__(self, parent=None) -> None:
        super().__init__(parent)  # ScriptedLoadableModuleWidget, which initialises VTKObservationMixin in turn

    def setup(self) -> None:
        super().setup()  # ScriptedLoadableModuleWidget's (the developer section in developer mode)
        self.setup_panel(self.resourcePath(f"UI/{self.moduleName}.ui"), self.logic_class())

    def setup_panel(self, ui_path: str, logic) -> None:
        import qt
        import slicer

        self.panel = slicer.util.loadUI(ui_path)
        self.layout.addWidget(self.panel)
        self.ui = slicer.util.childWidgetVariables(self.panel)
        self.panel.setMRMLScene(slicer.mrmlScene)
        self.logic = logic
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._parameterObserver = None
        self._syncing_method = False
        self._run: Optional[PanelRun] = None
        self.last_run: Optional[PanelRun] = None
        self._methods_job = None
        self._browser = None
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self.ui.progressBar.setVisible(False)
        self.ui.stepSlider.setEnabled(False)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.installButton.connect("clicked(bool)", self.onInstallButton)
        self.ui.stepSlider.connect("valueChanged(double)", self.onStepChanged)
        self.ui.methodComboBox.connect("currentIndexChanged(int)", self.onMethodChosen)
        self.refresh_requirements()
        self.initializeParameterNode()

    # ----------------------------------------------------------------- module life (Slicer's template)
    def cleanup(self) -> None:
        self._cancel_run("Cancelled: the module was closed.")
        self._timer.stop()
        self.setParameterNode(None)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self._cancel_run("Cancelled: you left the module; the scene is as it was.")

    def onSceneStartClose(self, caller, event) -> None:
        self._cancel_run("Cancelled: the scene was closed.")
        self._browser = None
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        import slicer

        self.setParameterNode(self.parameter_node_class(self.logic.getParameterNode()))
        if not self._parameterNode.fixedVolume:
            self._parameterNode.fixedVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def _gui_mapping(self) -> dict:
        import qt

        mapping = {}
        for widget in self.panel.findChildren(qt.QWidget):
            name = widget.property("SlicerParameterName")
            if name:
                mapping[name] = widget
        return mapping

    def setParameterNode(self, parameters) -> None:
        """Bind the panel to ``parameters`` (None: unbind). Binding the node already bound does nothing."""
        import vtk

        if parameters is not None and self._parameterNode is not None \
                and parameters.parameterNode is self._parameterNode.parameterNode:
            return
        if self._parameterNode is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNode.RemoveObserver(self._parameterObserver)
            self._parameterNodeGuiTag = self._parameterObserver = None
        self._parameterNode = parameters
        if parameters is not None:
            self._parameterNodeGuiTag = parameters.connectParametersToGui(self._gui_mapping())
            self._parameterObserver = parameters.AddObserver(vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()
        else:
            self._checkCanApply()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._sync_method_combo()
        self._checkCanApply()

    # ----------------------------------------------------------------- the method list (filled at run time)
    def onMethodChosen(self, index: int) -> None:
        if self._syncing_method or self._parameterNode is None or index < 0:
            return
        self._parameterNode.method = self.ui.methodComboBox.itemText(index)

    def _sync_method_combo(self) -> None:
        combo, p = self.ui.methodComboBox, self._parameterNode
        if p is None or combo.count == 0:
            return
        index = combo.findText(p.method)
        if index < 0:  # not offered here (none chosen yet, or its weights are gone): the module's first method
            p.method = combo.itemText(0)
            return
        if combo.currentIndex != index:
            self._syncing_method = True
            try:
                combo.currentIndex = index
            finally:
                self._syncing_method = False

    def _start_loading_methods(self) -> None:
        from learnreg.slicer.background import BackgroundJob

        self.ui.methodComboBox.clear()
        self.ui.statusLabel.text = "Loading the methods (PyTorch and the installed networks)..."
        self._methods_job = BackgroundJob(lambda progress, cancel: self.logic.prepare(), "LearnReg methods").start()
        self._timer.start()

    def _methods_loaded(self, events) -> None:
        import slicer

        for event in events:
            if event.kind == "done":
                self._syncing_method = True
                try:
                    self.ui.methodComboBox.addItems(event.payload)
                finally:
                    self._syncing_method = False
                self.ui.statusLabel.text = ""
                self._methods_job = None
                self._sync_method_combo()
                self._checkCanApply()
            elif event.kind in ("error", "failed", "cancelled"):
                self._methods_job = None
                detail = event.payload[0] if event.kind == "failed" else event.payload
                self.ui.statusLabel.text = f"The methods could not be loaded: {detail}"
                slicer.util.errorDisplay(f"LearnReg could not load its methods: {detail}", windowTitle=self.moduleName)

    def _checkCanApply(self, caller=None, event=None) -> None:
        if self._run is not None:
            return  # running: the button is Cancel
        p = self._parameterNode
        missing = self._missing
        ready = bool(p and p.fixedVolume and p.movingVolume and p.method) and not missing \
            and self._methods_job is None and self.ui.methodComboBox.count > 0
        self.ui.applyButton.enabled = ready
        if missing:
            self.ui.applyButton.toolTip = requirement_message(missing) + " Click Install first."
        elif self._methods_job is not None:
            self.ui.applyButton.toolTip = "Loading the methods..."
        elif not ready:
            self.ui.applyButton.toolTip = "Choose a fixed and a moving volume"
        else:
            self.ui.applyButton.toolTip = f"Register with {p.method}"

    # ----------------------------------------------------------------- dependencies
    def refresh_requirements(self) -> None:
        """Look for the required packages (when the panel is built and after Install: not on every change of
        a parameter) and show what is missing, or start loading the methods."""
        self._missing = missing = missing_requirements()
        self.ui.dependencyFrame.setVisible(bool(missing))
        if missing:
            self.ui.dependencyLabel.text = requirement_message(missing)
            return
        self._start_loading_methods()

    def onInstallButton(self) -> None:
        import slicer

        missing = missing_requirements()
        if any(r.startswith("torch") for r in missing):
            if not hasattr(slicer.modules, "pytorchutils"):
                slicer.util.errorDisplay(
                    f"LearnReg installs PyTorch ({TORCH_REQUIREMENT}) through the PyTorch extension, which picks the "
                    "build for your GPU. Install 'PyTorch' from View > Extensions Manager, restart Slicer, then click "
                    "Install here again.", windowTitle=f"{self.moduleName}: PyTorch extension needed")
                return
            import PyTorchUtils

            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                                  torchVersionRequirement=TORCH_REQUIREMENT)
            if torch is None:
                return
        rest = [r for r in missing if not r.startswith("torch")]
        if rest and slicer.util.confirmOkCancelDisplay(
                f"Install {', '.join(rest)} into Slicer's Python with pip? This downloads packages and can take "
                "a minute.", windowTitle="LearnReg"):
            with _busy_cursor():
                slicer.util.pip_install(" ".join(rest))
        self.refresh_requirements()
        self._checkCanApply()

    # ----------------------------------------------------------------- running
    def onApplyButton(self) -> None:
        if self._run is not None:
            self._cancel_run("Cancelled; the scene is as it was.")
            return
        from learnreg.errors import LearnRegError
        from learnreg.slicer.background import BackgroundJob
        from learnreg.slicer.parameters import method_option_values

        p = self._parameterNode
        outputs = {"warped_volume": p.warpedVolume, "transform": p.outputTransform}
        try:
            inputs = self.logic.read_inputs(p.fixedVolume, p.movingVolume, fixed_landmarks=p.fixedLandmarks,
                                            moving_landmarks=p.movingLandmarks, fixed_labels=p.fixedLabels,
                                            moving_labels=p.movingLabels, **outputs)
            options = method_options(p.method, p.preset.value, method_option_values(p), p.options)
            self.logic.check_options(p.method, options)
        except LearnRegError as error:
            self._show_error(error)
            return
        run = PanelRun(inputs, p.method, outputs)
        run.job = BackgroundJob(self.logic.registration_work(inputs, p.method, options, p.device.value),
                                f"LearnReg {p.method}")
        self._run = run
        self._set_running(True)
        self._show_progress(run, 0.0, f"{p.method}: starting")
        run.job.start()
        self._timer.start()

    def _poll(self) -> None:
        """Read what the jobs posted (every ``POLL_INTERVAL_MS`` while one runs)."""
        if self._methods_job is not None:
            self._methods_loaded(self._methods_job.poll())
        run = self._run
        if run is not None and run.phase == "registering":
            for event in run.job.poll():
                if self._run is not run:
                    break
                self._handle(run, event)
        if self._run is None and self._methods_job is None:
            self._timer.stop()

    def _handle(self, run: PanelRun, event) -> None:
        from learnreg.errors import RegistrationCancelled

        if event.kind == "progress":
            fraction, message = event.payload
            self._show_progress(run, REGISTRATION_SHARE * fraction, message)
        elif event.kind == "done":
            self._build_scene(run, event.payload)
        elif event.kind == "cancelled":
            self._finish(run, "cancelled", "Cancelled; the scene is as it was.")
        elif event.kind == "error":
            self._finish(run, "error", "Not registered: see the message.")
            self._show_error(event.payload)
        elif event.kind == "failed":
            error, details = event.payload
            if isinstance(error, RegistrationCancelled):
                self._finish(run, "cancelled", "Cancelled; the scene is as it was.")
                return
            self._finish(run, "failed", "Failed: see the message.")
            self._show_failure(error, details)

    def _build_scene(self, run: PanelRun, result) -> None:
        import slicer

        from learnreg.errors import LearnRegError, RegistrationCancelled
        from learnreg.progress import CancelToken

        run.phase = "building"
        run.build_cancel = CancelToken()

        def progress(fraction: float, message: str) -> None:
            self._show_progress(run, REGISTRATION_SHARE + (1 - REGISTRATION_SHARE) * fraction,
                                f"Adding to the scene: {message}")
            slicer.app.processEvents()  # Cancel, closing the scene and leaving the module act here

        try:
            registration = self.logic.add_result(slicer.mrmlScene, run.inputs, result, progress=progress,
                                                 cancel=run.build_cancel, **run.outputs)
        except RegistrationCancelled:
            self._finish(run, "cancelled", run.outcome or "Cancelled; the scene is as it was.")
            return
        except LearnRegError as error:
            self._finish(run, "error", "Not registered: see the message.")
            self._show_error(error)
            return
        except Exception as error:  # an unexpected failure: the message, with details for a bug report
            self._finish(run, "failed", "Failed: see the message.")
            self._show_failure(error, traceback.format_exc())
            return
        run.registration = registration
        self._finish(run, "done", None)
        self._show_result(registration)

    def _cancel_run(self, message: str) -> None:
        """Stop the run now: the job ends at its next check (its late events are dropped); while the result is
        being added to the scene, the builder removes what it added at its next report."""
        run = self._run
        if run is None:
            return
        run.cancelled_at = time.monotonic()
        run.job.cancel()
        if run.phase == "building":
            run.outcome = message
            run.build_cancel.cancel()
            self.ui.statusLabel.text = "Cancelling..."
            return
        self._finish(run, "cancelled", message)

    def _finish(self, run: PanelRun, outcome: str, message: Optional[str]) -> None:
        run.phase = "ended"
        run.outcome = outcome
        run.idle_at = time.monotonic()
        self.last_run = run
        if self._run is run:
            self._run = None
        self._set_running(False)
        if message:
            self.ui.statusLabel.text = message

    def _set_running(self, running: bool) -> None:
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = True
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        for name in LOCKED_WHILE_RUNNING:
            getattr(self.ui, name).enabled = not running
        if not running:
            self.ui.stepSlider.setEnabled(self._browser is not None)
            self._checkCanApply()

    def _show_progress(self, run: PanelRun, fraction: float, message: str) -> None:
        run.updates.append((time.monotonic(), fraction, message))
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message

    def _show_error(self, error) -> None:
        import slicer

        self.ui.statusLabel.text = "Not registered: see the message."
        slicer.util.errorDisplay(str(error), windowTitle=f"{self.moduleName}: cannot register")

    def _show_failure(self, error, details: str) -> None:
        import slicer

        slicer.util.errorDisplay(f"Registration failed unexpectedly: {error}", windowTitle=self.moduleName,
                                 detailedText=details)

    def _show_result(self, registration) -> None:
        import slicer

        inputs = registration.inputs
        slicer.util.setSliceViewerLayers(background=inputs.fixed_node, foreground=registration.warped_volume,
                                         foregroundOpacity=0.5)
        r = registration.result
        text = f"Done in {r.timings.get('total', 0.0):.1f} s on {r.device}"
        if r.steps:
            text += f", {len(r.steps)} steps"
        text += f"; the transformation has {r.parameter_count:,} parameters."
        if registration.review is not None:
            review = registration.review
            one_pass_text = "" if review.one_pass is None else f"{review.one_pass['mean']:.2f} (one pass) -> "
            text += (f" Mean TRE {review.before['mean']:.2f} -> {one_pass_text}{review.after['mean']:.2f} mm; "
                     f"worst: {review.table.GetCellText(0, 0)}.")
            self.ui.treTableView.setMRMLTableNode(review.table)
            if hasattr(slicer.modules, "plots"):
                slicer.modules.plots.logic().ShowChartInLayout(review.chart)
        if registration.structures is not None:
            self.ui.structuresTableView.setMRMLTableNode(registration.structures.table)
            stages = list(registration.structures.metrics)
            before, after = registration.structures.metrics[stages[0]], registration.structures.metrics[stages[-1]]
            text += " Dice " + ", ".join(f"label {label} {before[label]['dice']:.2f} -> {after[label]['dice']:.2f}"
                                         for label in before) + "."
        if registration.images:
            text += f" Also made: {', '.join(node.GetName() for node in registration.images)}."
        if registration.active_points is not None:
            points = registration.active_points
            text += (f" {points.points.GetNumberOfControlPoints():,} active points, with their predicted "
                     f"displacements as arrows (x{points.scale:.1f}).")
        self._browser = registration.steps.browser if registration.steps is not None else None
        self.ui.stepSlider.setEnabled(self._browser is not None)
        if self._browser is not None:
            count = self._browser.GetNumberOfItems()
            self.ui.stepSlider.maximum = max(count - 1, 0)
            self.ui.stepSlider.value = count - 1
        for note in registration.notes:
            text += f"\nNote: {note}."
        self.ui.statusLabel.text = text

    def onStepChanged(self, value: float) -> None:
        if self._browser is not None and self._browser.GetScene() is not None:
            self._browser.SetSelectedItemNumber(int(value))


class _busy_cursor:
    """Show the wait cursor while a long call runs."""

    def __enter__(self):
        import qt
        import slicer

        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)

    def __exit__(self, *exc):
        import slicer

        slicer.app.restoreOverrideCursor()
