"""Slicer's own Python layer, run here: a harness for tests and benchmarks of the LearnReg modules.

Desktop Slicer cannot be installed on these machines, so :func:`start_slicer` assembles the parts a
scripted module meets inside it:

- Slicer's unmodified Python files at a tag (``../shared/slicer-reference/<tag>``): ``slicer.util``,
  ``slicer.parameterNodeWrapper``, ``slicer.ScriptedLoadableModule`` and the Sample Data module;
- MRML from the ``slicer-core`` wheel (a real ``vtkMRMLScene`` with its module logics);
- PySide6 standing in for PythonQt (:mod:`.pythonqt`), with minimal CTK and qMRML widget stand-ins
  (:mod:`.widgets`) and an application object (``slicer.app``) in testing mode, where message boxes are
  logged instead of shown, as Slicer's own tests run.

:meth:`SlicerSession.load_module` then loads a module file the way Slicer's module factory does and
builds the module, its widget (``setup()``) and its logic.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "slicer-reference"
TAGS = ("v5.8.0", "v5.10.0")

#: modules replaced while a session runs (restored by SlicerSession.stop)
_REPLACED = ("qt", "ctk", "slicer.util", "slicer.ScriptedLoadableModule", "slicer.i18n", "SampleData",
             "slicer.parameterNodeWrapper")


def reference_path(tag: str, *parts: str) -> Path:
    return REFERENCE.joinpath(tag, *parts)


def reference_available() -> bool:
    return all(reference_path(tag, "Base", "Python", "slicer", "util.py").is_file() for tag in TAGS)


def _load_file(name: str, path: Path, package: bool = False) -> types.ModuleType:
    if package:
        spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _application_class():
    from PySide6 import QtCore, QtWidgets
    from PySide6.QtCore import Signal

    from .pythonqt import PythonQtObject

    class ModuleManager(PythonQtObject, QtCore.QObject):
        moduleAboutToBeUnloaded = Signal(str)

    class Application(PythonQtObject, QtWidgets.QApplication):
        """``slicer.app`` in testing mode: message boxes are logged, settings live in a temporary file."""

        startupCompleted = Signal()

        def __init__(self, argv):
            QtWidgets.QApplication.__init__(self, argv)
            self._module_manager = ModuleManager()
            self._settings_path = None

        applicationName = "Slicer"

        def testingEnabled(self) -> bool:
            return True

        def moduleManager(self):
            return self._module_manager

        def layoutManager(self):
            return None

        def settings(self):
            from PySide6.QtCore import QSettings
            return QSettings()

        userSettings = settings

    return Application


@dataclass
class ModuleInstance:
    """A loaded module as Slicer holds it: the Python module, the module object, its widget and logic."""

    python_module: types.ModuleType
    module: object
    widget: object
    parent: object


@dataclass
class SlicerSession:
    """The assembled Python layer of one Slicer tag over one scene (see :func:`start_slicer`)."""

    tag: str
    scene: object
    app: object
    saved: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    added_paths: list = field(default_factory=list)

    def load_module(self, module_file: Path, setup_widget: bool = True) -> ModuleInstance:
        """Load ``<Name>.py`` as Slicer's scripted-module factory does: import it under its name, construct
        ``<Name>(parent)``, then ``<Name>Widget(parent)`` and ``setup()`` it."""
        import slicer

        name = Path(module_file).stem
        folder = str(Path(module_file).resolve().parent)
        if folder not in sys.path:  # Slicer's scripted-module factory appends the module's folder to sys.path
            sys.path.append(folder)
            self.added_paths.append(folder)
        python_module = _load_file(name, Path(module_file))
        parent = types.SimpleNamespace(path=str(module_file))  # the module's qSlicerScriptedLoadableModule
        module = getattr(python_module, name)(parent)
        setattr(slicer.modules, name.lower(), parent)
        setattr(slicer.modules, f"{name.lower()}widget", None)
        widget = None
        if setup_widget:
            widget_parent = slicer.qSlicerScriptedLoadableModuleWidget()
            import qt

            widget_parent.setLayout(qt.QVBoxLayout())
            widget_parent.setMRMLScene(slicer.mrmlScene)
            widget = getattr(python_module, f"{name}Widget")(widget_parent)
            widget.setup()
            setattr(slicer.modules, f"{name.lower()}widget", widget)
        instance = ModuleInstance(python_module, module, widget, parent)
        self.modules[name] = instance
        return instance

    def enter(self, name: str) -> None:
        """What the module panel's selection does: ``isEntered`` and ``enter()``."""
        instance = self.modules[name]
        instance.widget.parent.isEntered = True
        instance.widget.enter()

    def exit(self, name: str) -> None:
        instance = self.modules[name]
        instance.widget.exit()
        instance.widget.parent.isEntered = False

    def process_events(self, seconds: float = 0.0) -> None:
        import time

        end = time.monotonic() + seconds
        while True:
            self.app.processEvents()
            if time.monotonic() >= end:
                return
            time.sleep(0.005)

    def wait_until(self, condition, timeout: float = 60.0, what: str = "the condition") -> float:
        """Process events until ``condition()`` holds; returns the seconds it took. Raises TimeoutError."""
        import time

        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
            self.app.processEvents()
            time.sleep(0.005)
        return time.monotonic() - start

    def stop(self) -> None:
        """Unload the modules' widgets and put back the modules this session replaced."""
        import gc

        import slicer
        from PySide6 import QtCore

        for name, instance in self.modules.items():
            if instance.widget is not None:
                self.app.moduleManager().moduleAboutToBeUnloaded.emit(name)
                instance.widget.parent.deleteLater()
        self.modules.clear()
        for folder in self.added_paths:
            if folder in sys.path:
                sys.path.remove(folder)
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
        gc.collect()  # now, while every object's C++ side is in a known state
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name in [n for n in sys.modules if n.startswith("slicer.parameterNodeWrapper.")]:
            del sys.modules[name]
        for attr, value in self.saved.get("__slicer_attrs__", {}).items():
            if value is None and hasattr(slicer, attr):
                delattr(slicer, attr)
            elif value is not None:
                setattr(slicer, attr, value)


_APP = None


def start_slicer(tag: str, scene=None) -> SlicerSession:
    """Assemble Slicer ``tag``'s Python layer over ``scene`` (a new headless scene by default)."""
    global _APP
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import slicer

    from learnreg.slicer.scene import create_scene

    from .pythonqt import CUSTOM_WIDGETS, build_qt_module
    from .widgets import ctk_module, mrml_widget_classes

    saved = {name: sys.modules.get(name) for name in _REPLACED}
    attrs = ("util", "ScriptedLoadableModule", "parameterNodeWrapper", "app", "mrmlScene", "modules", "i18n",
             "selfTests", *mrml_widget_classes())
    saved["__slicer_attrs__"] = {a: getattr(slicer, a, None) for a in attrs}

    qt = build_qt_module()
    sys.modules["qt"] = qt
    ctk = ctk_module()
    sys.modules["ctk"] = ctk
    widgets = mrml_widget_classes()
    for name, cls in widgets.items():
        setattr(slicer, name, cls)
    CUSTOM_WIDGETS.clear()
    CUSTOM_WIDGETS.update(widgets)
    CUSTOM_WIDGETS.update({n: getattr(ctk, n) for n in dir(ctk) if n.startswith("ctk")})

    if _APP is None:
        _APP = _application_class()([])
    slicer.app = _APP
    slicer.modules = types.SimpleNamespace()
    slicer.mrmlScene = scene if scene is not None else create_scene()

    i18n = types.ModuleType("slicer.i18n")  # Slicer's translation helpers: identity without translations
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    sys.modules["slicer.i18n"] = i18n
    slicer.i18n = i18n

    python_root = reference_path(tag, "Base", "Python", "slicer")
    slicer.util = _load_file("slicer.util", python_root / "util.py")
    for name in [n for n in sys.modules if n.startswith("slicer.parameterNodeWrapper")]:
        del sys.modules[name]
    slicer.parameterNodeWrapper = _load_file("slicer.parameterNodeWrapper", python_root / "parameterNodeWrapper",
                                             package=True)
    slicer.ScriptedLoadableModule = _load_file("slicer.ScriptedLoadableModule", python_root / "ScriptedLoadableModule.py")
    _load_file("SampleData", reference_path(tag, "Modules", "Scripted", "SampleData", "SampleData.py"))
    return SlicerSession(tag, slicer.mrmlScene, _APP, saved)
