"""The smallest stand-ins for the CTK and qMRML widget classes the LearnReg panels and Slicer's
parameter-node wrapper use (desktop Slicer provides the real ones, compiled, through PythonQt).

Each stand-in is a PythonQt-style class (see :mod:`.pythonqt`) with the Qt properties, signals and slots
that the real widget has and that the code under test touches. ``qMRMLNodeComboBox`` follows a real
``vtkMRMLScene``: it lists the nodes of its ``nodeTypes`` (with or without subclasses), keeps its choice
while the node exists, falls back to the first node when "None" is not allowed, and says so through
``currentNodeChanged``. A selector whose ``setMRMLScene`` was never called lists nothing, as in Slicer.
"""

from __future__ import annotations

import types

import shiboken6
from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Property, Signal

from .pythonqt import PythonQtObject


def _plain(name: str, base: type, body: dict | None = None) -> type:
    return type(name, (PythonQtObject, base), {"__module__": "ctk_or_slicer", **(body or {})})


class ctkCollapsibleButton(PythonQtObject, QtWidgets.QGroupBox):
    """A titled section that folds (``text``, ``collapsed``), drawn as a group box so that screenshots of a
    panel show its sections' contents."""

    contentsCollapsed = Signal(bool)

    def __init__(self, parent=None):
        QtWidgets.QGroupBox.__init__(self, parent)
        self._collapsed = False

    def _get_text(self) -> str:
        return QtWidgets.QGroupBox.title(self)

    def _set_text(self, value: str) -> None:
        QtWidgets.QGroupBox.setTitle(self, value)

    text = Property(str, _get_text, _set_text)

    def _get_collapsed(self) -> bool:
        return self._collapsed

    def _set_collapsed(self, value: bool) -> None:
        self._collapsed = bool(value)
        for child in self.findChildren(QtWidgets.QWidget, options=QtCore.Qt.FindDirectChildrenOnly):
            child.setVisible(not self._collapsed)
        self.contentsCollapsed.emit(self._collapsed)

    collapsed = Property(bool, _get_collapsed, _set_collapsed)


class ctkSliderWidget(PythonQtObject, QtWidgets.QDoubleSpinBox):
    """A slider with a spin box: value, minimum, maximum, decimals, singleStep; ``valueChanged(double)``."""


class qMRMLWidget(PythonQtObject, QtWidgets.QWidget):
    """A widget that hands its scene to its children through ``mrmlSceneChanged``."""

    mrmlSceneChanged = Signal(object)

    def __init__(self, parent=None):
        QtWidgets.QWidget.__init__(self, parent)
        self._scene = None

    def setMRMLScene(self, scene) -> None:
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self._scene


class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """The panel a scripted module's Widget is built in (its ``parent``): ``isEntered`` while shown."""

    def __init__(self, parent=None):
        qMRMLWidget.__init__(self, parent)
        self._entered = False

    def _get_entered(self) -> bool:
        return self._entered

    def _set_entered(self, value: bool) -> None:
        self._entered = bool(value)

    isEntered = Property(bool, _get_entered, _set_entered)


class qMRMLTableView(PythonQtObject, QtWidgets.QTableView):
    """Shows a table node (only which one is kept here)."""

    def __init__(self, parent=None):
        QtWidgets.QTableView.__init__(self, parent)
        self._scene = None
        self._table = None

    def setMRMLScene(self, scene) -> None:
        self._scene = scene

    def setMRMLTableNode(self, node) -> None:
        self._table = node

    def mrmlTableNode(self):
        return self._table


class qMRMLNodeComboBox(PythonQtObject, QtWidgets.QComboBox):
    """A node selector over a real scene (see the module docstring)."""

    currentNodeChanged = Signal(object)
    currentNodeIDChanged = Signal(str)

    def __init__(self, parent=None):
        QtWidgets.QComboBox.__init__(self, parent)
        self._scene = None
        self._observations = []
        self._node_types: list = []
        self._show_child_types = True
        self._none_enabled = False
        self._flags = {"addEnabled": True, "removeEnabled": True, "renameEnabled": False}
        self._none_display = "None"
        self._current_id = ""

    # --- properties set from the .ui file or by the parameter-node wrapper
    def _get_node_types(self):
        return list(self._node_types)

    def _set_node_types(self, value) -> None:
        self._node_types = list(value)
        self._refresh()

    nodeTypes = Property("QStringList", _get_node_types, _set_node_types)

    def _get_show_child(self):
        return self._show_child_types

    def _set_show_child(self, value) -> None:
        self._show_child_types = bool(value)
        self._refresh()

    showChildNodeTypes = Property(bool, _get_show_child, _set_show_child)

    def _get_none(self):
        return self._none_enabled

    def _set_none(self, value) -> None:
        self._none_enabled = bool(value)
        self._refresh()

    noneEnabled = Property(bool, _get_none, _set_none)

    def _get_none_display(self):
        return self._none_display

    def _set_none_display(self, value) -> None:
        self._none_display = str(value)

    noneDisplay = Property(str, _get_none_display, _set_none_display)

    def _flag(name):
        return Property(bool, lambda self: self._flags[name], lambda self, v: self._flags.__setitem__(name, bool(v)))

    addEnabled = _flag("addEnabled")
    removeEnabled = _flag("removeEnabled")
    renameEnabled = _flag("renameEnabled")
    del _flag

    def _get_current_id(self):
        return self._current_id

    currentNodeID = Property(str, _get_current_id, lambda self, node_id: self.setCurrentNodeID(node_id))

    # --- scene
    def setMRMLScene(self, scene) -> None:
        for node, tag in self._observations:
            node.RemoveObserver(tag)
        self._observations = []
        self._scene = scene
        if scene is not None:
            observations = self._observations

            def refresh(*args):  # a selector whose widget was deleted stops observing
                if shiboken6.isValid(self):
                    self._refresh()
                else:
                    for node, tag in observations:
                        node.RemoveObserver(tag)
                    observations.clear()
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent):
                observations.append((scene, scene.AddObserver(event, refresh)))
        self._refresh()

    def mrmlScene(self):
        return self._scene

    def _accepts(self, node) -> bool:
        if self._show_child_types:
            return any(node.IsA(t) for t in self._node_types)
        return node.GetClassName() in self._node_types

    def nodes(self) -> list:
        """The nodes offered, in scene order."""
        if self._scene is None:
            return []
        found = []
        for index in range(self._scene.GetNumberOfNodes()):
            node = self._scene.GetNthNode(index)
            if self._accepts(node) and not node.GetHideFromEditors():
                found.append(node)
        return found

    def _refresh(self) -> None:
        nodes = self.nodes()
        ids = [n.GetID() for n in nodes]
        current = self._current_id if self._current_id in ids else ""
        if not current and not self._none_enabled and ids:
            current = ids[0]
        self.blockSignals(True)
        self.clear()
        if self._none_enabled:
            self.addItem(self._none_display, "")
        for node in nodes:
            self.addItem(node.GetName(), node.GetID())
        self.setCurrentIndex(self.findData(current) if current or self._none_enabled else -1)
        self.blockSignals(False)
        self._select(current)

    def _select(self, node_id: str) -> None:
        if node_id == self._current_id:
            return
        self._current_id = node_id
        index = self.findData(node_id)
        if index >= 0 and index != self.currentIndex:
            self.blockSignals(True)
            self.setCurrentIndex(index)
            self.blockSignals(False)
        self.currentNodeIDChanged.emit(node_id)
        self.currentNodeChanged.emit(self.currentNode())

    # --- the API of the real widget
    def currentNode(self):
        if not self._current_id or self._scene is None:
            return None
        return self._scene.GetNodeByID(self._current_id)

    def setCurrentNode(self, node) -> None:
        node_id = node.GetID() if node is not None else ""
        if node_id and node_id not in [n.GetID() for n in self.nodes()]:
            return  # not offered here (another scene, or a type the selector does not list)
        if not node_id and not self._none_enabled and self.nodes():
            return
        self._select(node_id)

    def setCurrentNodeID(self, node_id: str) -> None:
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if node_id and self._scene else None)

    def chooseIndex(self, index: int) -> None:
        """What a click on item ``index`` of the drop-down does (for tests that play the user)."""
        self._select(self.itemData(index) or "")


def ctk_module() -> types.ModuleType:
    """The ``ctk`` module: the stand-ins above and plain Qt-based classes for the other CTK names that
    Slicer's Python code refers to (never instantiated by the LearnReg panels)."""
    module = types.ModuleType("ctk")
    module.ctkCollapsibleButton = ctkCollapsibleButton
    module.ctkSliderWidget = ctkSliderWidget
    for name, base in (("ctkCheckBox", QtWidgets.QCheckBox), ("ctkComboBox", QtWidgets.QComboBox),
                       ("ctkDoubleSlider", QtWidgets.QSlider), ("ctkDoubleSpinBox", QtWidgets.QDoubleSpinBox),
                       ("ctkRangeWidget", QtWidgets.QWidget), ("ctkDoubleRangeSlider", QtWidgets.QWidget),
                       ("ctkPathLineEdit", QtWidgets.QWidget), ("ctkDirectoryButton", QtWidgets.QWidget),
                       ("ctkCheckablePushButton", QtWidgets.QPushButton), ("ctkColorPickerButton", QtWidgets.QPushButton),
                       ("ctkMessageBox", QtWidgets.QMessageBox)):
        setattr(module, name, _plain(name, base))
    return module


def mrml_widget_classes() -> dict:
    """qMRML and qSlicer widget classes to put into the ``slicer`` namespace."""
    classes = {"qMRMLWidget": qMRMLWidget, "qMRMLNodeComboBox": qMRMLNodeComboBox, "qMRMLTableView": qMRMLTableView,
               "qSlicerWidget": qMRMLWidget, "qSlicerScriptedLoadableModuleWidget": qSlicerScriptedLoadableModuleWidget}
    for name, base in (("qMRMLSliderWidget", QtWidgets.QDoubleSpinBox), ("qMRMLSpinBox", QtWidgets.QDoubleSpinBox),
                       ("qMRMLRangeWidget", QtWidgets.QWidget)):
        classes[name] = _plain(name, base)
    return classes
