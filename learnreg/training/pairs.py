"""Random training pairs with a known field, drawn from an :class:`~learnreg.training.image_bank.ImageBank`.

Each pair follows :mod:`learnreg.synthetic`: a bank image ``S`` (randomly flipped) is the moving image, the
fixed image is ``S`` warped by a smooth random pull field ``v`` of a family drawn per pair from
``families`` (:data:`learnreg.synthetic.FIELD_FAMILIES`: cubic B-spline, dense smoothed noise, local large
motions, breathing; peak length uniform in ``[0, max_displacement]`` of the grid's extent, smoothness ``smoothness`` of
it), so ``v`` is exactly what a registration should find. Intensity augmentation is drawn independently for
the two images: a random gamma, a smooth multiplicative bias field, inverted contrast (with probability
``invert``) and Gaussian noise. A random affine part (rotation,
scaling, translation; :func:`learnreg.synthetic.affine_jitter_field`) can be added to ``v``. A fraction
``identity_fraction`` of the pairs is left aligned (``v = 0``, no affine part either): only their intensity
augmentation differs, which teaches that an aligned pair needs no deformation. A bank with
structure-of-interest channels gives pairs with their structure maps, warped alike and never augmented.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from learnreg.errors import InputError
from learnreg.image import Grid
from learnreg.synthetic import FIELD_FAMILIES, affine_jitter_field, smooth_random_field
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
        families: deformation families to draw from, one per pair (names of
            :data:`learnreg.synthetic.FIELD_FAMILIES`; the shipped models were trained on ``bspline`` alone).
        bias: largest amplitude of a smooth multiplicative bias field ``exp(b)``, ``|b| <= bias`` (0: none).
        invert: probability of inverting an image's contrast (``1 - I``).
        rotation_degrees, scaling, translation: largest rotation, per-axis scaling (``1 +- scaling``) and
            per-axis translation (fraction of the extent) of the affine part (0: none).
        identity_fraction: probability that a pair is left aligned, with no deformation and no affine part
            (0: none; validation pairs, drawn with the same settings, include aligned ones too). Without such
            pairs a network learns that every pair moves: the shipped 3D ddfnet and ISTN networks move Colin27
            registered to itself by 2.5 and 1.3 mm on average, the 2D ddfnet moved brain2d by 0.90 mm before its
            stages with one pair in ten aligned and 0.51 mm after.
    """

    max_displacement: float = 0.06
    smoothness_min: float = 0.2
    smoothness_max: float = 0.35
    gamma: float = 0.3
    noise: float = 0.02
    flips: bool = True
    rotation_degrees: float = 0.0
    scaling: float = 0.0
    translation: float = 0.0
    families: tuple[str, ...] = ("bspline",)
    bias: float = 0.0
    invert: float = 0.0
    identity_fraction: float = 0.0

    def validate(self) -> None:
        unknown = [f for f in self.families if f not in FIELD_FAMILIES]
        if unknown or not self.families:
            raise InputError(f"families={','.join(self.families)!r}: give one or more of {', '.join(FIELD_FAMILIES)}")
        if not (0 <= self.bias < 2 and 0 <= self.invert <= 1 and 0 <= self.identity_fraction <= 1):
            raise InputError("bias must be in [0, 2), invert and identity_fraction probabilities in [0, 1]")
        if not 0 < self.max_displacement < 0.5:
            raise InputError("max_displacement must be a fraction of the extent between 0 and 0.5")
        if not 0 < self.smoothness_min <= self.smoothness_max:
            raise InputError("smoothness_min must be positive and at most smoothness_max")
        if not (0 <= self.rotation_degrees <= 90 and 0 <= self.scaling < 1 and 0 <= self.translation < 0.5):
            raise InputError("rotation_degrees must be in [0, 90], scaling in [0, 1), translation in [0, 0.5)")


@dataclass
class PairBatch:
    """Fixed and moving images ``(B, 1, *spatial)`` in [0, 1], the true pull field ``(B, ndim, *spatial)`` in
    the training grid's units (None for pairs of different images, whose field nobody knows), for each pair
    the millimetres one such unit stands for, ``(B,)`` (its bank image's working spacing over the training
    grid's spacing), and the structure maps ``(B, S, *spatial)`` of both images when the bank has them."""

    fixed: torch.Tensor
    moving: torch.Tensor
    true_field: Optional[torch.Tensor]
    mm_per_unit: torch.Tensor
    fixed_structures: Optional[torch.Tensor] = None
    moving_structures: Optional[torch.Tensor] = None

    def to(self, device) -> "PairBatch":
        """The same batch on ``device``."""
        return PairBatch(*(None if t is None else t.to(device) for t in dataclasses.astuple(self)))


def _augment(images: torch.Tensor, settings: PairSettings, rng: np.random.Generator) -> torch.Tensor:
    batch = images.shape[0]
    per_image = (-1, *[1] * (images.dim() - 1))
    gamma = torch.from_numpy(np.exp(rng.uniform(-settings.gamma, settings.gamma, batch))).float()
    out = images.clamp_min(0).pow(gamma.view(per_image))
    if settings.bias:
        grid = Grid.make(tuple(reversed(images.shape[2:])) + (1,) * (5 - images.dim()))
        # a smooth random field's first component, scaled to |b| <= bias: one slowly varying gain per image
        bias = torch.cat([smooth_random_field(grid, rng, settings.bias * rng.uniform(), images.shape[-1] / 2)[:, :1]
                          for _ in range(batch)])
        out = (out * bias.exp()).clamp(0, 1)
    if settings.invert:  # no draw otherwise: recipes without inversion keep their random stream
        flip = torch.from_numpy(rng.random(batch) < settings.invert).view(per_image)
        out = torch.where(flip, 1 - out, out)
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
    def family():  # one family: no draw, so recipes that use only one keep their random stream
        families = settings.families
        return FIELD_FAMILIES[families[rng.integers(len(families)) if len(families) > 1 else 0]]

    fields = torch.cat([
        family()(grid, rng, extent * settings.max_displacement * rng.uniform(),
                 extent * rng.uniform(settings.smoothness_min, settings.smoothness_max))
        for _ in range(batch)])
    if settings.rotation_degrees or settings.scaling or settings.translation:
        fields = fields + torch.cat([affine_jitter_field(grid, rng, settings.rotation_degrees, settings.scaling,
                                                         settings.translation * extent) for _ in range(batch)])
    if settings.identity_fraction:  # no draw otherwise, as for inversion
        fields[torch.from_numpy(rng.random(batch) < settings.identity_fraction)] = 0.0
    with torch.no_grad():
        fixed = Warper(grid, grid)(sources, fields)
    structures = {}
    if bank.structures:
        structures = {"fixed_structures": fixed[:, 1:], "moving_structures": sources[:, 1:]}
    return PairBatch(_augment(fixed[:, :1], settings, rng), _augment(sources[:, :1], settings, rng), fields,
                     bank.spacing_mm[picks] / grid.spacing[0], **structures)


def unpaired_pairs(bank: ImageBank, batch: int, grid: Grid, settings: PairSettings,
                   rng: np.random.Generator) -> PairBatch:
    """``batch`` pairs of two different bank images (inter-subject registration; slices of one volume count as
    different images), each randomly flipped as a whole and intensity-augmented independently; no true field.
    ``settings``' deformation values are not used."""
    if len(bank) < 2:
        raise InputError("unpaired training pairs need a bank of at least two images")
    first = rng.integers(0, len(bank), batch)
    second = (first + rng.integers(1, len(bank), batch)) % len(bank)  # never the same image
    fixed, moving = bank.images[torch.from_numpy(first)].float(), bank.images[torch.from_numpy(second)].float()
    if settings.flips:
        for axis in range(2, 2 + grid.ndim):
            flip = torch.from_numpy(rng.random(batch) < 0.5)
            fixed[flip], moving[flip] = fixed[flip].flip(axis), moving[flip].flip(axis)
    structures = {}
    if bank.structures:
        structures = {"fixed_structures": fixed[:, 1:], "moving_structures": moving[:, 1:]}
    return PairBatch(_augment(fixed[:, :1], settings, rng), _augment(moving[:, :1], settings, rng), None,
                     bank.spacing_mm[torch.from_numpy(first)] / grid.spacing[0], **structures)


def training_grid(ndim: int, size: int) -> Grid:
    """The grid training pairs live on: ``size`` voxels per axis of 1 unit (network outputs are normalised,
    so the unit is arbitrary; :attr:`PairBatch.mm_per_unit` converts to each image's mm)."""
    return Grid.make((size,) * ndim + (1,) * (3 - ndim))


def validation_pairs(bank: ImageBank, count: int, grid: Grid, settings: PairSettings, seed: int,
                     device, make_pairs=random_pairs) -> list[PairBatch]:
    """``count`` fixed single-pair batches for validation: the same every run, without intensity augmentation
    (``make_pairs``: :func:`random_pairs` or :func:`unpaired_pairs`)."""
    rng = np.random.default_rng([seed, 10**6])
    plain = dataclasses.replace(settings, gamma=0.0, noise=0.0)
    return [make_pairs(bank, 1, grid, plain, rng).to(device) for _ in range(count)]
