"""``ddf``: dense displacement-field optimisation with a smoothness regulariser (the DeepReg tutorial's
non-rigid example)."""

from __future__ import annotations

from typing import ClassVar, Optional

import torch

from learnreg.classical.iterative import IterativeRegistrar
from learnreg.classical.options import DDFOptions
from learnreg.classical.pyramid import PyramidLevel
from learnreg.image import Image
from learnreg.transformations import DenseTransformation


class DDFRegistrar(IterativeRegistrar):
    """One displacement vector per voxel, optimised coarse to fine (upsampled between levels) under a
    bending-energy or diffusion regulariser."""

    name: ClassVar[str] = "ddf"
    Options: ClassVar[type] = DDFOptions

    def model_for_level(self, model: Optional[torch.nn.Module], level: PyramidLevel, index: int,
                        fixed: Image, moving: Image) -> torch.nn.Module:
        if model is None:
            return DenseTransformation(level.grid)
        model.set_grid(level.grid)
        return model
