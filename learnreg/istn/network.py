"""The ISTN (Lee et al., MICCAI 2019) for 2D and 3D images: an image transformer network feeding a spatial one.

- :class:`ImageTransformerNetwork` (ITN): a small U-Net (strided-convolution down, transposed-convolution
  up, additive skips) mapping a z-scored image to a same-size representation with one linear channel per
  structure of interest; shared by the fixed and the moving image.
- :class:`SpatialTransformerNetwork` (STN): 5x5(x5) convolutions, each followed by 2x average pooling, then
  a fully connected layer and a zero-initialised head with the transformation's parameters (so an untrained
  STN predicts the identity). Its input is the two ITN representations, or the two images for the STN-u and
  STN-s variants, which have no ITN.
- :class:`ISTNNetwork`: both, with the transformation model (:mod:`learnreg.istn.transforms`).

Everything happens on the working grid (:mod:`learnreg.working`); :class:`ISTNConfig` is stored with the
weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from learnreg.errors import InputError
from learnreg.istn.method import TRANSFORMATIONS, VARIANTS
from learnreg.istn.transforms import AffineModel, BSplineModel
from learnreg.layers import ConvNormAct, conv, transposed_conv
from learnreg.model_files import StoredConfig

#: training modes of the paper: unsupervised STN, structure-supervised STN, explicit and implicit ISTN


@dataclass(frozen=True)
class ISTNConfig(StoredConfig):
    """The architecture, stored with the weights.

    Attributes:
        ndim: 2 or 3.
        working_size: voxels per axis of the working grid.
        transformation: ``affine`` or ``bspline``.
        variant: one of :data:`~learnreg.istn.method.VARIANTS`; ``istn-e`` and ``istn-i`` have an ITN.
        structures: structure-of-interest channels (the ITN's outputs).
        itn_channels: channels of the ITN's levels (official code: 2, 4, 8, 16).
        stn_channels: channels of the STN's convolution + pooling layers (official: 8, 16, 32).
        fc_hidden: width of the STN's fully connected layer.
        control_spacing: B-spline control-point spacing in working voxels (official: 10).
        max_translation, max_log_scale, max_shear: affine bounds (normalised units, log factor, coefficient).
        max_rotation: affine rotation bound, radians (official: pi / 4).
        max_control_displacement: B-spline control-point bound, normalised units (official: 0.2).
    """

    ndim: int = 3
    working_size: int = 64
    transformation: str = "affine"
    variant: str = "istn-e"
    structures: int = 1
    itn_channels: tuple[int, ...] = (8, 16, 32)
    stn_channels: tuple[int, ...] = (8, 16, 32, 64)
    fc_hidden: int = 256
    control_spacing: int = 8
    max_translation: float = 0.2
    max_rotation: float = math.pi / 4
    max_log_scale: float = 0.2
    max_shear: float = 0.2
    max_control_displacement: float = 0.2

    @property
    def uses_itn(self) -> bool:
        return self.variant.startswith("istn")

    @property
    def size_multiple(self) -> int:
        return 2 ** max(len(self.stn_channels), len(self.itn_channels) - 1)

    def validate(self) -> None:
        if self.ndim not in (2, 3):
            raise InputError("ndim must be 2 or 3")
        if self.transformation not in TRANSFORMATIONS:
            raise InputError(f"transformation {self.transformation!r} must be one of {', '.join(TRANSFORMATIONS)}")
        if self.variant not in VARIANTS:
            raise InputError(f"variant {self.variant!r} must be one of {', '.join(VARIANTS)}")
        if self.structures < 1:
            raise InputError("structures must be at least 1")
        if self.working_size % self.size_multiple or self.working_size < 2 * self.size_multiple:
            raise InputError(f"working_size must be a multiple of {self.size_multiple}, at least "
                             f"{2 * self.size_multiple}, for these channel lists")
        if not 1 <= self.control_spacing < self.working_size:
            raise InputError("control_spacing must be between 1 and working_size - 1 voxels")


class ImageTransformerNetwork(nn.Module):
    """U-Net image -> representation with ``out_channels`` linear channels, same size as the input."""

    def __init__(self, ndim: int, out_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.first = ConvNormAct(ndim, 1, channels[0], 3)
        self.down = nn.ModuleList(
            nn.Sequential(ConvNormAct(ndim, a, b, 3, stride=2), ConvNormAct(ndim, b, b, 3))
            for a, b in zip(channels[:-1], channels[1:]))
        self.up = nn.ModuleList(transposed_conv(ndim)(b, a, 2, stride=2) for a, b in zip(channels[:-1], channels[1:]))
        self.merge = nn.ModuleList(ConvNormAct(ndim, a, a, 3) for a in channels[:-1])
        self.out = conv(ndim)(channels[0], out_channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.first(image)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips)):
            x = merge(up(x) + skip)
        return self.out(x)


class SpatialTransformerNetwork(nn.Module):
    """Fixed and moving (representations) -> raw transformation parameters ``(B, parameter_count)``."""

    def __init__(self, ndim: int, in_channels: int, channels: tuple[int, ...], working_size: int, fc_hidden: int,
                 parameter_count: int) -> None:
        super().__init__()
        pool = nn.AvgPool2d if ndim == 2 else nn.AvgPool3d
        layers, previous = [], in_channels
        for c in channels:
            layers += [ConvNormAct(ndim, previous, c, 5), pool(2)]
            previous = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        size = working_size // 2 ** len(channels)
        self.hidden = nn.Sequential(nn.Linear(previous * size ** ndim, fc_hidden), nn.LeakyReLU(0.1))
        self.head = nn.Linear(fc_hidden, parameter_count)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def encode(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """The hidden layer's output ``(B, fc_hidden)``: everything before the output layer ``head``."""
        return self.hidden(self.features(torch.cat([fixed, moving], dim=1)))

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(fixed, moving))


@dataclass
class ISTNOutput:
    """One forward pass: the representations the STN saw and its raw parameters."""

    fixed_representation: torch.Tensor  # (B, C, *spatial): ITN outputs, or the images without an ITN
    moving_representation: torch.Tensor
    raw: torch.Tensor  # (B, parameter_count), bounded by the transformation model


class ISTNNetwork(nn.Module):
    """ITN (for the ISTN variants) + STN + transformation model; see the module docstring."""

    def __init__(self, config: ISTNConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        nd = config.ndim
        if config.transformation == "affine":
            self.transformation = AffineModel(nd, config.working_size, config.max_translation, config.max_rotation,
                                              config.max_log_scale, config.max_shear)
        else:
            self.transformation = BSplineModel(nd, config.working_size, config.control_spacing,
                                               config.max_control_displacement)
        self.itn: Optional[ImageTransformerNetwork] = (
            ImageTransformerNetwork(nd, config.structures, config.itn_channels) if config.uses_itn else None)
        in_channels = 2 * (config.structures if config.uses_itn else 1)
        self.stn = SpatialTransformerNetwork(nd, in_channels, config.stn_channels, config.working_size,
                                             config.fc_hidden, self.transformation.parameter_count)

    def represent(self, image: torch.Tensor) -> torch.Tensor:
        """The ITN representation of z-scored images ``(B, 1, *spatial)`` (the images themselves without an ITN)."""
        return image if self.itn is None else self.itn(image)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> ISTNOutput:
        fixed_r, moving_r = self.represent(fixed), self.represent(moving)
        return ISTNOutput(fixed_r, moving_r, self.stn(fixed_r, moving_r))
