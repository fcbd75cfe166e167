"""The similarity-steered regression CNN (Cao et al., MICCAI 2017), for 2D and 3D patches.

Input: a fixed patch (``P`` voxels per axis) centred on a point ``u`` and a moving patch (``P + 2R``)
centred on the same position. :class:`~learnreg.cnnregress.similarity.NCCSimilarity` turns them into one
similarity map per neighbourhood radius; the fixed patch, the central ``P`` part of the moving patch and the
maps are the input channels. Then ``3 x 3(x 3)`` convolutions without padding, each followed by ReLU, the
channels doubling every two layers (paper: 64 to 512), a single 2x max pooling after ``pool_after``
convolutions, and three fully connected layers (ReLU, ReLU, tanh) whose output, times
``max_displacement``, is the pull displacement of ``u`` in working voxels along the working grid's axes
``(i, j[, k])``: the moving point that corresponds to fixed point ``u`` is ``u + d``.

:class:`CNNRegressConfig` is stored with the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from learnreg.cnnregress.similarity import NCCSimilarity, centre_crop
from learnreg.errors import InputError
from learnreg.layers import conv
from learnreg.model_files import StoredConfig


@dataclass(frozen=True)
class CNNRegressConfig(StoredConfig):
    """The architecture and its working space, stored with the weights.

    Attributes:
        ndim: 2 or 3.
        working_size: voxels per axis of the working grid the patches are cut from.
        patch_size: ``P``, voxels per axis of the fixed patch (odd).
        ncc_radii: neighbourhood radii of the similarity maps (paper: four kernel sizes).
        channels: output channels of the unpadded convolutions (paper: 64, 64, 128, 128, 256, 256, 512, 512).
        pool_after: the 2x max pooling follows this many convolutions.
        fc_hidden: widths of the first two fully connected layers.
        max_displacement: ``tau``, the largest displacement the network predicts, in working voxels (the
            tanh output's scale and the cut-off of the equalised sampling).
        negative_slope: of the activations; 0 is the paper's ReLU, a small slope (leaky ReLU) keeps units from
            dying, which stalled the 3D network's training.
    """

    ndim: int = 3
    working_size: int = 64
    patch_size: int = 17
    ncc_radii: tuple[int, ...] = (1, 2, 3, 4)
    channels: tuple[int, ...] = (16, 16, 32, 32)
    pool_after: int = 2
    fc_hidden: tuple[int, ...] = (128, 64)
    max_displacement: float = 4.0
    negative_slope: float = 0.0

    @property
    def margin(self) -> int:
        """``R``: extra voxels per side of the moving patch."""
        return max(self.ncc_radii)

    @property
    def input_size(self) -> int:
        """Voxels per axis of the moving patch, ``P + 2R``."""
        return self.patch_size + 2 * self.margin

    def feature_size(self) -> int:
        """Voxels per axis after the convolutions and the pooling."""
        size = self.patch_size
        for layer in range(len(self.channels)):
            if layer == self.pool_after:
                size //= 2
            size -= 2
        return size

    def validate(self) -> None:
        if self.ndim not in (2, 3):
            raise InputError("ndim must be 2 or 3")
        if self.patch_size % 2 == 0 or self.patch_size < 5:
            raise InputError("patch_size must be odd and at least 5")
        if not self.ncc_radii or min(self.ncc_radii) < 1 or max(self.ncc_radii) > self.patch_size // 2:
            raise InputError(f"ncc_radii must be between 1 and patch_size // 2 = {self.patch_size // 2}")
        if not self.channels or not 0 <= self.pool_after <= len(self.channels):
            raise InputError("channels must list at least one layer and pool_after must be 0 to len(channels)")
        if self.feature_size() < 1:
            raise InputError(f"patch_size {self.patch_size} is too small for {len(self.channels)} unpadded "
                             "convolutions and a pooling; use a larger patch or fewer layers")
        if len(self.fc_hidden) != 2 or min(self.fc_hidden) < 1:
            raise InputError("fc_hidden must list the widths of two fully connected layers")
        if not 0 <= self.negative_slope < 1:
            raise InputError("negative_slope must be in [0, 1) (0: ReLU)")
        if not 0 < self.max_displacement < self.working_size / 2:
            raise InputError("max_displacement must be positive and less than half the working size (voxels)")


class CNNRegressNetwork(nn.Module):
    """Patch pair -> displacement of the patch centre (see the module docstring)."""

    def __init__(self, config: CNNRegressConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        nd = config.ndim
        self.similarity = NCCSimilarity(nd, config.ncc_radii, config.patch_size)
        layers: list[nn.Module] = []
        c_in = 2 + len(config.ncc_radii)
        for index, c_out in enumerate(config.channels):
            if index == config.pool_after:
                layers.append(nn.MaxPool2d(2) if nd == 2 else nn.MaxPool3d(2))
            layers += [conv(nd)(c_in, c_out, 3), nn.LeakyReLU(config.negative_slope, inplace=True)]
            c_in = c_out
        if config.pool_after == len(config.channels):
            layers.append(nn.MaxPool2d(2) if nd == 2 else nn.MaxPool3d(2))
        self.features = nn.Sequential(*layers)
        first, second = config.fc_hidden
        self.regressor = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * config.feature_size() ** nd, first),
            nn.LeakyReLU(config.negative_slope, inplace=True), nn.Linear(first, second),
            nn.LeakyReLU(config.negative_slope, inplace=True), nn.Linear(second, nd), nn.Tanh())

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """Displacements ``(B, ndim)`` in working voxels from fixed patches ``(B, 1, *[P] * ndim)`` and moving
        patches ``(B, 1, *[P + 2R] * ndim)`` (z-scored intensities)."""
        maps = self.similarity(fixed, moving)
        inputs = torch.cat([fixed, centre_crop(moving, self.config.patch_size), maps], dim=1)
        return self.regressor(self.features(inputs)) * self.config.max_displacement
