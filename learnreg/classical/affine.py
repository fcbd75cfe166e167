"""``affine``: intensity-based affine registration (the DeepReg tutorial's classical affine example)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch

from learnreg.classical.iterative import IterativeOptions, IterativeRegistrar, centre_alignment
from learnreg.classical.pyramid import PyramidLevel
from learnreg.image import Image
from learnreg.registration import register_method
from learnreg.transformations import AffineTransformation


@dataclass
class AffineOptions(IterativeOptions):
    """Affine defaults: two coarse levels suffice for 12 (2D: 6) parameters.

    ``learning_rate`` is the Adam step of the matrix entries (dimensionless) and of the translation in
    units of a tenth of the image extent.
    """

    levels: tuple[float, ...] = (4, 2)
    iterations: tuple[int, ...] = (150, 75)
    learning_rate: float = 0.005
    samples: int = 32768
    stop_tolerance: float = 0.001


@register_method
class AffineRegistrar(IterativeRegistrar):
    """Affine transformation ``x -> A (x - c) + c + t`` about the fixed image centre, initialised by
    aligning the image centres, fitted coarse to fine with Adam (AMSGrad)."""

    name: ClassVar[str] = "affine"
    description: ClassVar[str] = "iterative intensity-based affine registration (12 parameters in 3D, 6 in 2D)"
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
