"""The ``ddfnet`` network: DeepReg's LocalNet (dense outputs) and GlobalNet (affine output) in one module.

Input: the fixed and moving images on the working grid (:mod:`learnreg.working`), z-scored, as two channels.
An encoder (convolution, instance normalisation, LeakyReLU; stride-2 levels) and, for dense outputs, a
decoder with additive skip connections (LocalNet's shape, voxelmorph's U-Net family) whose last layer,
initialised near zero, gives ``ndim`` channels at full working resolution. The output convention, for every
head: a pull displacement field in *working voxels* ``(B, ndim, *spatial)`` along the working grid's axes
(the grid is isotropic, so one voxel is ``working.spacing[0]`` mm along every axis):

- ``ddf``: the last layer's output is the displacement;
- ``svf``: it is a static velocity field, integrated by scaling and squaring (:mod:`learnreg.velocity`);
- ``affine``: the encoder's globally pooled features regress ``A - I`` and ``t`` (zero at start: the
  identity), and the displacement is ``(A - I)(x - c) + t`` with ``x`` in voxels and ``c`` the grid's centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from learnreg.ddfnet.method import OUTPUTS
from learnreg.errors import InputError
from learnreg.image import Grid
from learnreg.layers import ConvNormAct, conv, transposed_conv
from learnreg.model_files import StoredConfig
from learnreg.velocity import exponentiate
from learnreg.warp import Warper


@dataclass
class DDFNetConfig(StoredConfig):
    """The architecture, stored with the weights.

    Attributes:
        ndim: 2 or 3.
        working_size: voxels per axis of the working grid (a multiple of ``2 ** (len(channels) - 1)``).
        output: ``ddf``, ``svf`` or ``affine``.
        channels: channels of the encoder's levels (each after the first halves the resolution).
        squarings: scaling-and-squaring steps of the ``svf`` output.
    """

    ndim: int = 2
    working_size: int = 128
    output: str = "svf"
    channels: tuple[int, ...] = (16, 32, 32, 64)
    squarings: int = 7

    def validate(self) -> None:
        if self.ndim not in (2, 3):
            raise InputError("ndim must be 2 or 3")
        if self.output not in OUTPUTS:
            raise InputError(f"output={self.output!r} must be one of {', '.join(OUTPUTS)}")
        if len(self.channels) < 2 or self.working_size % 2 ** (len(self.channels) - 1):
            raise InputError(f"working_size={self.working_size} must be a multiple of 2 ** {len(self.channels) - 1} "
                             "(one halving per encoder level after the first)")


@dataclass
class DDFNetOutput:
    """A pass: the pull displacement in working voxels, and what it came from (velocity or affine parameters)."""

    field: torch.Tensor
    velocity: Optional[torch.Tensor] = None
    linear: Optional[torch.Tensor] = None  # (B, ndim, ndim): A
    translation: Optional[torch.Tensor] = None  # (B, ndim), working voxels


class DDFNet(nn.Module):
    """Encoder-decoder registration network; ``forward(fixed, moving) -> DDFNetOutput``."""

    def __init__(self, config: DDFNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        nd, channels = config.ndim, config.channels
        self.first = ConvNormAct(nd, 2, channels[0], 3)
        self.down = nn.ModuleList(
            nn.Sequential(ConvNormAct(nd, a, b, 3, stride=2), ConvNormAct(nd, b, b, 3))
            for a, b in zip(channels[:-1], channels[1:]))
        if config.output == "affine":
            self.regress = nn.Linear(channels[-1], nd * (nd + 1))
            nn.init.zeros_(self.regress.weight)
            nn.init.zeros_(self.regress.bias)
        else:
            self.up = nn.ModuleList(transposed_conv(nd)(b, a, 2, stride=2)
                                    for a, b in zip(channels[:-1], channels[1:]))
            self.merge = nn.ModuleList(ConvNormAct(nd, a, a, 3) for a in channels[:-1])
            self.head = conv(nd)(channels[0], nd, 3, padding=1)
            nn.init.normal_(self.head.weight, std=1e-5)
            nn.init.zeros_(self.head.bias)
        if config.output == "svf":  # the velocity is integrated on the working grid in voxel units
            size = (config.working_size,) * nd + (1,) * (3 - nd)
            self.voxel_warper = Warper(Grid.make(size), Grid.make(size))
        if config.output == "affine":  # voxel positions relative to the grid's centre, (ndim, *spatial)
            centre = (config.working_size - 1) / 2
            axes = [torch.arange(config.working_size, dtype=torch.float32) - centre] * nd
            mesh = torch.meshgrid(*axes, indexing="ij")  # (k,) j, i order of the spatial dimensions
            self.register_buffer("positions", torch.stack(list(reversed(mesh)), dim=0), persistent=False)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> DDFNetOutput:
        x = self.first(torch.cat([fixed, moving], dim=1))
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        nd = self.config.ndim
        if self.config.output == "affine":
            parameters = self.regress(x.flatten(2).mean(2))
            offset = parameters[:, : nd * nd].view(-1, nd, nd)
            translation = parameters[:, nd * nd:]
            field = torch.einsum("nab,b...->na...", offset, self.positions) + translation.view(-1, nd, *[1] * nd)
            eye = torch.eye(nd, device=parameters.device, dtype=parameters.dtype)
            return DDFNetOutput(field, linear=eye + offset, translation=translation)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips)):
            x = merge(up(x) + skip)
        raw = self.head(x)
        if self.config.output == "ddf":
            return DDFNetOutput(raw)
        return DDFNetOutput(exponentiate(raw, self.voxel_warper, self.config.squarings), velocity=raw)
