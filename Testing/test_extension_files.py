"""Static checks of the Slicer extension files that cannot run here: every file a CMakeLists names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_extension_metadata_and_named_files_exist():
    text = (ROOT / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_DESCRIPTION", "EXTENSION_DEPENDS"):
        assert re.search(rf'set\({key} "[^"]+"\)', text), key
    assert 'set(EXTENSION_CATEGORY "Registration")' in text
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text
    icon = re.search(r'set\(EXTENSION_ICONURL "([^"]+)"\)', text).group(1)
    assert (ROOT / icon).is_file()
    for directory in re.findall(r"^\s*DIRECTORY (\S+)", text, re.MULTILINE):
        assert (ROOT / directory).is_dir(), directory
    for sub in re.findall(r"add_subdirectory\((\S+)\)", text):
        assert (ROOT / sub / "CMakeLists.txt").is_file(), sub
