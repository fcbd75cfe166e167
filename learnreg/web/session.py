"""What the web app does below its page: choose inputs, run one registration at a time, read the result from
the scene, open a bundle, make the downloads. No trame here (tested without a browser).

A :class:`WebSession` works on one Slicer scene (trame-slicer's, in the app) through the same bridge as the
Slicer modules and the command line (:mod:`learnreg.slicer`): inputs become volume and point-list nodes
(:func:`~learnreg.slicer.run.add_input_nodes`), a run is a :class:`~learnreg.slicer.background.BackgroundJob`
whose result :func:`~learnreg.slicer.run.add_registration_to_scene` adds, and the tables the page shows are
read back from the scene's table nodes, so a bundle the command line wrote shows the same way.

Input files are named by *sources*, strings the page's lists hold: ``sample:<pair>/<file>`` (a bundled
pair), ``data:<path>`` (relative to the folder given with ``learnreg web --data``; a path that leads out of
it is refused) and ``upload:<name>`` (a file uploaded from the browser, checked on arrival).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from learnreg.errors import InputError
from learnreg.image import check_pair, image_suffix, load_image
from learnreg.landmarks import pair_landmarks, read_landmarks
from learnreg.sample_data import sample_pairs

#: what a user may upload, by how the name ends: images, landmark files, and scene bundles
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
LANDMARK_SUFFIXES = (".mrk.json", ".fcsv", ".csv")
SCENE_SUFFIX = ".mrb"
#: the largest upload accepted, in bytes (``learnreg web --max-upload-mb`` changes it)
DEFAULT_UPLOAD_LIMIT = 512 * 1024 * 1024
#: the files the page offers for download after a run
DOWNLOADS = ("transform.h5", "warped.nii.gz", "scene.mrb", "report.json")


@dataclass
class InputChoice:
    """The sources of one registration's inputs (None: not given)."""

    fixed: Optional[str] = None
    moving: Optional[str] = None
    fixed_landmarks: Optional[str] = None
    moving_landmarks: Optional[str] = None
    fixed_labels: Optional[str] = None
    moving_labels: Optional[str] = None

    @classmethod
    def sample(cls, name: str) -> "InputChoice":
        """The files of a bundled pair."""
        pair = sample_pairs()[name]
        return cls(**{role: None if getattr(pair, role) is None else f"sample:{name}/{getattr(pair, role).name}"
                      for role in ("fixed", "moving", "fixed_landmarks", "moving_landmarks", "fixed_labels",
                                   "moving_labels")})


@dataclass
class TableView:
    """A scene table as the page shows it: its name, column names and rows of text."""

    name: str
    columns: list
    rows: list


@dataclass
class RunRecord:
    """What the page keeps of the latest run: the result, the scene nodes made from it, and the report."""

    registration: Any  # learnreg.slicer.run.SceneRegistration
    report: dict
    seconds: float
    sources: InputChoice = field(default_factory=InputChoice)


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES + LANDMARK_SUFFIXES + (SCENE_SUFFIX,):
        if lower.endswith(suffix):
            return suffix
    return ""


def _safe_name(name: str) -> str:
    """An uploaded file's name without folders or characters a file name should not hold."""
    base = Path(str(name).replace("\\", "/")).name
    cleaned = "".join(c if c.isalnum() or c in "._- " else "_" for c in base).strip(" .")
    return cleaned or "upload"


class WebSession:
    """Inputs, runs and downloads of the web app on ``scene``.

    ``data_dir``: the folder whose files the page lists (``learnreg web --data``), or None;
    ``upload_limit``: the largest upload in bytes.
    """

    def __init__(self, scene, data_dir: Optional[Path] = None, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> None:
        self.scene = scene
        self.data_dir = None if data_dir is None else Path(data_dir).resolve()
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise InputError(f"--data {data_dir} is not a folder; give the folder that holds your images")
        self.upload_limit = int(upload_limit)
        self.upload_dir = Path(tempfile.mkdtemp(prefix="learnreg-web-uploads-"))
        self.inputs = None  # learnreg.slicer.inputs.SceneInputs of the volumes shown
        self.choice = InputChoice()
        self.job = None  # learnreg.slicer.background.BackgroundJob while a run is on
        self.last_run: Optional[RunRecord] = None

    def close(self) -> None:
        """Remove the uploaded files."""
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    # ------------------------------------------------------------- sources
    def sources(self) -> list[dict]:
        """Every file the page can offer, as ``{"title", "value"}``: the bundled pairs' files, the files under
        ``data_dir`` (images and landmark files) and the uploads."""
        items = []
        for name, pair in sample_pairs().items():
            for role in ("fixed", "moving", "fixed_landmarks", "moving_landmarks", "fixed_labels", "moving_labels"):
                path = getattr(pair, role)
                if path is not None:
                    items.append({"title": f"{name}: {path.name}", "value": f"sample:{name}/{path.name}"})
        if self.data_dir is not None:
            for path in sorted(self.data_dir.rglob("*")):
                if path.is_file() and _suffix(path.name) not in ("", SCENE_SUFFIX):
                    relative = path.relative_to(self.data_dir).as_posix()
                    items.append({"title": f"data: {relative}", "value": f"data:{relative}"})
        for path in sorted(self.upload_dir.iterdir()):
            items.append({"title": f"uploaded: {path.name}", "value": f"upload:{path.name}"})
        return items

    def resolve(self, source: str) -> Path:
        """The file a source names. Raises InputError for an unknown source or a path outside its folder."""
        kind, _, rest = str(source).partition(":")
        if kind == "sample":
            name, _, file_name = rest.partition("/")
            pairs = sample_pairs()
            if name not in pairs:
                raise InputError(f"there is no bundled pair {name!r}; choose one of {', '.join(pairs)}")
            folder = pairs[name].fixed.parent
            return self._inside(folder, file_name, f"the bundled pair {name}")
        if kind == "data":
            if self.data_dir is None:
                raise InputError("no data folder was given; start the app with 'learnreg web --data FOLDER'")
            return self._inside(self.data_dir, rest, "the data folder")
        if kind == "upload":
            return self._inside(self.upload_dir, rest, "the uploads")
        raise InputError(f"unknown input {source!r}; choose a file from the list")

    @staticmethod
    def _inside(folder: Path, relative: str, what: str) -> Path:
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise InputError(f"{relative!r} lies outside {what}; choose a file from the list")
        if not path.is_file():
            raise InputError(f"{relative!r} is not a file in {what}; choose a file from the list")
        return path

    # ------------------------------------------------------------- uploads
    def receive_upload(self, name: str, content: bytes) -> str:
        """Check an uploaded file and keep it; returns its source. An image must be readable (the same checks
        and messages as the command line), a landmark file parseable; nothing is kept when a check fails.

        Raises:
            InputError: too large, an unknown kind of file, or a file that cannot be read.
        """
        name = _safe_name(name)
        self.check_upload_size(name, len(content))
        suffix = _suffix(name)
        if not suffix:
            raise InputError(f"{name} is not a file the app reads; upload an image ({', '.join(IMAGE_SUFFIXES)}), "
                             f"landmarks ({', '.join(LANDMARK_SUFFIXES)}) or a Slicer scene (.mrb)")
        staging = Path(tempfile.mkdtemp(prefix="check-", dir=self.upload_dir.parent))
        try:
            path = staging / name
            path.write_bytes(content)
            try:
                if suffix in IMAGE_SUFFIXES:
                    load_image(path, "uploaded image")
                elif suffix in LANDMARK_SUFFIXES:
                    read_landmarks(path)
            except InputError as error:  # the command line's message, naming the file as the user knows it
                raise InputError(str(error).replace(str(path), name)) from None
            path.replace(self.upload_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return f"upload:{name}"

    def check_upload_size(self, name: str, size: int) -> None:
        """Refuse an upload over the limit (the page checks the size before sending, then the server again)."""
        if size > self.upload_limit:
            raise InputError(f"{_safe_name(name)} is {size / 2**20:.0f} MB, over the upload limit of "
                             f"{self.upload_limit / 2**20:.0f} MB; start the app with a larger --max-upload-mb, "
                             "or put the file in the --data folder")

    def open_uploaded_scene(self, name: str, content: bytes) -> None:
        """Open an uploaded ``.mrb`` bundle (see :meth:`open_scene`)."""
        self.check_upload_size(name, len(content))
        with tempfile.TemporaryDirectory(prefix="learnreg-web-scene-") as folder:
            path = Path(folder) / "scene.mrb"
            path.write_bytes(content)
            try:
                self.open_scene(path)
            except InputError:
                raise InputError(f"{_safe_name(name)} is not a readable Slicer scene bundle; save the scene "
                                 "again as .mrb") from None

    # ------------------------------------------------------------- inputs
    def load_inputs(self, choice: InputChoice):
        """Read the chosen files, check them as the command line does, and show them: the scene is cleared
        and gets the fixed and moving volumes (and landmark point lists). Returns the SceneInputs.

        Raises:
            InputError: a missing choice or a file that cannot be read; the scene is then left as it was.
        """
        from learnreg.slicer.inputs import SceneInputs
        from learnreg.slicer.run import add_input_nodes

        if self.running:
            raise InputError("a registration is running; wait for it or cancel it before choosing other inputs")
        if not choice.fixed or not choice.moving:
            raise InputError("choose both a fixed and a moving image")
        if choice.fixed == choice.moving:
            raise InputError("the fixed and moving image are the same file; choose the image to register to it "
                             "as the moving image")
        fixed_path, moving_path = self.resolve(choice.fixed), self.resolve(choice.moving)
        fixed, moving = load_image(fixed_path, "fixed image"), load_image(moving_path, "moving image")
        check_pair(fixed, moving)
        landmarks = None
        if choice.fixed_landmarks or choice.moving_landmarks:
            if not (choice.fixed_landmarks and choice.moving_landmarks):
                raise InputError("choose both fixed and moving landmarks, or neither")
            landmarks = pair_landmarks(read_landmarks(self.resolve(choice.fixed_landmarks)),
                                       read_landmarks(self.resolve(choice.moving_landmarks)), fixed, moving)
        labels = None
        if choice.fixed_labels or choice.moving_labels:
            if not (choice.fixed_labels and choice.moving_labels):
                raise InputError("choose both fixed and moving label maps, or neither")
            labels = (load_image(self.resolve(choice.fixed_labels), "fixed label map"),
                      load_image(self.resolve(choice.moving_labels), "moving label map"))
            if labels[0].grid.size != fixed.grid.size:
                raise InputError(f"the fixed label map has size {labels[0].grid.size} but the fixed image has "
                                 f"{fixed.grid.size}; choose the label map made on the fixed image")
        inputs = SceneInputs.from_images(fixed, moving, landmarks, (_node_name(choice.fixed, fixed_path),
                                                                    _node_name(choice.moving, moving_path)))
        inputs.labels = labels
        self.scene.Clear(False)
        add_input_nodes(self.scene, inputs)
        self.inputs, self.choice, self.last_run = inputs, choice, None
        return inputs

    def open_scene(self, path: Path) -> None:
        """Replace the scene with a ``.mrb`` bundle (one the command line or Slicer wrote).

        Raises:
            InputError: not a readable bundle; the scene is then empty.
        """
        from learnreg.slicer.scene import load_scene

        if self.running:
            raise InputError("a registration is running; wait for it or cancel it before opening a scene")
        self.scene.Clear(False)
        self.inputs, self.last_run = None, None
        load_scene(path, self.scene)

    # ------------------------------------------------------------- runs
    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start_run(self, method: str, options: dict, device: str = "auto"):
        """Start registering the shown inputs in a worker thread; returns the job (poll it, then call
        :meth:`finish_run` with the result). A second run while one is on is refused.

        Raises:
            InputError: a run is on, no inputs are loaded, or the method or an option is wrong.
        """
        from learnreg.registration import create_registrar
        from learnreg.slicer.background import BackgroundJob

        if self.running:
            raise InputError("a registration is already running; wait for it to finish or cancel it first")
        if self.inputs is None:
            raise InputError("choose a fixed and a moving image first")
        create_registrar(method, options)  # a bad method or option is refused now, before the run
        inputs = self.inputs

        def work(progress, cancel):
            registrar = create_registrar(method, options)
            return registrar.register(inputs.fixed, inputs.moving, device=device, progress=progress, cancel=cancel)

        self.job = BackgroundJob(work, name=f"LearnReg web: {method}").start()
        return self.job

    def finish_run(self, result, progress: Optional[Callable] = None) -> RunRecord:
        """Add a finished run's result to the scene and build its report (as ``learnreg register`` does)."""
        from learnreg.pipeline import build_report
        from learnreg.slicer.run import add_registration_to_scene

        inputs = self.inputs
        started = self.job.started_at if self.job is not None else time.monotonic()
        registration = add_registration_to_scene(self.scene, inputs, result, progress=progress)
        review = registration.review
        timings = dict(result.timings)
        report = build_report(result, self.choice.fixed, self.choice.moving, inputs.fixed, inputs.moving,
                              inputs.landmarks, timings,
                              None if review is None else (review.before, review.after, review.one_pass))
        report["notes"] = registration.notes
        seconds = time.monotonic() - started
        report["timings_s"]["wall"] = round(seconds, 4)
        self.last_run = RunRecord(registration, report, seconds, self.choice)
        return self.last_run

    # ------------------------------------------------------------- what the page shows
    def result_tables(self) -> list[TableView]:
        """The latest result's tables (TRE per landmark worst first, TRE summary, structures), read from the
        scene's table nodes; after opening a bundle, every table in it."""
        from learnreg.slicer.scene import nodes_of_class
        from learnreg.slicer.tables import table_column

        if self.last_run is not None:
            registration = self.last_run.registration
            nodes = [n for n in (registration.review and registration.review.table,
                                 registration.review and registration.review.summary_table,
                                 registration.structures and registration.structures.table) if n]
        else:
            nodes = nodes_of_class(self.scene, "vtkMRMLTableNode")
        views = []
        for node in nodes:
            table = node.GetTable()
            columns = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
            values = [table_column(node, name) for name in columns]
            rows = [[_cell(column[r]) for column in values] for r in range(table.GetNumberOfRows())]
            views.append(TableView(node.GetName(), columns, rows))
        return views

    def download(self, name: str) -> bytes:
        """The bytes of one download of the latest run (``DOWNLOADS``); ``scene.mrb`` also after opening a
        bundle.

        Raises:
            InputError: an unknown file, or no result to download yet.
        """
        from learnreg.image import save_image
        from learnreg.slicer.scene import save_scene

        if name not in DOWNLOADS:
            raise InputError(f"unknown download {name!r}; choose one of {', '.join(DOWNLOADS)}")
        if name != "scene.mrb" and self.last_run is None:
            raise InputError(f"no result yet: run a registration before downloading {name}")
        with tempfile.TemporaryDirectory(prefix="learnreg-web-download-") as folder:
            path = Path(folder) / name
            if name == "scene.mrb":
                save_scene(self.scene, path)
            elif name == "report.json":
                path.write_text(json.dumps(self.last_run.report, indent=2))
            elif name == "warped.nii.gz":
                save_image(self.last_run.registration.result.warped, path)
            else:
                self.last_run.registration.result.field.save(path)
            return path.read_bytes()


def _node_name(source: str, path: Path) -> str:
    """The name a volume gets in the scene: the file's name without its suffix (after the pair's name for
    a bundled pair: ``brain2d fixed``)."""
    stem = path.name[: len(path.name) - len(image_suffix(path))]
    return f"{source[len('sample:'):].split('/')[0]} {stem}" if source.startswith("sample:") else stem


def _cell(value) -> str:
    """A table value as the page shows it: whole numbers (ranks, labels) without decimals, mm to 3 decimals."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}"
    return str(value)
