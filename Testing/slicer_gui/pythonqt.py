"""PySide6 dressed as PythonQt, the Qt binding inside 3D Slicer, for tests of the LearnReg panels.

Slicer's Python code (its parameter-node wrapper, ``slicer.util``, the module base classes) and ours use
PythonQt's conventions, which differ from PySide6's in three ways that matter here:

- a Qt property is an attribute: ``widget.value`` reads it, ``widget.value = 3`` writes it, and ``name``
  is the object name;
- ``obj.connect("clicked(bool)", slot)`` connects a signal given by its signature (``disconnect`` alike);
- ``qt.QUiLoader`` builds a ``.ui`` file into widgets of these classes (and of the CTK and qMRML
  stand-ins), and wires the file's ``<connections>`` the way uic does.

:func:`build_qt_module` returns a module object to install as ``qt``: every QObject class of QtCore,
QtGui and QtWidgets comes with the PythonQt behaviour mixed in (one class per name, so that
``type(widget) is qt.QComboBox`` holds as in Slicer), every other class and namespace as PySide6 has it.
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

#: (object id, property name) pairs being read right now (see PythonQtObject.__getattribute__)
_READING: set = set()


class PythonQtObject:
    """Mixin giving a QObject subclass PythonQt's attribute access to Qt properties and string connects."""

    def __getattribute__(self, name: str):
        if name[:1] != "_":
            if name == "name":
                return QtCore.QObject.objectName(self)
            if name in ("connect", "disconnect"):  # PySide6 would answer with QObject's own (static) ones
                return types.MethodType(getattr(PythonQtObject, name), self)
            meta = QtCore.QObject.metaObject(self)
            index = meta.indexOfProperty(name)
            key = (id(self), name)
            if index >= 0 and key not in _READING:
                # reading a property such as sizeHint calls the C++ virtual of that name, which asks Python
                # for an override by that name: answer that inner lookup with the method itself
                _READING.add(key)
                try:
                    return meta.property(index).read(self)
                finally:
                    _READING.discard(key)
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value) -> None:
        if name[:1] != "_":
            if name == "name":
                QtCore.QObject.setObjectName(self, value)
                return
            meta = QtCore.QObject.metaObject(self)
            index = meta.indexOfProperty(name)
            if index >= 0 and meta.property(index).isWritable():
                if isinstance(value, tuple):  # PythonQt converts any sequence to a list type (QStringList, ...)
                    value = list(value)
                if not meta.property(index).write(self, value):
                    raise TypeError(f"cannot set {type(self).__name__}.{name} to {value!r}")
                return
        super().__setattr__(name, value)

    def _signal(self, signature: str):
        signal = getattr(self, signature.split("(", 1)[0])
        arguments = signature[signature.index("(") + 1:-1] if "(" in signature else ""
        if arguments:
            try:
                return signal[arguments]  # an overloaded signal: pick the one with this signature
            except (KeyError, IndexError, TypeError):
                return signal
        return signal

    def connect(self, signature: str, slot: Callable) -> bool:
        self._signal(signature).connect(slot)
        return True

    def disconnect(self, signature: str, slot: Callable) -> bool:
        try:
            self._signal(signature).disconnect(slot)
        except (RuntimeError, TypeError):
            return False
        return True


_CLASSES: Dict[str, type] = {}


def pythonqt_class(base: type) -> type:
    """The PythonQt-style class of a PySide6 QObject class (the same class object for every call)."""
    name = base.__name__
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (PythonQtObject, base), {"__module__": "qt"})
    return _CLASSES[name]


#: names that stay PySide6's own classes: they serve as base classes in ``isinstance`` and
#: ``findChildren(qt.QWidget)`` queries, which must match every widget (PySide6 cannot build a wrapper
#: class hierarchy that mirrors Qt's, so the wrappers derive from PySide6's classes directly)
PLAIN = ("QObject", "QWidget")


def _find(name: str):
    for namespace in (QtWidgets, QtGui, QtCore, QtUiTools):
        value = getattr(namespace, name, None)
        if value is not None:
            return value
    raise AttributeError(f"module 'qt' has no attribute '{name}'")


def _lookup(name: str):
    value = _find(name)
    if isinstance(value, type) and issubclass(value, QtCore.QObject) and name not in PLAIN:
        return pythonqt_class(value)
    return value


#: class name -> class, for widgets that are not Qt's own (CTK and qMRML stand-ins); filled by the harness
CUSTOM_WIDGETS: Dict[str, type] = {}


def widget_class(class_name: str) -> type:
    """The class a ``.ui`` file's ``class_name`` is built as (PythonQt-style, plain names included)."""
    if class_name in CUSTOM_WIDGETS:
        return CUSTOM_WIDGETS[class_name]
    return pythonqt_class(_find(class_name))


class QUiLoader(QtUiTools.QUiLoader):
    """Builds ``.ui`` files into PythonQt-style widgets and wires their ``<connections>`` as uic does."""

    def createWidget(self, class_name, parent=None, name=""):
        widget = widget_class(class_name)(parent)
        widget.setObjectName(name)
        return widget

    def load(self, device, parent=None):
        """Load the ``.ui`` (a QFile or a path) without its ``<connections>``, then wire those itself: Qt
        would look for C++ signal signatures that Python-defined signals do not have."""
        path = device.fileName() if isinstance(device, QtCore.QFile) else str(device)
        tree = ET.parse(path)
        connections = tree.getroot().find("connections")
        if connections is not None:
            tree.getroot().remove(connections)
        buffer = QtCore.QBuffer()
        buffer.setData(ET.tostring(tree.getroot()))
        buffer.open(QtCore.QIODevice.ReadOnly)
        self.setWorkingDirectory(QtCore.QDir(str(Path(path).parent)))
        widget = super().load(buffer, parent)
        if widget is not None and connections is not None:
            _wire_connections(widget, connections)
        return widget


def _wire_connections(root, connections) -> None:
    tree = connections
    by_name = {QtCore.QObject.objectName(w): w for w in root.findChildren(QtCore.QObject)}
    by_name[QtCore.QObject.objectName(root)] = root
    for connection in tree.iter("connection"):
        sender = by_name[connection.findtext("sender")]
        receiver = by_name[connection.findtext("receiver")]
        slot = getattr(receiver, connection.findtext("slot").split("(", 1)[0])
        sender._signal(connection.findtext("signal")).connect(slot)


def build_qt_module() -> types.ModuleType:
    """The ``qt`` module: PySide6 with PythonQt's conventions (see the module docstring)."""
    module = types.ModuleType("qt")
    module.__getattr__ = _lookup
    module.QUiLoader = QUiLoader
    module.Qt = QtCore.Qt
    return module
