"""``bspline``: multi-resolution cubic B-spline free-form deformation (AirLab style; R2N2's baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch

from learnreg.classical.iterative import DeformableOptions, IterativeRegistrar
from learnreg.classical.pyramid import PyramidLevel
from learnreg.errors import InputError
from learnreg.image import Image
from learnreg.registration import register_method
from learnreg.transformations import BSplineTransformation


@dataclass
class BSplineOptions(DeformableOptions):
    """B-spline options.

    Attributes:
        control_spacing_mm: control-point spacing per level, coarse to fine, in mm; empty = automatic:
            the finest is ``final_control_spacing_voxels`` voxels (at least 1/24 of the image extent)
            and each coarser level doubles it.
        final_control_spacing_voxels: finest automatic spacing, in full-resolution voxels.
        learning_rate: Adam step of the control-point displacements, in voxels of the current level.
    """

    control_spacing_mm: tuple[float, ...] = ()
    final_control_spacing_voxels: float = 8.0
    regulariser_weight: float = 0.5
    samples: int = 32768
    stop_tolerance: float = 0.001

    def validate(self) -> None:
        super().validate()
        if self.control_spacing_mm and len(self.control_spacing_mm) != len(self.levels):
            raise InputError("give one control_spacing_mm per level, or none for automatic spacing")
        if any(s <= 0 for s in self.control_spacing_mm) or self.final_control_spacing_voxels <= 0:
            raise InputError("control-point spacings must be positive")


@register_method
class BSplineRegistrar(IterativeRegistrar):
    """Cubic B-spline FFD, control points as torch parameters, image loss plus bending/TV/diffusion,
    Adam (AMSGrad), one control grid per level, refined by a least-squares fit when the spacing shrinks."""

    name: ClassVar[str] = "bspline"
    description: ClassVar[str] = "multi-resolution cubic B-spline free-form deformation (classical baseline)"
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
