"""The package's layers, enforced on its import statements (also those inside functions):

- the core (geometry, losses, metrics, the registrar interface, options, the method declarations) never
  imports a method package;
- the Slicer bridge (``learnreg.slicer``) never imports a network or a method's implementation: it reaches
  methods through :mod:`learnreg.registration` and :mod:`learnreg.methods`;
- nothing in ``learnreg`` imports the Slicer modules (``R2Register``, ``ISTNRegister``, ``CNNRegress``);
- the web app (``learnreg.web``) is a front end: it reaches methods through the registry and the Slicer
  bridge, only the command line imports it, and only its page imports trame;
- a method is declared in one place: its package's declaration module, listed once in ``METHOD_MODULES``;
- listing the methods and checking their options imports no torch (``learnreg methods`` is instant).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from learnreg.methods import METHOD_MODULES, all_methods

PACKAGE = Path(__file__).resolve().parents[1] / "learnreg"
METHOD_PACKAGES = ("learnreg.classical", "learnreg.r2n2", "learnreg.istn", "learnreg.cnnregress", "learnreg.ddfnet")
CORE = ("learnreg.device", "learnreg.errors", "learnreg.field", "learnreg.image", "learnreg.landmarks",
        "learnreg.layers", "learnreg.logs", "learnreg.losses", "learnreg.methods", "learnreg.metrics",
        "learnreg.model_files", "learnreg.options", "learnreg.progress", "learnreg.registration",
        "learnreg.sample_data", "learnreg.synthetic", "learnreg.transformations", "learnreg.velocity",
        "learnreg.warp", "learnreg.working")
SLICER_MODULES = ("R2Register", "ISTNRegister", "CNNRegress")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


MODULES = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_core_never_imports_a_method():
    for module, imported in MODULES.items():
        if within(module, CORE):
            assert not [m for m in imported if within(m, METHOD_PACKAGES)], module


def test_the_slicer_bridge_never_imports_a_method_implementation():
    for module, imported in MODULES.items():
        if within(module, ("learnreg.slicer",)):
            wrong = [m for m in imported if within(m, METHOD_PACKAGES) or m == "learnreg.learned"]
            assert not wrong, f"{module} imports {wrong}"


def test_nothing_imports_the_slicer_modules():
    for module, imported in MODULES.items():
        assert not [m for m in imported if within(m, SLICER_MODULES)], module


def test_the_web_app_is_a_front_end_over_the_bridge():
    for module, imported in MODULES.items():
        if within(module, ("learnreg.web",)):
            wrong = [m for m in imported if within(m, METHOD_PACKAGES) or m == "learnreg.learned"]
            assert not wrong, f"{module} imports {wrong}"
        elif module != "learnreg.cli":
            assert not [m for m in imported if within(m, ("learnreg.web",))], module
        if module != "learnreg.web.app":
            assert not [m for m in imported if within(m, ("trame", "trame_slicer", "trame_server"))], module


def test_every_method_is_declared_once_in_its_own_package():
    methods = all_methods()
    assert set(methods) >= {"affine", "bspline", "ddf", "r2n2", "istn", "cnnregress"}
    declarers = [m for m, imported in MODULES.items() if "learnreg.methods.declare" in imported]
    assert sorted(declarers) == sorted(METHOD_MODULES)
    for name, method in methods.items():
        package = method.registrar.split(":")[0].rsplit(".", 1)[0]
        assert method.options.__module__.startswith(package), name
        assert method.registrar_class().Options is method.options, name


@pytest.mark.parametrize("command", ["methods --verbose", "--help", "register --help", "web --help"])
def test_listing_methods_and_help_import_no_torch(command):
    code = ("import sys; from learnreg.cli import main\n"
            f"try:\n    main({command.split()!r})\nexcept SystemExit:\n    pass\n"
            "from learnreg.options import parse_options; from learnreg.methods import find_method\n"
            "parse_options(find_method('bspline').options, {'iterations': '10,10,10'})\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert 'slicer' not in sys.modules and 'vtk' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
