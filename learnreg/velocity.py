"""Stationary velocity fields: their exponential by scaling and squaring.

A stationary velocity field ``v`` (mm along a grid's axes, ``(B, ndim, *spatial)``) generates the flow
``d phi_t / dt = v(phi_t)``; its exponential ``phi_1`` is diffeomorphic when ``v`` is smooth. In the pull
convention used throughout learnreg, ``phi_1(x) = x + u(x)`` with ``u`` a displacement field on the same
grid. Scaling and squaring: ``u_0 = v / 2^N``, then ``N`` times ``u <- u + u o (x + u)`` (the displacement of
``phi o phi``), sampling ``u`` at ``x + u(x)`` with the grid's own :class:`~learnreg.warp.Warper` (values
beyond the border extended from the border).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnreg.warp import Warper

#: squarings by default: ``v / 128`` is well below a voxel for any velocity a registration meets
DEFAULT_SQUARINGS = 7


def compose_displacements(outer: torch.Tensor, inner: torch.Tensor, warper: Warper) -> torch.Tensor:
    """The displacement of ``x -> y + outer(y)`` with ``y = x + inner(x)``: ``inner + outer o (x + inner)``
    (both ``(B, ndim, *spatial)`` in mm along the axes of ``warper``'s grid, which must be its own moving grid)."""
    coords = warper.sampling_grid(inner)
    if coords.shape[0] != outer.shape[0]:
        coords = coords.expand(outer.shape[0], *coords.shape[1:])
    sampled = F.grid_sample(outer, coords.to(outer.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return inner + sampled


def exponentiate(velocity: torch.Tensor, warper: Warper, squarings: int = DEFAULT_SQUARINGS) -> torch.Tensor:
    """The displacement field of ``exp(velocity)`` (scaling and squaring with ``squarings`` steps; 0: the
    velocity itself, the small-deformation approximation)."""
    if squarings < 0:
        raise ValueError("squarings must be >= 0")
    displacement = velocity / (2 ** squarings)
    for _ in range(squarings):
        displacement = compose_displacements(displacement, displacement, warper)
    return displacement
