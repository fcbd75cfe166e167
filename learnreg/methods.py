"""Where methods live: one declaration per method, read without importing torch.

Each method package declares its methods in a small module that imports no torch (its options dataclass and
a :class:`Method`); :data:`METHOD_MODULES` lists those modules, one line per package. The registrar (and the
trainer of a learned method) are named as ``"module:attribute"`` and imported only when a registration or a
training run is created, so that ``learnreg methods`` and option checks are instant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional

from learnreg.errors import InputError

#: the modules that declare the built-in methods (importing one declares its methods)
METHOD_MODULES = (
    "learnreg.classical.methods",
    "learnreg.r2n2.method",
    "learnreg.istn.method",
    "learnreg.cnnregress.method",
    "learnreg.ddfnet.method",
)


@dataclass(frozen=True)
class Method:
    """A registration method as the front ends see it.

    Attributes:
        name: the method's name (``--method``, the panels' method list).
        description: one line for ``learnreg methods`` and the panels.
        options: its options dataclass (in a module without torch).
        registrar: ``"module:Class"`` of its :class:`~learnreg.registration.Registrar`.
        trainer: ``"module:function"`` that ``learnreg train`` runs (learned methods), else None.
    """

    name: str
    description: str
    options: type
    registrar: str
    trainer: Optional[str] = None

    @property
    def learned(self) -> bool:
        return self.trainer is not None

    def registrar_class(self) -> type:
        """The registrar class (imports the method's implementation, and torch)."""
        return _attribute(self.registrar)

    def trainer_function(self):
        """The training entry point (imports the method's implementation, and torch)."""
        if self.trainer is None:
            raise InputError(f"{self.name} is not trained: it has no training recipe")
        return _attribute(self.trainer)


_DECLARED: dict[str, Method] = {}


def declare(method: Method) -> Method:
    """Add ``method`` to the registry (called by the modules of :data:`METHOD_MODULES`)."""
    _DECLARED[method.name] = method
    return method


def _attribute(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def all_methods() -> dict[str, Method]:
    """Method name -> :class:`Method`, sorted by name, for every built-in method."""
    for module in METHOD_MODULES:
        importlib.import_module(module)
    return dict(sorted(_DECLARED.items()))


def find_method(name: str) -> Method:
    """The method called ``name``; :class:`InputError` naming the choices otherwise."""
    methods = all_methods()
    if name not in methods:
        raise InputError(f"unknown method {name!r}; available: {', '.join(methods)} (see 'learnreg methods')")
    return methods[name]


def trained_methods() -> dict[str, Method]:
    """The methods ``learnreg train`` can train."""
    return {name: m for name, m in all_methods().items() if m.learned}
