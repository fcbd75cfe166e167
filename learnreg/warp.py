"""Warping images in physical space with ``torch.nn.functional.grid_sample``.

A :class:`Warper` samples a moving image, on its own grid, at the fixed grid's voxel centres displaced
by a pull field: ``warped(x) = moving(x + u(x))`` for every fixed voxel centre ``x`` (LPS mm). The map
from a displacement in the fixed axis frame to the moving image's normalised sampling coordinates is
linear, so the warp is exact for any oblique direction and anisotropic spacing of either image, and it
is differentiable with respect to the field.

Sampling matches ITK's linear (or nearest-neighbour) interpolator: a point whose continuous index is
within half a voxel of the outer voxel centres takes the border value, and points further out read 0.
Hence ``warped.nii.gz`` equals SimpleITK's ``Resample`` through the exported transform.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from learnreg.image import Grid, Image

__all__ = ["Warper", "PointStencil", "resample_to_grid", "axis_coordinate_tensor"]


def axis_coordinate_tensor(grid: Grid, device=None, dtype=torch.float32) -> torch.Tensor:
    """Positions of the voxels in the grid's axis frame (mm from the first voxel), ``(ndim, *spatial)``.

    Component order is ``(i, j[, k])``, like every field tensor in learnreg.
    """
    axes = [torch.arange(n, device=device, dtype=dtype) * s for n, s in zip(grid.size, grid.spacing)]
    mesh = torch.meshgrid(*reversed(axes[: grid.ndim]), indexing="ij")  # spatial order (k, j, i)
    return torch.stack(list(reversed(mesh)), dim=0)


class PointStencil:
    """Linear interpolation at fixed points of a grid: each point's lower corner voxel (a flat index, ``(n,)``),
    the other corners' flat offsets from it (``(2^ndim,)``, the same for every point) and the corners' weights
    (``(n, 2^ndim)``): 40 bytes a 3D point.

    :meth:`sample` gives what ``grid_sample`` (``align_corners=True``, border padding) gives at the same
    points, with the gradient flowing to the sampled tensor only. When that tensor is a dense field being
    optimised, this is cheaper than ``grid_sample``, whose backward pass to its input costs more than the rest
    of a B-spline iteration. The weights are products of one pair per axis and the corners fixed offsets from
    the lower one, so building a stencil costs a few operations on ``(n, ndim)`` and ``(n, 2^ndim)`` tensors.
    """

    def __init__(self, low: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> None:
        self.low, self.offsets, self.weights = low, offsets, weights

    @property
    def indices(self) -> torch.Tensor:
        """The corners' flat voxel indices, ``(n, 2^ndim)``."""
        return self.low[:, None] + self.offsets[None, :]

    @classmethod
    def at(cls, coords: torch.Tensor, spatial_shape: tuple) -> "PointStencil":
        """The stencil at normalised coordinates ``coords`` ``(n, ndim)`` (``x`` first, as ``grid_sample``) of a
        grid of ``spatial_shape`` (``(k, j, i)`` or ``(j, i)``)."""
        nd = coords.shape[1]
        extent = [n - 1 for n in spatial_shape[::-1]]  # (i, j[, k]): the last voxel index along each axis
        low_flat = torch.zeros(len(coords), dtype=torch.long, device=coords.device)
        weights = torch.ones(len(coords), 1, dtype=coords.dtype, device=coords.device)
        offsets = torch.zeros(1, dtype=torch.long, device=coords.device)  # the corners' flat offsets from low
        stride = 1
        for a in range(nd):  # i varies fastest in the flat index
            position = ((coords[:, a] + 1) * (0.5 * extent[a])).clamp(0, extent[a])  # continuous index
            low = position.floor().clamp(max=max(extent[a] - 1, 0))
            fraction = (position - low)[:, None]
            low_flat = low_flat + low.long() * stride
            pair = torch.cat([1 - fraction, fraction], 1)  # (n, 2): the lower and upper voxel's weight
            weights = (weights[:, None, :] * pair[:, :, None]).reshape(len(coords), -1)
            step = stride if extent[a] > 0 else 0  # an axis of one voxel: both corners are that voxel
            offsets = torch.cat([offsets, offsets + step])
            stride *= extent[a] + 1
        return cls(low_flat, offsets, weights)

    def rows(self, points: torch.Tensor) -> "PointStencil":
        """The stencil at some of its points only (indices into them)."""
        return PointStencil(self.low.index_select(0, points), self.offsets, self.weights.index_select(0, points))

    def sample(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` ``(1, C, *spatial)`` at the stencil's points: ``(C, n)``."""
        flat = tensor.reshape(tensor.shape[1], -1)
        indices = self.indices
        values = torch.index_select(flat, 1, indices.reshape(-1)).reshape(flat.shape[0], *indices.shape)
        return (values * self.weights.to(tensor.dtype)).sum(-1)


class Warper(torch.nn.Module):
    """Sample a moving grid at fixed voxel centres plus a pull displacement.

    Args:
        fixed_grid: grid on which fields are defined and warped images are produced.
        moving_grid: grid of the image being sampled.

    Call with a moving tensor ``(B, C, *moving.spatial)`` and a field ``(B, ndim, *fixed.spatial)`` in
    mm along the fixed grid's axes (``None`` for the identity).
    """

    def __init__(self, fixed_grid: Grid, moving_grid: Grid) -> None:
        super().__init__()
        if fixed_grid.ndim != moving_grid.ndim:
            raise ValueError("fixed and moving grids must have the same dimensionality")
        nd = fixed_grid.ndim
        self.fixed_grid = fixed_grid
        self.moving_grid = moving_grid
        moving_from_lps = np.linalg.inv(moving_grid.index_to_physical_matrix)
        # continuous moving index of every fixed voxel centre, (ndim, *spatial), order (i, j[, k])
        fixed_index_to_moving_index = moving_from_lps @ fixed_grid.index_to_physical_matrix
        base = self._apply_affine(fixed_index_to_moving_index, fixed_grid)[:nd]
        # moving index displacement per mm of fixed-axis displacement: (ndim, ndim)
        axis_to_index = (moving_from_lps[:3, :3] @ fixed_grid.direction_matrix)[:nd, :nd]
        sizes = torch.tensor(moving_grid.size[:nd], dtype=torch.float64)
        scale = 2.0 / torch.clamp(sizes - 1, min=1.0)  # index -> normalised, align_corners=True
        # normalised sampling coordinates of the identity, channels last: (*spatial, ndim)
        base_normalised = (base * scale.view(-1, *[1] * nd) - 1).movedim(0, -1).contiguous()
        self.register_buffer("base_normalised", base_normalised.float(), persistent=False)
        self.register_buffer("axis_to_normalised", (scale.view(-1, 1) * torch.as_tensor(axis_to_index)).float(),
                             persistent=False)
        # half a voxel (plus a little) beyond the first and last voxel centres, in normalised units, per axis
        self.inside_bounds = tuple(float(b) for b in 1 + (0.5 + 1e-4) * scale)

    @staticmethod
    def _apply_affine(matrix: np.ndarray, grid: Grid) -> torch.Tensor:
        idx = [torch.arange(n, dtype=torch.float64) for n in grid.size]
        mesh = torch.meshgrid(*reversed(idx), indexing="ij")
        ijk = torch.stack(list(reversed(mesh)), dim=0)  # (3, k, j, i)
        m = torch.as_tensor(matrix, dtype=torch.float64)
        out = torch.einsum("ab,bkji->akji", m[:3, :3], ijk) + m[:3, 3].view(3, 1, 1, 1)
        return out[:, 0] if grid.ndim == 2 else out

    def sampling_grid(self, field: torch.Tensor | None) -> torch.Tensor:
        """Normalised sampling coordinates ``(B, *spatial, ndim)`` for ``grid_sample``."""
        coords = self.base_normalised.unsqueeze(0)
        if field is None:
            return coords
        return coords + torch.einsum("ab,nb...->na...", self.axis_to_normalised, field).movedim(1, -1)

    def inside_mask(self, coords: torch.Tensor) -> torch.Tensor:
        """1 where a sampling point is within half a voxel of the moving image, else 0: ``(B, 1, *spatial)``."""
        distance = coords.abs()
        inside = distance[..., 0] <= self.inside_bounds[0]
        for axis in range(1, len(self.inside_bounds)):
            inside &= distance[..., axis] <= self.inside_bounds[axis]
        return inside.unsqueeze(1).to(coords.dtype)

    def forward(self, moving: torch.Tensor, field: torch.Tensor | None = None, mode: str = "bilinear",
                return_mask: bool = False):
        """Warp ``moving``; with ``return_mask`` also return the inside-the-moving-image mask."""
        coords = self.sampling_grid(field)
        if coords.shape[0] != moving.shape[0]:
            coords = coords.expand(moving.shape[0], *coords.shape[1:])
        sampled = F.grid_sample(moving, coords.to(moving.dtype), mode=mode, padding_mode="border",
                                align_corners=True)
        mask = self.inside_mask(coords).to(sampled.dtype)
        warped = sampled * mask
        return (warped, mask) if return_mask else warped


    def voxel_coordinates(self, vectors: torch.Tensor, voxels: torch.Tensor) -> torch.Tensor:
        """Normalised sampling coordinates ``(n, ndim)`` of some fixed voxels (flat indices into the grid's
        spatial shape) displaced by ``vectors`` ``(ndim, n)``, mm along the fixed grid's axes."""
        nd = self.base_normalised.shape[-1]
        return self.base_normalised.reshape(-1, nd).index_select(0, voxels) + (self.axis_to_normalised @ vectors).T

    def sample_points(self, moving: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """``moving`` ``(1, C, *moving.spatial)`` at normalised coordinates ``(n, ndim)``: ``(C, n)``, values
        beyond the border extended from the border (no mask)."""
        nd = coords.shape[-1]
        points = coords.reshape((1,) * (nd - 1) + (1, -1, nd))  # (1, [1,] 1, n, nd)
        sampled = F.grid_sample(moving, points.to(moving.dtype), mode="bilinear", padding_mode="border",
                                align_corners=True)
        return sampled.reshape(moving.shape[1], -1)

    def point_stencil(self, coords: torch.Tensor) -> "PointStencil":
        """The linear-interpolation stencil of the moving grid at normalised coordinates ``(n, ndim)`` (beyond
        the border: the border's values), for sampling several tensors there (see :class:`PointStencil`)."""
        return PointStencil.at(coords.detach(), tuple(self.moving_grid.size[: self.moving_grid.ndim][::-1]))

    def at_voxels(self, moving: torch.Tensor, field: torch.Tensor, voxels: torch.Tensor, *,
                  vectors: torch.Tensor | None = None):
        """The moving image warped at some voxels of the fixed grid only: ``voxels`` are flat indices into the
        grid's spatial shape, displaced by ``field`` ``(1, ndim, *spatial)`` at them, or by ``vectors``
        ``(ndim, n)`` given at those voxels alone (``field`` then ignored: None); returns ``(warped, mask)``,
        ``(1, C, len(voxels))`` and ``(1, 1, len(voxels))`` (mask as in :meth:`forward`). What a random-subset image
        loss needs, at a fraction of a full warp's cost."""
        if vectors is None:
            vectors = field.reshape(field.shape[0], field.shape[1], -1)[0].index_select(1, voxels)
        coords = self.voxel_coordinates(vectors, voxels)
        mask = self.inside_mask(coords).reshape(1, 1, -1).to(moving.dtype)
        return self.sample_points(moving, coords)[None] * mask, mask


def resample_to_grid(image: Image, grid: Grid, field: torch.Tensor | None = None, *, nearest: bool = False,
                     device: str | torch.device = "cpu") -> Image:
    """Resample ``image`` onto ``grid`` (optionally through a pull field given in ``grid``'s axis frame).

    Label maps use ``nearest=True``; the output keeps their integer type.
    """
    warper = Warper(grid, image.grid).to(device)
    moving = torch.from_numpy(image.spatial_array())[None, None].to(device)
    with torch.no_grad():
        out = warper(moving, None if field is None else field.to(device), mode="nearest" if nearest else "bilinear")
    array = out[0, 0].cpu().numpy()
    if grid.ndim == 2:
        array = array[None]
    if nearest and np.issubdtype(np.asarray(image.array).dtype, np.integer):
        array = np.rint(array).astype(image.array.dtype)
    return Image(array, grid)


def resample_centred(image: Image, size, spacing, direction: np.ndarray | None = None) -> Image:
    """``image`` resampled onto a grid of ``size`` voxels (x, y, z) of ``spacing`` mm centred on the image's
    centre, with the image's direction or ``direction`` (LPS, 3 x 3; an oblique grid)."""
    direction = image.grid.direction_matrix if direction is None else np.asarray(direction)
    centre_offset = direction @ ((np.asarray(size) - 1) * np.asarray(spacing) / 2)
    return resample_to_grid(image, Grid.make(tuple(size), tuple(spacing), image.grid.centre - centre_offset, direction))
