"""Training configuration files (TOML, or YAML when PyYAML is installed) read into typed sections.

A configuration is a file of sections (``[data]``, ``[model]``, ...); each section fills one dataclass
whose fields are the section's keys. Unknown sections or keys, wrong types and missing files are
:class:`~learnreg.errors.InputError` naming the file, the key and the fix. Relative paths in the file are
relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from learnreg.errors import InputError
from learnreg.options import parse_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport (a dependency there)
    import tomli as tomllib


def read_config_file(path) -> dict[str, Any]:
    """The raw contents of a ``.toml`` / ``.yaml`` / ``.yml`` configuration file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"configuration file {path} does not exist; pass an existing .toml or .yaml file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            with open(path, "rb") as f:
                return tomllib.load(f)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError(f"{path} is YAML but PyYAML is not installed; 'pip install pyyaml' or use a "
                                 ".toml file") from None
            content = yaml.safe_load(path.read_text())
            if not isinstance(content, dict):
                raise InputError(f"{path} must hold sections (a mapping), not {type(content).__name__}")
            return content
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise InputError(f"configuration file {path} is not valid {suffix[1:].upper()}: {exc}") from None
    raise InputError(f"configuration file {path} must end in .toml, .yaml or .yml")


def apply_overrides(raw: dict[str, Any], overrides) -> dict[str, Any]:
    """``raw`` with ``SECTION.KEY=VALUE`` overrides applied (values as text, read like the file's)."""
    raw = {name: dict(values) if isinstance(values, dict) else values for name, values in raw.items()}
    for item in overrides or ():
        target, sep, value = item.partition("=")
        section, dot, key = target.strip().partition(".")
        if not sep or not dot or not section or not key:
            raise InputError(f"override {item!r} must look like SECTION.KEY=VALUE (e.g. model.variant=istn-e)")
        values = raw.setdefault(section, {})
        if isinstance(values, dict):
            values[key.strip()] = value.strip()
    return raw


def read_sections(path, sections: dict[str, type], overrides=()) -> dict[str, Any]:
    """Read ``path`` and build one dataclass per section (missing sections take their defaults).

    ``overrides`` are ``SECTION.KEY=VALUE`` texts that replace the file's values. Fields annotated as paths
    (names ending in ``_path``, ``folder`` or ``images``) are resolved relative to the configuration file's
    folder, overridden ones too.
    """
    path = Path(path)
    raw = apply_overrides(read_config_file(path), overrides)
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise InputError(f"{path}: unknown section(s) {', '.join(unknown)}; valid sections: {', '.join(sections)}")
    built = {}
    for name, section_type in sections.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise InputError(f"{path}: [{name}] must be a section of key = value lines")
        try:
            section = parse_options(section_type, values)
        except InputError as exc:
            raise InputError(f"{path} [{name}]: {exc}") from None
        built[name] = _resolve_paths(section, path.parent)
    return built


def _resolve_paths(section, base: Path):
    changes = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name.endswith(("_path", "folder", "images")) and value:
            if isinstance(value, (tuple, list)):
                changes[f.name] = tuple(str(base / v) for v in value)
            else:
                changes[f.name] = str(base / value)
    return dataclasses.replace(section, **changes) if changes else section
