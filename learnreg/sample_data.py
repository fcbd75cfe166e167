"""The real sample images bundled with learnreg (sources and licences in ``learnreg/data/SOURCES.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class SamplePair:
    """A bundled pair: images, and where it has them, exact landmark pairs and label maps."""

    name: str
    fixed: Path
    moving: Path
    fixed_landmarks: Optional[Path] = None
    moving_landmarks: Optional[Path] = None
    fixed_labels: Optional[Path] = None
    moving_labels: Optional[Path] = None
    thumbnail: Optional[Path] = None  # 128 x 128 PNG of the fixed image, shown by Slicer's Sample Data

    def load(self):
        """``(fixed, moving, landmarks)``: the images, and the landmark pairs matched (None without them)."""
        from learnreg.image import load_image
        from learnreg.landmarks import pair_landmarks, read_landmarks

        fixed, moving = load_image(self.fixed), load_image(self.moving)
        if self.fixed_landmarks is None:
            return fixed, moving, None
        return fixed, moving, pair_landmarks(read_landmarks(self.fixed_landmarks),
                                             read_landmarks(self.moving_landmarks), fixed, moving)


def _optional(path: Path) -> Optional[Path]:
    return path if path.is_file() else None


def sample_pairs() -> dict[str, SamplePair]:
    """Bundled pairs by name: ``brain2d``, ``brain3d`` and ``head3d`` (synthetic, exact landmarks; ``head3d``'s
    image is held out from every shipped model), ``ratlung2d`` (real)."""
    pairs = {}
    for folder in sorted((DATA_DIR / "pairs").iterdir()):
        pairs[folder.name] = SamplePair(
            folder.name, folder / "fixed.nii.gz", folder / "moving.nii.gz",
            _optional(folder / "fixed_landmarks.mrk.json"), _optional(folder / "moving_landmarks.mrk.json"),
            _optional(folder / "fixed_labels.nii.gz"), _optional(folder / "moving_labels.nii.gz"),
            _optional(folder / "thumbnail.png"))
    pairs["ratlung2d"] = SamplePair("ratlung2d", DATA_DIR / "rat_lung_slice1.nii.gz", DATA_DIR / "rat_lung_slice2.nii.gz",
                                    thumbnail=_optional(DATA_DIR / "rat_lung_thumbnail.png"))
    return pairs


def sample_image(name: str) -> Path:
    """Path of a bundled image: ``colin27_t1_3mm``, ``colin27_tissue_3mm``, ``brain_t1_slice``, ``rat_lung_slice1/2``."""
    path = DATA_DIR / f"{name}.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no bundled image {name!r} in {DATA_DIR}")
    return path
