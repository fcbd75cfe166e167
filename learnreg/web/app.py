"""The web page of ``learnreg web``: LearnReg's panel on the left, Slicer's slice views on the right.

Built on trame-slicer (Slicer's scene, displayable managers and views from ``slicer-core``, streamed to
the browser) with Vuetify widgets. Everything the panel does goes through :class:`~learnreg.web.session.
WebSession`, which uses the same bridge as the Slicer modules; this module only lays out the page, keeps
its state in step with the session, and draws the scene's nodes in the views.

Offscreen rendering: without a display, VTK renders through EGL (Mesa's software renderer where there is
no GPU); :func:`serve` sets ``VTK_DEFAULT_OPENGL_WINDOW`` to ``vtkEGLRenderWindow`` unless it is set.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
from pathlib import Path
from typing import Callable, Optional

from learnreg.errors import LearnRegError
from learnreg.slicer.scene import nodes_of_class
from learnreg.web.session import DEFAULT_UPLOAD_LIMIT, DOWNLOADS, InputChoice, WebSession

LOG = logging.getLogger("learnreg.web")
#: the page's inputs, in the order the panel lists them
INPUT_ROLES = ("fixed", "moving", "fixed_landmarks", "moving_landmarks", "fixed_labels", "moving_labels")
_ROLE_TITLES = {"fixed": "Fixed image", "moving": "Moving image", "fixed_landmarks": "Fixed landmarks (optional)",
                "moving_landmarks": "Moving landmarks (optional)", "fixed_labels": "Fixed label map (optional)",
                "moving_labels": "Moving label map (optional)"}
#: how often the page looks at a running job, in seconds
POLL_SECONDS = 0.1


def _tre_chart(table) -> str:
    """A bar chart of TRE per landmark (worst first) as a PNG data URL, from the TRE table's view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in table.columns if c.startswith("TRE")]
    figure, axes = plt.subplots(figsize=(4.2, 2.2), dpi=100)
    count = len(table.rows)
    width = 0.8 / max(len(columns), 1)
    for i, column in enumerate(columns):
        index = table.columns.index(column)
        axes.bar([r + i * width for r in range(count)], [float(row[index]) for row in table.rows], width,
                 label=column.replace("TRE ", "").replace(" (mm)", ""))
    axes.set_xlabel("landmark (worst first)")
    axes.set_ylabel("TRE (mm)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class LearnRegWebApp:
    """The app on a trame server: the scene, the session, the page and its callbacks."""

    def __init__(self, server=None, data_dir: Optional[Path] = None, upload_limit: int = DEFAULT_UPLOAD_LIMIT,
                 initial_pair: Optional[str] = "brain2d") -> None:
        import slicer
        import vtk
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        self.server = server or get_server(client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.state, self.ctrl = self.server.state, self.server.controller
        # creating offscreen views makes VTK warn about its X interactor's resize events, which do not apply
        vtk.vtkObject.GlobalWarningDisplayOff()
        self.slicer_app = SlicerApp()
        # the scene nodes LearnReg adds need these module logics: sequences (a bundle's sequence browser is
        # dropped without it), transforms, tables and plots; kept here, as VTK does not keep them alive
        self._module_logics = [self.slicer_app.register_module_logic(getattr(slicer, class_name)())
                               for class_name in ("vtkSlicerSequencesLogic", "vtkSlicerTransformLogic",
                                                  "vtkSlicerTablesLogic", "vtkSlicerPlotsLogic")]
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layouts = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layouts.register_layout_dict(self._layouts())
        self.layouts.set_layout("2D")
        vtk.vtkObject.GlobalWarningDisplayOn()
        self.session = WebSession(self.slicer_app.scene, data_dir, upload_limit)
        self.initial_pair = initial_pair
        self._upload_parts: list = []
        # the task following the running job, referenced here because the event loop holds tasks only weakly
        self._watcher: Optional[asyncio.Task] = None
        self._loading = False
        self._init_state()
        self._build_ui()
        self.ctrl.on_server_ready.add(self._on_ready)

    # ------------------------------------------------------------- layout and state
    @staticmethod
    def _layouts() -> dict:
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        axial, coronal, sagittal = (ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view(),
                                    ViewLayoutDefinition.sagittal_view())
        return {"2D": Layout(LayoutDirection.Vertical, [axial]),
                "3D": Layout(LayoutDirection.Horizontal,
                             [axial, Layout(LayoutDirection.Vertical, [coronal, sagittal])], ["2", "1"])}

    def _init_state(self) -> None:
        from learnreg.methods import all_methods
        from learnreg.registration import available_methods, warm_up
        from learnreg.slicer.module_logic import PRESETS

        declared, installed = all_methods(), available_methods()
        warm_up()  # torch's first pass, before the page opens rather than in the first run
        self.state.update({
            "trame__title": "LearnReg",
            "pairs": [{"title": f"{name} (bundled)", "value": name} for name in self._pair_names()],
            "pair": None,
            "sources": self.session.sources(),
            **{role: None for role in INPUT_ROLES},
            "methods": [{"title": f"{name}: {declared[name].description}", "value": name}
                        for name in declared if name in installed and installed[name].ready()],
            "method": "bspline",
            "presets": list(PRESETS),
            "preset": "Default",
            "option_text": "",
            "devices": self._devices(),
            "device": "auto",
            "running": False,
            "progress": 0,
            "status": "Choose a pair or files, a method, then Run.",
            "error": "",
            "notes": [],
            "summary": "",
            "tables": [],
            "chart": "",
            "has_result": False,
            "has_transform": False,
            "volumes": [],
            "background": None,
            "foreground": None,
            "opacity": 0.5,
            "glyphs": True,
            "step_count": 0,
            "step": 0,
            "upload_busy": False,
        })
        self.state.change("pair")(self._on_pair)
        self.state.change(*INPUT_ROLES)(self._on_inputs)
        self.state.change("background", "foreground", "opacity")(self._on_overlay)
        self.state.change("glyphs")(self._on_glyphs)
        self.state.change("step")(self._on_step)

    @staticmethod
    def _pair_names() -> list:
        from learnreg.sample_data import sample_pairs

        return list(sample_pairs())

    @staticmethod
    def _devices() -> list:
        import torch

        return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import client, html
        from trame.widgets import vuetify3 as v3

        with SinglePageWithDrawerLayout(self.server, theme="dark", full_height=True) as layout:
            layout.title.set_text("LearnReg")
            layout.drawer.width = 440
            client.Style(".learnreg-table td, .learnreg-table th { font-size: 12px !important; "
                         "padding: 0 6px !important; height: 26px !important; }")
            with layout.toolbar:
                v3.VSpacer()
                html.Span("{{ status }}", classes="text-caption mr-4", id="status")
            with layout.drawer, html.Div(classes="pa-3"):
                self._inputs_ui(v3, html)
                self._method_ui(v3, html)
                self._result_ui(v3, html)
            with layout.content, html.Div(style="height: 100%; display: flex;"):
                self.layouts.initialize_layout_grid(layout)
        self.ui = layout

    def _inputs_ui(self, v3, html) -> None:
        html.Div("Inputs", classes="text-subtitle-2 mb-1")
        v3.VSelect(label="Bundled pair", v_model=("pair",), items=("pairs",), clearable=True, density="compact",
                   hide_details=True, classes="mb-2", id="pair", disabled=("running",))
        with v3.VExpansionPanels(variant="accordion", classes="mb-2"):
            with v3.VExpansionPanel(title="Files", id="files-panel"):
                with v3.VExpansionPanelText():
                    for role in INPUT_ROLES:
                        v3.VSelect(label=_ROLE_TITLES[role], v_model=(role,), items=("sources",), clearable=True,
                                   density="compact", hide_details=True, classes="mb-1", id=f"input-{role}",
                                   disabled=("running",))
                    v3.VFileInput(
                        label="Upload images, landmarks or a scene (.mrb)", multiple=True, density="compact",
                        hide_details=True, id="upload", disabled=("running || upload_busy",), prepend_icon="mdi-upload",
                        change=self._upload_script())

    def _upload_script(self) -> str:
        """The file input's handler: files over the limit are not sent (the server says why); the others go in
        chunks (trame-slicer's loader) to :meth:`_on_upload_chunk`."""
        refused, chunk = self.ctrl.trigger_name(self._on_upload_refused), self.ctrl.trigger_name(self._on_upload_chunk)
        return (f"const files = [...$event.target.files]; "
                f"const big = files.find(f => f.size > {self.session.upload_limit}); "
                f"if (big) {{ trigger('{refused}', [big.name, big.size]); }} "
                f"else {{ upload_busy = true; window.load_files_by_chunks(files, {{trigger_name: '{chunk}'}})"
                ".finally(() => { upload_busy = false; }); }")

    def _method_ui(self, v3, html) -> None:
        html.Div("Method", classes="text-subtitle-2 mb-1")
        v3.VSelect(label="Method", v_model=("method",), items=("methods",), density="compact", hide_details=True,
                   classes="mb-1", id="method", disabled=("running",))
        with html.Div(classes="d-flex mb-1"):
            v3.VSelect(label="Preset", v_model=("preset",), items=("presets",), density="compact", hide_details=True,
                       classes="mr-1", id="preset", disabled=("running",))
            v3.VSelect(label="Device", v_model=("device",), items=("devices",), density="compact",
                       hide_details=True, id="device", disabled=("running",), style="max-width: 110px")
        v3.VTextField(label="Options (name=value; ...)", v_model=("option_text",), density="compact",
                      hide_details=True, classes="mb-2", id="options", disabled=("running",),
                      placeholder="iterations=50,30,10; image_loss=ncc")
        v3.VBtn("{{ running ? 'Cancel' : 'Run' }}", click=self.run_or_cancel, block=True,
                color=("running ? 'warning' : 'primary'",), id="run", classes="mb-2")
        v3.VProgressLinear(v_model=("progress",), v_show=("running",), height=6, color="primary", classes="mb-2",
                           id="progress")
        v3.VAlert(v_show=("error",), text=("error",), type="error", density="compact", classes="mb-2", id="error")
        with html.Div(v_for="note in notes", classes="text-caption text-warning mb-1"):
            html.Span("{{ note }}")

    def _result_ui(self, v3, html) -> None:
        with html.Div(v_show=("volumes.length",)):
            html.Div("View", classes="text-subtitle-2 mt-2 mb-1")
            v3.VSelect(label="Background", v_model=("background",), items=("volumes",), density="compact",
                       hide_details=True, classes="mb-1", id="background")
            v3.VSelect(label="Foreground", v_model=("foreground",), items=("volumes",), density="compact",
                       hide_details=True, classes="mb-1", id="foreground", clearable=True)
            v3.VSlider(label="Opacity", v_model=("opacity",), min=0, max=1, step=0.05, density="compact",
                       hide_details=True, id="opacity")
            v3.VSwitch(label="Displacement glyphs", v_model=("glyphs",), density="compact", hide_details=True,
                       v_show=("has_transform",), id="glyphs", color="primary")
            v3.VSlider(label="Step", v_model=("step",), min=0, max=("Math.max(step_count - 1, 0)",), step=1,
                       density="compact", hide_details=True, v_show=("step_count > 1",), id="step",
                       thumb_label=True)
        with html.Div(v_show=("has_result || tables.length",)):
            html.Div("Result", classes="text-subtitle-2 mt-2 mb-1")
            html.Div("{{ summary }}", classes="text-body-2 mb-2", id="summary")
            with html.Div(v_for="(table, t) in tables", key="t", classes="mb-2"):
                html.Div("{{ table.name }}", classes="text-caption")
                v3.VDataTable(headers=("table.headers",), items=("table.items",), density="compact",
                              items_per_page=-1, hide_default_footer=True, classes="learnreg-table",
                              raw_attrs=[':data-table="table.name"'], style="max-height: 260px; overflow-y: auto")
            html.Img(v_if=("chart",), src=("chart",), style="width: 100%", id="chart")
            with html.Div(v_show=("has_result",), classes="d-flex flex-wrap mt-1"):
                for name in DOWNLOADS:
                    trigger = self.ctrl.trigger_name(self.download)
                    v3.VBtn(name, size="small", variant="tonal", classes="mr-1 mb-1", prepend_icon="mdi-download",
                            id=f"download-{name.replace('.', '-')}",
                            click=f"utils.download('{name}', trigger('{trigger}', ['{name}']), "
                                  "'application/octet-stream')")

    # ------------------------------------------------------------- inputs
    def _on_ready(self, **_) -> None:
        # data loaded before the server is ready leaves the slice views without their lookup tables
        if self.initial_pair:
            self.state.pair = self.initial_pair
            self.state.flush()

    def _on_pair(self, pair=None, **_) -> None:
        if not pair:
            return
        choice = InputChoice.sample(pair)
        self._loading = True
        try:
            self.state.update({role: getattr(choice, role) for role in INPUT_ROLES})
        finally:
            self._loading = False
        self._load(choice)

    def _on_inputs(self, **_) -> None:
        if self._loading:
            return
        choice = InputChoice(**{role: self.state[role] for role in INPUT_ROLES})
        if choice == self.session.choice:
            return
        if self.state.pair and choice != InputChoice.sample(self.state.pair):
            self.state.pair = None
        if choice.fixed and choice.moving:
            self._load(choice)

    def _load(self, choice: InputChoice) -> None:
        try:
            inputs = self.session.load_inputs(choice)
        except LearnRegError as error:
            self._show_error(error)
            return
        self.state.error = ""
        self.state.notes = []
        self._clear_result()
        self.layouts.set_layout("2D" if inputs.fixed.ndim == 2 else "3D")
        self._refresh_volumes(background=inputs.fixed_node, foreground=inputs.moving_node)
        self._fit_views()
        self.state.status = f"Loaded {inputs.names[0]} and {inputs.names[1]}: Run to register."

    async def _on_upload_chunk(self, files: list) -> None:
        from trame.app.file_upload import ClientFile

        if files:
            self._upload_parts.extend(files)
            return
        parts, self._upload_parts = self._upload_parts, []
        for part in parts:
            upload = ClientFile(part)
            try:
                if upload.name.lower().endswith(".mrb"):
                    self._open_scene_upload(upload.name, upload.content)
                else:
                    source = self.session.receive_upload(upload.name, upload.content or b"")
                    self.state.sources = self.session.sources()
                    self.state.status = f"Uploaded {upload.name}: choose it under Files."
                    self.state.error = ""
                    LOG.info("upload %s kept as %s", upload.name, source)
            except LearnRegError as error:
                self._show_error(error)
        self.state.flush()

    def _open_scene_upload(self, name: str, content: bytes) -> None:
        self.session.open_uploaded_scene(name, content)
        self._loading = True
        try:
            self.state.update({"pair": None, **{role: None for role in INPUT_ROLES}})
        finally:
            self._loading = False
        self._clear_result()
        self._show_scene_result()
        self.state.error = ""
        self.state.status = f"Opened {name}."

    def _on_upload_refused(self, name: str, size: int) -> None:
        """The page found a file over the limit and did not send it."""
        try:
            self.session.check_upload_size(name, int(size))
        except LearnRegError as error:
            self._show_error(error)

    # ------------------------------------------------------------- runs
    async def run_or_cancel(self) -> None:
        if self.session.running:
            self.session.job.cancel()
            self.state.status = "Cancelling..."
            return
        from learnreg.slicer.module_logic import method_options

        try:
            options = method_options(self.state.method, self.state.preset, None, self.state.option_text or "")
            job = self.session.start_run(self.state.method, options, self.state.device)
        except LearnRegError as error:
            self._show_error(error)
            return
        self.state.update({"running": True, "progress": 0, "error": "", "notes": [],
                           "status": f"{self.state.method}: starting"})
        self.state.flush()
        # watched in a task of its own: the server handles the page's next message (Cancel) meanwhile
        self._watcher = asyncio.get_running_loop().create_task(self._watch(job))

    async def _watch(self, job) -> None:
        """Show the job's events on the page until it ends (its last event is read after its thread ended)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            ended = not job.running
            with self.state:
                for event in job.poll():
                    self._show_event(event)
            if ended:
                return

    def _show_event(self, event) -> None:
        if event.kind == "progress":
            fraction, message = event.payload
            self.state.progress = round(100 * fraction)
            self.state.status = message
        elif event.kind == "done":
            self._finish(event.payload)
        elif event.kind == "cancelled":
            self.state.update({"running": False, "status": "Cancelled: the scene is as it was."})
        elif event.kind == "error":
            self.state.running = False
            self._show_error(event.payload)
        else:  # failed: a defect, not a user's mistake; its traceback goes to the server's log
            error, trace = event.payload
            LOG.error("registration failed:\n%s", trace)
            self.state.running = False
            self.state.error = f"internal error: {error!r} (details in the server's log)"

    def _finish(self, result) -> None:
        try:
            record = self.session.finish_run(result)
        except LearnRegError as error:
            self.state.running = False
            self._show_error(error)
            return
        registration = record.registration
        self.state.running = False
        self.state.progress = 100
        self.state.notes = list(registration.notes)
        self._refresh_volumes(background=registration.inputs.fixed_node, foreground=registration.warped_volume)
        self._show_tables()
        self.state.has_result = True
        self._show_glyphs()
        steps = registration.steps
        self.state.step_count = 0 if steps is None else steps.browser.GetNumberOfItems()
        self.state.step = max(self.state.step_count - 1, 0)
        tre = record.report.get("tre_mm")
        text = f"{result.method} on {result.device}: {record.seconds:.2f} s"
        if tre:
            text += f"; mean TRE {tre['before']['mean']:.2f} -> {tre['after']['mean']:.2f} mm"
        self.state.summary = text
        self.state.status = "Done: " + text

    # ------------------------------------------------------------- what the views show
    def _refresh_volumes(self, background=None, foreground=None) -> None:
        volumes = [n for n in nodes_of_class(self.slicer_app.scene, "vtkMRMLScalarVolumeNode")
                   if not n.IsA("vtkMRMLLabelMapVolumeNode")]
        self.state.volumes = [{"title": n.GetName(), "value": n.GetID()} for n in volumes]
        self.state.background = background.GetID() if background is not None else None
        self.state.foreground = foreground.GetID() if foreground is not None else None
        self._on_overlay()

    def _on_overlay(self, **_) -> None:
        scene, display = self.slicer_app.scene, self.slicer_app.display_manager
        background = scene.GetNodeByID(self.state.background) if self.state.background else None
        foreground = scene.GetNodeByID(self.state.foreground) if self.state.foreground else None
        display.show_volume_in_slice_background(background)
        display.show_volume_in_slice_foreground(foreground)
        for view in self.slicer_app.view_manager.get_slice_views():
            view.set_foreground_opacity(float(self.state.opacity))

    def _result_transform(self):
        """The latest result's transform: the run's, or in an opened bundle the last one LearnReg made."""
        if self.session.last_run is not None:
            return self.session.last_run.registration.transform
        made = [node for node in nodes_of_class(self.slicer_app.scene, "vtkMRMLTransformNode")
                if node.GetAttribute("LearnReg.method")]
        return made[-1] if made else None

    def _show_glyphs(self) -> None:
        self.state.has_transform = self._result_transform() is not None
        self.state.glyphs = True
        self._on_glyphs()

    def _on_glyphs(self, **_) -> None:
        transform = self._result_transform()
        if transform is None:
            return
        for i in range(transform.GetNumberOfDisplayNodes()):
            transform.GetNthDisplayNode(i).SetVisibility2D(bool(self.state.glyphs))

    def _browser(self):
        browsers = nodes_of_class(self.slicer_app.scene, "vtkMRMLSequenceBrowserNode")
        return browsers[-1] if browsers else None

    def _on_step(self, step=None, **_) -> None:
        browser = self._browser()
        if browser is None or not self.state.step_count:
            return
        index = int(self.state.step)
        if browser.GetSelectedItemNumber() == index:
            return
        browser.SetSelectedItemNumber(index)
        # scrubbing shows the steps: the moving image warped up to this step, the step's displacement over it
        import vtk

        sequences = vtk.vtkCollection()
        browser.GetSynchronizedSequenceNodes(sequences, True)
        proxies = {sequences.GetItemAsObject(i).GetName(): browser.GetProxyNode(sequences.GetItemAsObject(i))
                   for i in range(sequences.GetNumberOfItems())}
        warped = next((p for n, p in proxies.items() if n.endswith("step warped")), None)
        displacement = next((p for n, p in proxies.items() if n.endswith("step displacement")), None)
        if warped is not None and displacement is not None and self.state.foreground != displacement.GetID():
            self._refresh_volumes(background=warped, foreground=displacement)
            self._fit_views()
        self.state.status = f"Step {index + 1} of {self.state.step_count}"

    def _show_tables(self) -> None:
        tables = self.session.result_tables()
        self.state.tables = [{"name": t.name,
                              "headers": [{"title": c, "key": f"c{i}"} for i, c in enumerate(t.columns)],
                              "items": [{f"c{i}": v for i, v in enumerate(row)} for row in t.rows]} for t in tables]
        tre = next((t for t in tables if t.name.endswith("TRE per landmark")), None)
        self.state.chart = _tre_chart(tre) if tre is not None else ""

    def _show_scene_result(self) -> None:
        """After opening a bundle: its volumes, tables and step browser (the fixed volume under the warped)."""
        volumes = nodes_of_class(self.slicer_app.scene, "vtkMRMLScalarVolumeNode")
        warped = next((n for n in volumes if n.GetAttribute("LearnReg.method")), None)
        fixed = volumes[0] if volumes else None
        three_d = fixed is not None and min(fixed.GetImageData().GetDimensions()) > 1
        self.layouts.set_layout("3D" if three_d else "2D")
        self._refresh_volumes(background=fixed, foreground=warped)
        self._show_tables()
        self._show_glyphs()
        browser = self._browser()
        self.state.step_count = 0 if browser is None else browser.GetNumberOfItems()
        self.state.step = max(self.state.step_count - 1, 0)
        self._fit_views()

    def _fit_views(self) -> None:
        """Fit the views to the volumes now, and again once the page has laid out a changed layout (a view
        fitted before the browser sized it keeps the old size's zoom)."""
        reset = self.slicer_app.display_manager.reset_views
        reset()
        loop = asyncio.get_event_loop()
        for delay in (0.5, 1.5):
            loop.call_later(delay, reset)

    def _clear_result(self) -> None:
        self.state.update({"has_result": False, "has_transform": False, "tables": [], "chart": "", "summary": "",
                           "step_count": 0, "step": 0, "progress": 0})

    def _show_error(self, error: Exception) -> None:
        self.state.error = str(error)
        self.state.status = "Error"
        LOG.info("refused: %s", error)

    # ------------------------------------------------------------- downloads
    def download(self, name: str):
        try:
            return self.server.protocol.addAttachment(self.session.download(name))
        except LearnRegError as error:
            self._show_error(error)
            self.state.flush()
            return None


def serve(host: str = "127.0.0.1", port: int = 8080, data_dir: Optional[Path] = None,
          upload_limit: int = DEFAULT_UPLOAD_LIMIT, initial_pair: Optional[str] = "brain2d",
          announce: Optional[Callable[[str], None]] = None) -> None:
    """Start the app and serve it until interrupted (``learnreg web``); ``announce`` is called with the page's
    address once the server listens (``port`` 0 takes any free port)."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    os.environ["TRAME_ARGS"] = ""  # the command line's arguments are learnreg's, not trame's
    for name in ("trame_server", "trame_client", "wslink", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    app = LearnRegWebApp(data_dir=data_dir, upload_limit=upload_limit, initial_pair=initial_pair)
    if announce is not None:
        app.ctrl.on_server_ready.add(lambda **_: announce(f"http://{host}:{app.server.port}/"))
    try:
        app.server.start(host=host, port=port, open_browser=False, timeout=0, show_connection_info=False)
    finally:
        app.session.close()
