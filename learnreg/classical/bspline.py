"""``bspline``: multi-resolution cubic B-spline free-form deformation (AirLab style; R2N2's baseline)."""

from __future__ import annotations

from typing import ClassVar, Optional

import numpy as np
import torch

from learnreg.classical.iterative import IterativeRegistrar
from learnreg.classical.options import BSplineOptions
from learnreg.classical.pyramid import PyramidLevel
from learnreg.image import Image
from learnreg.transformations import BSplineTransformation


class BSplineRegistrar(IterativeRegistrar):
    """Cubic B-spline FFD, control points as torch parameters, image loss plus bending/TV/diffusion,
    Adam (AMSGrad), one control grid per level, refined by a least-squares fit when the spacing shrinks."""

    name: ClassVar[str] = "bspline"
    Options: ClassVar[type] = BSplineOptions

    def control_spacing(self, fixed: Image, index: int) -> float:
        opts = self.options
        if opts.control_spacing_mm:
            return float(opts.control_spacing_mm[index])
        extent = float(np.mean(fixed.grid.extent_mm[: fixed.ndim]))
        finest = max(opts.final_control_spacing_voxels * float(np.mean(fixed.grid.axis_spacing)), extent / 24)
        return finest * 2 ** (len(opts.levels) - 1 - index)

    def model_for_level(self, model: Optional[torch.nn.Module], level: PyramidLevel, index: int,
                        fixed: Image, moving: Image) -> torch.nn.Module:
        # a control grid no finer than two level voxels keeps the least-squares refit well posed
        spacing = max(self.control_spacing(fixed, index), 2.0 * float(max(level.grid.axis_spacing)))
        if model is not None and np.allclose(model.control_spacing_mm, spacing):
            model.set_grid(level.grid)
            return model
        new = BSplineTransformation(level.grid, spacing).to(level.fixed.device)
        if model is not None:
            model.set_grid(level.grid)
            with torch.no_grad():
                new.fit(model())
        return new
