"""ISTN losses: the paper's four training modes and the test-time refinement loss, all mean squared errors.

With ``F, M`` the z-scored fixed and moving images, ``S_F, S_M`` their structure-of-interest maps (one
channel per structure, values in [0, 1]), ``F', M'`` the ITN representations and ``X_theta`` an image
warped by the STN's transformation:

- ``stn-u``: ``MSE(M_theta, F)`` (sampled inside the moving image only);
- ``stn-s``: ``MSE(S_M;theta, S_F)``;
- ``istn-e`` (explicit): ``MSE(M', S_M) + MSE(F', S_F) + MSE(S_M;theta, S_F)``;
- ``istn-i`` (implicit): ``MSE(M'_theta, S_F) + MSE(S_M;theta, F') + MSE(S_M;theta, S_F)``;
- refinement (no annotations): ``MSE(M'_theta, F')`` (the images for STN-u and STN-s).

Every training loss adds ``regulariser_weight`` x the transformation's regulariser (the B-spline's bending
energy; 0 for affine).
"""

from __future__ import annotations

import torch

from learnreg.image import Grid
from learnreg.istn.network import ISTNNetwork, ISTNOutput
from learnreg.losses.image import MSE
from learnreg.warp import Warper
from learnreg.working import zscore


def half_extent(grid: Grid) -> float:
    """Millimetres per normalised unit of a working grid: half the span of its voxel centres."""
    return (grid.size[0] - 1) * grid.spacing[0] / 2


class WorkingWarp(torch.nn.Module):
    """Warp tensors on a working grid by the transformation a network predicted (normalised parameters)."""

    def __init__(self, network: ISTNNetwork, grid: Grid) -> None:
        super().__init__()
        self.transformation = network.transformation
        self.warper = Warper(grid, grid)
        self.mm_per_unit = half_extent(grid)

    def field(self, raw: torch.Tensor) -> torch.Tensor:
        """Pull field on the working grid, mm ``(B, ndim, *spatial)``."""
        return self.transformation.field(raw) * self.mm_per_unit

    def forward(self, images: torch.Tensor, raw: torch.Tensor, return_mask: bool = False):
        return self.warper(images, self.field(raw), return_mask=return_mask)


def representation_loss(output: ISTNOutput, warp: WorkingWarp, raw: torch.Tensor | None = None,
                        voxels: torch.Tensor | None = None) -> torch.Tensor:
    """The refinement loss ``MSE(M'_theta, F')`` for ``raw`` parameters (default: the output's own), over the
    working grid, or at ``voxels`` only (flat indices into it; batch of one): a random-subset estimate."""
    raw = output.raw if raw is None else raw
    if voxels is None:
        warped, inside = warp(output.moving_representation, raw, return_mask=True)
        fixed = output.fixed_representation
    else:
        warped, inside = warp.warper.at_voxels(output.moving_representation, warp.field(raw), voxels)
        fixed = output.fixed_representation.flatten(2).index_select(2, voxels)
    return MSE()(fixed, warped, inside)


class ISTNObjective(torch.nn.Module):
    """The training loss of one variant; ``forward(batch) -> (loss, stats)`` for a batch with structures."""

    def __init__(self, network: ISTNNetwork, grid: Grid, regulariser_weight: float) -> None:
        super().__init__()
        self.network = network
        self.warp = WorkingWarp(network, grid)
        self.regulariser_weight = regulariser_weight
        self.mse = MSE()

    def forward(self, batch):
        variant = self.network.config.variant
        fixed, moving = zscore(batch.fixed), zscore(batch.moving)
        s_fixed, s_moving = batch.fixed_structures, batch.moving_structures
        output = self.network(fixed, moving)
        warped_structures = self.warp(s_moving, output.raw)
        stats = {"structure_mse": self.mse(s_fixed, warped_structures)}
        if variant == "stn-u":
            warped, inside = self.warp(moving, output.raw, return_mask=True)
            stats["image_mse"] = self.mse(fixed, warped, inside)
            loss = stats["image_mse"]
        elif variant == "stn-s":
            loss = stats["structure_mse"]
        elif variant == "istn-e":
            stats["itn_mse"] = self.mse(output.moving_representation, s_moving) + self.mse(
                output.fixed_representation, s_fixed)
            loss = stats["itn_mse"] + stats["structure_mse"]
        else:
            stats["implicit_mse"] = (self.mse(self.warp(output.moving_representation, output.raw), s_fixed)
                                     + self.mse(warped_structures, output.fixed_representation))
            loss = stats["implicit_mse"] + stats["structure_mse"]
        stats["regulariser"] = self.network.transformation.regulariser(output.raw)
        loss = loss + self.regulariser_weight * stats["regulariser"]
        return loss, {k: v.detach() for k, v in stats.items()}
