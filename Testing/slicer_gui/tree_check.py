"""Load every LearnReg module from an extension's build or install tree, as Slicer does, and report (JSON on
stdout) where ``learnreg`` was imported from and which methods each module offers.

Run in a fresh interpreter: ``python -m slicer_gui.tree_check <tag> <qt-scripted-modules folder>``. The
learnreg of the development checkout (an editable install, or the checkout on sys.path) is taken out of
the import system first, so the modules can only find the copy in the tree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _forget_checkout(checkout: Path) -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != checkout]
    sys.path_importer_cache.clear()
    for name in [n for n in sys.modules if n == "learnreg" or n.startswith("learnreg.")]:
        del sys.modules[name]


def main(tag: str, tree: str) -> None:
    from slicer_gui import ROOT, start_slicer

    _forget_checkout(ROOT)
    tree_path = Path(tree).resolve()
    sys.path.append(str(tree_path))  # Slicer appends a module's folder when it loads it; learnreg is needed first
    session = start_slicer(tag)
    report = {"modules": {}}
    for module in ("R2Register", "ISTNRegister", "CNNRegress"):
        instance = session.load_module(tree_path / f"{module}.py")
        session.enter(module)
        widget = instance.widget
        session.wait_until(lambda: widget._methods_job is None, 120, "the method list")
        report["modules"][module] = [widget.ui.methodComboBox.itemText(i) for i in range(widget.ui.methodComboBox.count)]
    import learnreg
    from learnreg.model_files import MODELS_DIR

    report["learnreg"] = str(Path(learnreg.__file__).resolve())
    report["models"] = str(MODELS_DIR)
    session.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:3])
