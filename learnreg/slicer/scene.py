"""A Slicer scene without the Slicer application, and saving and loading scenes as ``.mrb`` bundles.

Inside Slicer the application owns the scene (``slicer.mrmlScene``) and its module logics. Outside it
(command line, tests, scripts) :func:`create_scene` builds the same thing from ``slicer-core``: a real
``vtkMRMLScene`` with the application logic and the module logics whose node classes LearnReg uses
(volumes, transforms, markups, sequences, tables, plots, colours, subject hierarchy), and the data IO
manager that reading a bundle needs. Every function in :mod:`learnreg.slicer` takes the scene as an
argument and works the same on either kind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path

from learnreg.errors import InputError
from learnreg.slicer._mrml import slicer, vtk

#: module logics a headless scene gets, by the name Slicer registers them under
_MODULE_LOGICS = {
    "Colors": "vtkSlicerColorLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Transforms": "vtkSlicerTransformLogic",
    "Markups": "vtkSlicerMarkupsLogic",
    "Sequences": "vtkSlicerSequencesLogic",
    "Tables": "vtkSlicerTablesLogic",
    "Plots": "vtkSlicerPlotsLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
}

# Logic objects must live as long as the scene they serve (VTK does not keep them alive); they are
# dropped when the scene is.
_KEEP_ALIVE: dict[int, list] = {}


@contextlib.contextmanager
def _vtk_errors_silenced():
    previous = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield
    finally:
        vtk.vtkLogger.SetStderrVerbosity(previous)


def create_scene(cache_dir=None):
    """A new headless ``vtkMRMLScene`` with Slicer's module logics, ready to read and write bundles.

    ``cache_dir`` is the data IO cache (a temporary folder by default). The scene also becomes
    ``slicer.mrmlScene`` so that ``slicer.util`` helpers that assume a global scene find it.
    """
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    keep = [app_logic]
    for name, class_name in _MODULE_LOGICS.items():
        logic = getattr(slicer, class_name)()
        logic.SetMRMLApplicationLogic(app_logic)
        if name == "Colors":
            # without an application home folder the colour logic logs that it has no colour files; the
            # built-in colour tables it adds are all a scene needs
            with _vtk_errors_silenced():
                logic.SetMRMLScene(scene)
                logic.AddDefaultColorNodes()
        else:
            logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(name, logic)
        keep.append(logic)

    # the singletons the Slicer application always has: markups ask the selection node for their units
    # (and warn on every point list without one); the interaction node holds the mouse mode
    for class_name in ("vtkMRMLSelectionNode", "vtkMRMLInteractionNode"):
        if scene.GetFirstNodeByClass(class_name) is None:
            scene.AddNode(getattr(slicer, class_name)())

    remote_io = slicer.vtkMRMLRemoteIOLogic()
    cache = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="learnreg-slicer-cache-"))
    remote_io.GetCacheManager().SetRemoteCacheDirectory(str(cache))
    data_io = slicer.vtkDataIOManagerLogic()
    data_io.SetMRMLApplicationLogic(app_logic)
    data_io.SetAndObserveDataIOManager(remote_io.GetDataIOManager())
    remote_io.SetMRMLScene(scene)
    remote_io.AddDataIOToScene()
    keep += [remote_io, data_io]
    _KEEP_ALIVE[id(scene)] = keep
    weakref.finalize(scene, _KEEP_ALIVE.pop, id(scene), None)
    if not cache_dir:  # the temporary cache goes with the scene (or at exit)
        weakref.finalize(scene, shutil.rmtree, str(cache), True)
    slicer.mrmlScene = scene
    return scene


def save_scene(scene, path) -> Path:
    """Write the scene with all its data into a Slicer bundle (``.mrb``); the file appears whole or not at all."""
    path = Path(path)
    if path.suffix.lower() != ".mrb":
        raise InputError(f"a scene bundle must end in .mrb, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.partial-", dir=path.parent))
    try:
        # the bundle's inner folder takes the file's name, so it is written under its final name
        if not scene.WriteToMRB(str(staging / path.name)):
            raise InputError(f"Slicer could not write the scene bundle {path}; check the folder is writable")
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def load_scene(path, scene=None):
    """Read a ``.mrb`` bundle into ``scene`` (a new headless scene by default) and return the scene."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"scene bundle {path} does not exist")
    scene = scene if scene is not None else create_scene()
    if not scene.ReadFromMRB(str(path), True):
        raise InputError(f"{path} is not a readable Slicer scene bundle")
    return scene


def nodes_of_class(scene, class_name: str) -> list:
    """The nodes of ``scene`` that are ``class_name`` (or derive from it), in the scene's order.
    (``slicer.util.getNodesByClass`` reads ``slicer.mrmlScene`` whatever scene it is given.)"""
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
