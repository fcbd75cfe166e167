"""Random training pairs with a known field, drawn from an :class:`~learnreg.training.image_bank.ImageBank`.

Each pair follows :mod:`learnreg.synthetic`: a bank image ``S`` (randomly flipped) is the moving image, the
fixed image is ``S`` warped by a smooth random pull field ``v`` (:func:`learnreg.synthetic.smooth_random_field`,
peak length uniform in ``[0, max_displacement]`` of the grid's extent, control points every
``smoothness`` of it), so ``v`` is exactly what a registration should find. Intensity augmentation is
drawn independently for the two images: a random gamma and Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learnreg.errors import InputError
from learnreg.image import Grid
from learnreg.synthetic import smooth_random_field
from learnreg.training.image_bank import ImageBank
from learnreg.warp import Warper


@dataclass
class PairSettings:
    """The ``[pairs]`` section of a training configuration.

    Attributes:
        max_displacement: largest peak displacement, as a fraction of the working grid's extent.
        smoothness_min, smoothness_max: range of the control-point spacing, as fractions of the extent.
        gamma: intensity gamma drawn from ``exp(U(-gamma, gamma))`` per image.
        noise: standard deviation of additive Gaussian noise (intensities in [0, 1]).
        flips: randomly flip the source image along each axis.
    """

    max_displacement: float = 0.06
    smoothness_min: float = 0.2
    smoothness_max: float = 0.35
    gamma: float = 0.3
    noise: float = 0.02
    flips: bool = True

    def validate(self) -> None:
        if not 0 < self.max_displacement < 0.5:
            raise InputError("max_displacement must be a fraction of the extent between 0 and 0.5")
        if not 0 < self.smoothness_min <= self.smoothness_max:
            raise InputError("smoothness_min must be positive and at most smoothness_max")


@dataclass
class PairBatch:
    """Fixed and moving images ``(B, 1, *spatial)`` in [0, 1], the true pull field ``(B, ndim, *spatial)`` in
    the training grid's units, and for each pair the millimetres one such unit stands for, ``(B,)`` (its bank
    image's working spacing over the training grid's spacing)."""

    fixed: torch.Tensor
    moving: torch.Tensor
    true_field: torch.Tensor
    mm_per_unit: torch.Tensor

    def to(self, device) -> "PairBatch":
        """The same batch on ``device``."""
        return PairBatch(*(t.to(device) for t in (self.fixed, self.moving, self.true_field, self.mm_per_unit)))


def _augment(images: torch.Tensor, settings: PairSettings, rng: np.random.Generator) -> torch.Tensor:
    batch = images.shape[0]
    gamma = torch.from_numpy(np.exp(rng.uniform(-settings.gamma, settings.gamma, batch))).float()
    out = images.clamp_min(0).pow(gamma.view(-1, *[1] * (images.dim() - 1)))
    if settings.noise:
        out = out + settings.noise * torch.from_numpy(rng.standard_normal(out.shape)).float()
    return out


def random_pairs(bank: ImageBank, batch: int, grid: Grid, settings: PairSettings,
                 rng: np.random.Generator) -> PairBatch:
    """``batch`` random pairs on ``grid`` (the bank's working size and some spacing)."""
    nd = grid.ndim
    extent = float(grid.extent_mm[0])
    picks = torch.from_numpy(rng.integers(0, len(bank), batch))
    sources = bank.images[picks].float()
    if settings.flips:
        for axis in range(2, 2 + nd):
            flip = torch.from_numpy(rng.random(batch) < 0.5)
            sources[flip] = sources[flip].flip(axis)
    fields = torch.cat([
        smooth_random_field(grid, rng, extent * settings.max_displacement * rng.uniform(),
                            extent * rng.uniform(settings.smoothness_min, settings.smoothness_max))
        for _ in range(batch)])
    with torch.no_grad():
        fixed = Warper(grid, grid)(sources, fields)
    return PairBatch(_augment(fixed, settings, rng), _augment(sources, settings, rng), fields,
                     bank.spacing_mm[picks] / grid.spacing[0])
