"""R2N2's local transformation: one rotated, anisotropic Gaussian displacement per step.

Step ``t`` adds ``u_t(x) = w_t * exp(-1/2 (x - mu_t)^T R_t diag(sigma_t)^-2 R_t^T (x - mu_t))`` and the
final pull field is the sum over the steps. Everything is in physical units in the fixed grid's axis
frame (mm from the first voxel centre along the grid axes ``(i, j[, k])``, the frame of every learnreg
field tensor), so the same parameters mean the same deformation at any voxel spacing:

- ``centre`` ``mu``: ``(B, ndim)`` mm;
- ``widths`` ``sigma``: ``(B, ndim)`` mm, along the Gaussian's own axes (the columns of ``R``);
- ``angles``: ``(B, 1)`` in 2D (counter-clockwise from axis i towards j) or ``(B, 3)`` in 3D (``R = Rz(a) Ry(b)
  Rx(c)`` for angles ``(a, b, c)``, rotations about the k, j and i axes), radians;
- ``weight`` ``w``: ``(B, ndim)`` mm, the displacement at the centre.

In 2D this is the paper's transformation; 3D (three widths and a 3D rotation) is the extension the
paper names as future work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learnreg.errors import InputError
from learnreg.field import DisplacementField
from learnreg.image import Grid
from learnreg.registration import StepRecord


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(B, ndim, ndim)`` from ``(B, 1)`` (2D) or ``(B, 3)`` (3D) angles in radians."""
    if angles.shape[-1] == 1:
        c, s = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    if angles.shape[-1] != 3:
        raise InputError(f"a Gaussian's rotation needs 1 angle (2D) or 3 (3D), not {angles.shape[-1]}")
    one, zero = torch.ones_like(angles[:, 0]), torch.zeros_like(angles[:, 0])

    def about(axis: int, angle: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        rows = {
            0: [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            1: [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            2: [[c, -s, zero], [s, c, zero], [zero, zero, one]],
        }[axis]
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    return about(2, angles[:, 0]) @ about(1, angles[:, 1]) @ about(0, angles[:, 2])


def gaussian_displacement(coordinates: torch.Tensor, centre: torch.Tensor, widths: torch.Tensor,
                          angles: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One Gaussian displacement per batch item, ``(B, ndim, *spatial)`` mm.

    Args:
        coordinates: ``(ndim, *spatial)`` positions in mm in the grid's axis frame
            (:func:`learnreg.warp.axis_coordinate_tensor`).
        centre, widths, angles, weight: see the module docstring.
    """
    ndim = coordinates.shape[0]
    batch = centre.shape[0]
    offset = coordinates.reshape(1, ndim, -1) - centre.reshape(batch, ndim, 1)  # (B, ndim, N)
    rotated = rotation_matrix(angles).transpose(1, 2) @ offset  # offsets in the Gaussian's own axes
    exponent = -0.5 * ((rotated / widths.reshape(batch, ndim, 1)) ** 2).sum(1, keepdim=True)
    field = weight.reshape(batch, ndim, 1) * torch.exp(exponent)
    return field.reshape(batch, ndim, *coordinates.shape[1:])


@dataclass(frozen=True)
class GaussianParameters:
    """One step's Gaussian, for one image: numpy values in the units of the module docstring."""

    centre: np.ndarray
    widths: np.ndarray
    angles: np.ndarray
    weight: np.ndarray

    @staticmethod
    def count(ndim: int) -> int:
        """Parameters one step adds to the transformation: centre, widths, rotation, weight (7 in 2D, 12 in 3D)."""
        return ndim + ndim + (1 if ndim == 2 else 3) + ndim

    def as_dict(self) -> dict:
        """Plain floats for reports and step tables."""
        return {"centre_mm": self.centre.tolist(), "widths_mm": self.widths.tolist(),
                "angles_rad": self.angles.tolist(), "weight_mm": self.weight.tolist()}


def step_record(index: int, loss: float, parameters: GaussianParameters, displacement: torch.Tensor,
                grid: Grid) -> StepRecord:
    """The :class:`~learnreg.registration.StepRecord` of one step: its Gaussian's parameters, the
    displacement it added (``(1, ndim, *spatial)`` mm on ``grid``), its centre in LPS and, as extent, two
    of its largest widths (the region where the step moves tissue by more than 13 % of its weight)."""
    ndim = grid.ndim
    centre_lps = np.asarray(grid.origin) + grid.direction_matrix[:, :ndim] @ parameters.centre
    return StepRecord(index, float(loss), parameters.as_dict(), DisplacementField.from_axis_tensor(displacement, grid),
                      tuple(float(v) for v in centre_lps), float(2.0 * parameters.widths.max()))
