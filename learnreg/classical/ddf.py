"""``ddf``: dense displacement-field optimisation with a smoothness regulariser (the DeepReg tutorial's
non-rigid example)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from learnreg.classical.iterative import DeformableOptions, IterativeRegistrar
from learnreg.classical.pyramid import PyramidLevel
from learnreg.image import Image
from learnreg.registration import register_method
from learnreg.transformations import DenseTransformation


@dataclass
class DDFOptions(DeformableOptions):
    """Dense-field options; ``learning_rate`` is the Adam step per voxel displacement, in level voxels."""

    regulariser: str = "diffusion"
    regulariser_weight: float = 0.03
    learning_rate: float = 0.2


@register_method
class DDFRegistrar(IterativeRegistrar):
    """One displacement vector per voxel, optimised coarse to fine (upsampled between levels) under a
    bending-energy or diffusion regulariser."""

    name: ClassVar[str] = "ddf"
    description: ClassVar[str] = "dense displacement-field optimisation with diffusion or bending regulariser"
    Options: ClassVar[type] = DDFOptions

    def model_for_level(self, model: Optional[torch.nn.Module], level: PyramidLevel, index: int,
                        fixed: Image, moving: Image) -> torch.nn.Module:
        if model is None:
            return DenseTransformation(level.grid)
        model.set_grid(level.grid)
        return model
