"""``affine``: intensity-based affine registration (the DeepReg tutorial's classical affine example)."""

from __future__ import annotations

from typing import ClassVar, Optional

import numpy as np
import torch

from learnreg.classical.iterative import IterativeRegistrar, centre_alignment
from learnreg.classical.options import AffineOptions
from learnreg.classical.pyramid import PyramidLevel
from learnreg.image import Image
from learnreg.transformations import AffineTransformation


class AffineRegistrar(IterativeRegistrar):
    """Affine transformation ``x -> A (x - c) + c + t`` about the fixed image centre, initialised by
    aligning the image centres, fitted coarse to fine with Adam (AMSGrad)."""

    name: ClassVar[str] = "affine"
    Options: ClassVar[type] = AffineOptions
    bytes_per_voxel: ClassVar[int] = 300

    def learning_rate(self, level: PyramidLevel) -> float:
        return self.options.learning_rate

    def model_for_level(self, model: Optional[torch.nn.Module], level: PyramidLevel, index: int,
                        fixed: Image, moving: Image) -> torch.nn.Module:
        if model is None:
            scale = float(np.mean(fixed.grid.extent_mm[: fixed.ndim])) / 10.0
            return AffineTransformation(level.grid, centre_alignment(fixed, moving), translation_scale=max(scale, 1e-3))
        model.set_grid(level.grid)
        return model
