"""The STN's transformation models: bounded parameters from network outputs, and the fields they describe.

Both work in the working grid's *normalised* frame (:mod:`learnreg.working`): along each axis the first
working voxel centre is -1 and the last +1, and a displacement of 1 is half that span, ``(N - 1) h / 2`` mm.
A field is evaluated at the points of any grid aligned with the working grid, given as one vector of
normalised positions per axis ``(i, j[, k])``: the working grid itself in training, the full-resolution
fixed grid at inference. Fields are pull displacements ``(B, ndim, *spatial)``, components ``(i, j[, k])``:
a fixed point ``x`` maps to the moving point ``x + u(x)``.

- :class:`AffineModel`: the paper's decomposition ``T = M_t R S^-1 D S`` (translation, rotation, shear,
  scaling) with each parameter bounded by a scaled tanh, as the official code does; about the grid centre.
- :class:`BSplineModel`: cubic B-spline control-point displacements bounded by a scaled tanh; control
  points every ``control_spacing`` working voxels.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from learnreg.losses.regularisers import BendingEnergy
from learnreg.transformations import (bspline_basis_matrix, control_point_count, evaluate_separable,
                                      separable_quadratic_energy)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """``(B, 1)`` angles (2D) or ``(B, 3)`` angles about the i, j, k axes (3D, applied i first) -> ``(B, nd, nd)``."""
    c, s = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    if angles.shape[1] == 1:
        return torch.stack([torch.stack([c[:, 0], -s[:, 0]], -1), torch.stack([s[:, 0], c[:, 0]], -1)], 1)
    about_i = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, c[:, 0], -s[:, 0]], -1),
                           torch.stack([zero, s[:, 0], c[:, 0]], -1)], 1)
    about_j = torch.stack([torch.stack([c[:, 1], zero, s[:, 1]], -1), torch.stack([zero, one, zero], -1),
                           torch.stack([-s[:, 1], zero, c[:, 1]], -1)], 1)
    about_k = torch.stack([torch.stack([c[:, 2], -s[:, 2], zero], -1), torch.stack([s[:, 2], c[:, 2], zero], -1),
                           torch.stack([zero, zero, one], -1)], 1)
    return about_k @ about_j @ about_i


def shear_matrices(coefficients: torch.Tensor, ndim: int) -> torch.Tensor:
    """Unit upper-triangular shear matrices ``(B, nd, nd)`` from ``(B, nd (nd - 1) / 2)`` coefficients."""
    matrices = torch.eye(ndim, device=coefficients.device, dtype=coefficients.dtype).repeat(len(coefficients), 1, 1)
    rows, cols = torch.triu_indices(ndim, ndim, offset=1)
    matrices[:, rows, cols] = coefficients
    return matrices


def normalised_axis_positions(size: int, device=None) -> torch.Tensor:
    """The normalised positions of ``size`` voxel centres along a working axis: -1 .. 1."""
    return torch.linspace(-1.0, 1.0, size, device=device)


class AffineModel(torch.nn.Module):
    """Affine transformation ``x -> M_t R S^-1 D S x`` about the working grid's centre, with bounded parameters.

    Raw network outputs (``parameter_count`` per pair) become: translation ``max_translation * tanh``
    (normalised units), rotation angles ``max_rotation * tanh`` (radians), scale factors
    ``exp(max_log_scale * tanh)`` and shear coefficients ``max_shear * tanh``. A zero output is the identity.
    """

    def __init__(self, ndim: int, working_size: int, max_translation: float = 0.2,
                 max_rotation: float = math.pi / 4, max_log_scale: float = 0.2, max_shear: float = 0.2) -> None:
        super().__init__()
        self.ndim = ndim
        self.working_size = working_size
        self.bounds = {"translation": max_translation, "rotation": max_rotation, "log_scale": max_log_scale,
                       "shear": max_shear}
        rotations = 1 if ndim == 2 else 3
        self.sizes = {"translation": ndim, "rotation": rotations, "log_scale": ndim,
                      "shear": ndim * (ndim - 1) // 2}

    @property
    def parameter_count(self) -> int:
        return sum(self.sizes.values())

    def bounded(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``(B, parameter_count)`` raw outputs into the named, bounded parameters."""
        out, start = {}, 0
        for name, size in self.sizes.items():
            out[name] = self.bounds[name] * torch.tanh(raw[:, start:start + size])
            start += size
        return out

    def matrix(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The linear part ``A = R S^-1 D S`` ``(B, nd, nd)`` and translation ``(B, nd)`` (normalised units)."""
        p = self.bounded(raw)
        shear = shear_matrices(p["shear"], self.ndim)
        scale = torch.diag_embed(torch.exp(p["log_scale"]))
        return rotation_matrices(p["rotation"]) @ torch.linalg.inv(shear) @ scale @ shear, p["translation"]

    def field(self, raw: torch.Tensor, positions: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Normalised pull field ``(A - I) x + t`` at the grid spanned by ``positions`` (one vector per axis,
        ``(i, j[, k])``; ``None``: the working grid)."""
        linear, translation = self.matrix(raw)
        if positions is None:
            positions = [normalised_axis_positions(self.working_size, raw.device)] * self.ndim
        mesh = torch.meshgrid(*reversed(positions), indexing="ij")
        points = torch.stack(list(reversed(mesh)), 0)  # (nd, *spatial), components (i, j[, k])
        offset = linear - torch.eye(self.ndim, device=raw.device)
        u = torch.einsum("bac,c...->ba...", offset, points)
        return u + translation.view(*translation.shape, *[1] * self.ndim)

    def regulariser(self, raw: torch.Tensor) -> torch.Tensor:
        """An affine map is smooth: no regulariser (0)."""
        return raw.new_zeros(())


class BSplineModel(torch.nn.Module):
    """Cubic B-spline free-form deformation over the working grid.

    Control points sit every ``control_spacing`` working voxels, from one spacing before the first voxel
    (the cubic support covers the grid); each displacement is ``max_displacement * tanh(raw)`` normalised
    units. :meth:`regulariser` is the bending energy of the field on the working grid, which the official
    code computed but never used (its B-spline results deformed wildly); ours is in every training loss.
    """

    def __init__(self, ndim: int, working_size: int, control_spacing: int = 8,
                 max_displacement: float = 0.2) -> None:
        super().__init__()
        self.ndim = ndim
        self.working_size = working_size
        self.spacing = 2.0 * control_spacing / (working_size - 1)  # normalised units
        self.count = control_point_count(2.0, self.spacing)
        self.max_displacement = max_displacement
        self._grams: dict = {}  # the regulariser's Gram matrices (separable_quadratic_energy)
        for a in range(ndim):
            self.register_buffer(f"working_basis_{a}", self.basis(normalised_axis_positions(working_size)),
                                 persistent=False)

    @property
    def parameter_count(self) -> int:
        return self.ndim * self.count ** self.ndim

    def basis(self, positions: torch.Tensor) -> torch.Tensor:
        """``(len(positions), count)`` B-spline weights at normalised positions."""
        return bspline_basis_matrix((positions + 1.0).double().cpu().numpy(), self.spacing,
                                    self.count).float().to(positions.device)

    def control_points(self, raw: torch.Tensor) -> torch.Tensor:
        """Bounded control-point displacements ``(B, nd, *[count] * nd)`` (normalised units)."""
        return self.max_displacement * torch.tanh(raw.view(len(raw), self.ndim, *[self.count] * self.ndim))

    def working_bases(self) -> list[torch.Tensor]:
        """The per-axis B-spline weights at the working grid's voxels, ``(working_size, count)`` each."""
        return [getattr(self, f"working_basis_{a}") for a in range(self.ndim)]

    def field(self, raw: torch.Tensor, positions: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Normalised pull field at the grid spanned by ``positions`` (one vector per axis, ``(i, j[, k])``;
        ``None``: the working grid)."""
        bases = self.working_bases() if positions is None else [self.basis(p) for p in positions]
        flat = self.control_points(raw).flatten(0, 1)  # (B * nd, *[count] * nd)
        dense = evaluate_separable(flat, [b.to(flat.dtype) for b in bases])
        return dense.reshape(len(raw), self.ndim, *dense.shape[1:])

    def regulariser(self, raw: torch.Tensor) -> torch.Tensor:
        """Bending energy of the field on the working grid (normalised units), mean over the batch: the dense
        field's finite differences, computed on the control points (:func:`separable_quadratic_energy`)."""
        step = 2.0 / (self.working_size - 1)
        flat = self.control_points(raw).flatten(0, 1)
        energy = separable_quadratic_energy(flat, [b.to(flat.dtype) for b in self.working_bases()],
                                            BendingEnergy().terms(self.ndim), (step,) * self.ndim, self._grams)
        return energy / len(raw)
