"""Convolution building blocks shared by learnreg's networks, for 2D and 3D (``ndim`` picks the class)."""

from __future__ import annotations

from torch import nn


def conv(ndim: int) -> type:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv2d if ndim == 2 else nn.Conv3d


def transposed_conv(ndim: int) -> type:
    """``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``."""
    return nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d


def instance_norm(ndim: int, channels: int) -> nn.Module:
    """Instance normalisation with a learned scale and shift."""
    return (nn.InstanceNorm2d if ndim == 2 else nn.InstanceNorm3d)(channels, affine=True)


class ConvNormAct(nn.Sequential):
    """Convolution, instance normalisation, LeakyReLU."""

    def __init__(self, ndim: int, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(conv(ndim)(c_in, c_out, kernel, stride, kernel // 2), instance_norm(ndim, c_out),
                         nn.LeakyReLU(0.1))
