"""The held-out images: what the benchmarks evaluate learned methods on, and what no training may read.

They are the pyradiomics 3.0.1 test images (two chest CTs, two brain MRs with tumours, from patients that
appear nowhere else in the project), unpacked into ``benchmark_data/`` by ``scripts/get_benchmark_data.sh``.
:func:`check_not_held_out` refuses them to every training recipe, by folder and, for copies elsewhere, by
content (SHA-256).
"""

from __future__ import annotations

from pathlib import Path

from learnreg.errors import InputError
from learnreg.model_files import file_sha256

#: folder name that holds only held-out images
HELD_OUT_FOLDER = "benchmark_data"

#: file name -> SHA-256 of each held-out image and label map
HELD_OUT_SHA256 = {
    "brain1_image.nrrd": "fffdb111ee8b428ede7256707393c927a7d5be912f0604cf3c6f1bd5fc9644cf",
    "brain1_label.nrrd": "ae6d8e6b84f7e99d68c210ee2fa6aaaefa0b2df0a84f55efca4feebe2b216059",
    "brain2_image.nrrd": "d35a1c6a3e1eb72bae97c5515472fbe057fb38ee8e1e199215d1c3c6f292332e",
    "brain2_label.nrrd": "15189c024936ecc337649b9a10c475117c7c40df0d53c22163f9a2023ed741a5",
    "lung1_image.nrrd": "379fa48bf34cfa961e6f5ec19c0c38757a30b9aa884212ef28dc29b5061c64ed",
    "lung1_label.nrrd": "e9d9a88054d7bc1d3034193ff907ce6b8c6ba28a7bc3a16f23728982d1b6b50a",
    "lung2_image.nrrd": "aa2b94eec79127ed786798ac8dc3c013010e1692d5787bebfae1a1e9685a4651",
}


def check_not_held_out(path: Path) -> None:
    """Raise :class:`InputError` when ``path`` is a held-out image (in a ``benchmark_data`` folder, or a copy)."""
    if HELD_OUT_FOLDER in Path(path).resolve().parts:
        raise InputError(f"{path} is in {HELD_OUT_FOLDER}/, the images held out for evaluation; training may not "
                         "read them: choose training images elsewhere")
    if file_sha256(Path(path)) in HELD_OUT_SHA256.values():
        raise InputError(f"{path} is a copy of a held-out evaluation image; training may not read it: choose "
                         "other training images")
