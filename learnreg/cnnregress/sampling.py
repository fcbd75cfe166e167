"""Where CNNRegress looks: active points, equalised training samples, and the patches cut around them.

All on the working grid (:mod:`learnreg.working`), images ``(1, 1, *spatial)`` with intensities in [0, 1]
(outside the image: 0), positions as integer voxel indices in axis order ``(i, j[, k])``.

- :func:`importance`: the paper's ``I(u)``, the gradient magnitude of the (lightly smoothed) fixed image, so
  points gather on edges; a small floor keeps every voxel possible.
- :func:`active_points`: inference's sample, ``density`` of the working grid's voxels drawn without
  replacement with probability proportional to ``I``; a fixed seed makes it repeatable. The count is
  clamped to what the thin-plate spline can use (:data:`MIN_POINTS`, :data:`MAX_POINTS`).
- :func:`equalised_probabilities`: training's sample. The paper's Eq. 1 favours large displacements and
  strong edges and drops displacements beyond the cut-off ``tau``, so that the training displacements are
  close to uniform on ``(0, tau]``. Here that aim is met exactly: the displacement magnitudes are binned on
  ``(0, tau]``, and within each bin points are drawn in proportion to ``I`` while every bin gets the same
  total probability; points beyond ``tau`` get none.
- :class:`PatchCutter`: fixed patches of ``P`` and moving patches of ``P + 2R`` voxels per axis around the
  points. The images are padded with intensity 0 (what lies outside an image on the working grid) before
  z-scoring with the statistics of the image itself, in training and inference alike, so a patch reaching
  outside the image sees exactly what the model was trained with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from learnreg.field import spatial_gradient

#: fewest active points: the thin-plate spline needs more points than its affine part's ``ndim + 1``
MIN_POINTS = 32
#: most active points: the spline's dense solve costs ``O(N^3)`` time and ``O(N^2)`` memory
MAX_POINTS = 6000
#: the importance floor, as a fraction of the mean gradient magnitude
IMPORTANCE_FLOOR = 0.05


def _smooth(images: torch.Tensor) -> torch.Tensor:
    """A 3-tap binomial filter along every axis, ``(B, 1, *spatial)``."""
    nd = images.dim() - 2
    taps = torch.tensor([0.25, 0.5, 0.25], dtype=images.dtype, device=images.device)
    out = images
    for axis in range(nd):
        shape = [1, 1] + [1] * nd
        shape[2 + axis] = 3
        padding = [0] * nd
        padding[axis] = 1
        conv = F.conv2d if nd == 2 else F.conv3d
        out = conv(out, taps.view(shape), padding=tuple(padding))
    return out


def importance(images: torch.Tensor) -> torch.Tensor:
    """``I(u)``: gradient magnitude (central differences, per voxel) of the smoothed images, plus a floor of
    :data:`IMPORTANCE_FLOOR` times its mean; ``(B, *spatial)``."""
    nd = images.dim() - 2
    gradients = spatial_gradient(_smooth(images.float()), (1.0,) * nd)
    magnitude = torch.sqrt(sum(g * g for g in gradients))[:, 0]
    floor = IMPORTANCE_FLOOR * magnitude.flatten(1).mean(1).clamp_min(1e-12)
    return magnitude + floor.view(-1, *[1] * nd)


def index_positions(flat: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Flat voxel numbers -> voxel indices ``(N, ndim)`` in axis order ``(i, j[, k])``."""
    positions = []
    for n in reversed(spatial):  # the last tensor dimension is axis i
        positions.append(flat % n)
        flat = flat // n
    return torch.stack(positions, dim=1)


def flat_index(positions: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Voxel indices ``(..., ndim)`` in axis order ``(i, j[, k])`` -> flat voxel numbers of a tensor of shape
    ``spatial`` (the inverse of :func:`index_positions`; linear, so offsets may be negative)."""
    strides = torch.tensor([math.prod(spatial[d + 1:]) for d in range(len(spatial))], device=positions.device)
    return (positions.flip(-1) * strides).sum(-1)


def point_count(density: float, num_voxels: int) -> tuple[int, str]:
    """Active points for ``density`` of ``num_voxels``, clamped to [:data:`MIN_POINTS`, :data:`MAX_POINTS`]
    (and to the voxels there are), with a message when clamped (empty otherwise)."""
    wanted = int(round(density * num_voxels))
    count = min(max(wanted, MIN_POINTS), MAX_POINTS, num_voxels)
    if count == wanted:
        return count, ""
    reason = ("too few for a well-posed thin-plate spline" if wanted < count else
              "more than the thin-plate spline's solve can take in time and memory")
    return count, (f"density {density:.4g} gives {wanted} active points, {reason}; using {count} "
                   f"({count / num_voxels:.3%} of the working grid's voxels)")


def active_points(fixed: torch.Tensor, count: int, inside: Optional[torch.Tensor] = None, seed: int = 0) -> torch.Tensor:
    """``count`` voxel indices ``(count, ndim)`` of one fixed image ``(1, 1, *spatial)``, drawn without replacement
    in proportion to :func:`importance` (repeatable for a given ``seed``), only where ``inside`` (a boolean
    ``spatial`` mask: the part of the working grid the fixed image covers) when given. Asking for more points
    than there are voxels inside is a ``ValueError``."""
    weights = importance(fixed)[0]
    if inside is not None:
        weights = weights * inside
    weights = weights.flatten()
    if int((weights > 0).sum()) < count:
        raise ValueError(f"{count} active points asked for but only {int((weights > 0).sum())} voxels to choose from")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    flat = torch.multinomial(weights.cpu().double(), count, replacement=False, generator=generator)
    return index_positions(flat, tuple(fixed.shape[2:])).to(fixed.device)


def equalised_probabilities(fixed: torch.Tensor, magnitude: torch.Tensor, tau: float, bins: int = 16) -> torch.Tensor:
    """Sampling probabilities ``(B, *spatial)`` over a whole batch of images (sum 1 over the batch): equal mass
    per displacement-magnitude bin on ``(0, tau]``, importance-proportional within a bin, zero beyond ``tau``
    (see the module docstring). The bins are shared by the batch, so a batch of pairs with small and large
    deformations still gives uniform lengths.

    Args:
        fixed: fixed images ``(B, 1, *spatial)``.
        magnitude: displacement length at every voxel ``(B, *spatial)``, in the unit of ``tau``.
        tau: cut-off.
        bins: magnitude bins on ``(0, tau]``.
    """
    weights = importance(fixed).flatten()
    length = magnitude.flatten()
    bin_index = torch.clamp((length / tau * bins).long(), max=bins - 1)
    keep = (length <= tau) & (length > 0)
    weights = torch.where(keep, weights, torch.zeros_like(weights))
    bin_mass = torch.zeros(bins, dtype=weights.dtype, device=weights.device).scatter_add_(0, bin_index, weights)
    filled = int((bin_mass > 0).sum().clamp_min(1))
    probabilities = weights / bin_mass[bin_index].clamp_min(1e-30) / filled
    return probabilities.view_as(magnitude)


def sample_points(probabilities: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` voxels drawn with replacement from ``probabilities`` ``(B, *spatial)`` (over the whole batch):
    the image of each ``(count,)`` and its voxel index ``(count, ndim)``."""
    flat = torch.multinomial(probabilities.flatten().cpu().double(), count, replacement=True, generator=generator)
    spatial = tuple(probabilities.shape[1:])
    voxels = math.prod(spatial)
    device = probabilities.device
    return (flat // voxels).to(device), index_positions(flat % voxels, spatial).to(device)


def padded_zscore(images: torch.Tensor, margin: int) -> torch.Tensor:
    """Images ``(B, 1, *spatial)`` in [0, 1] padded by ``margin`` voxels of intensity 0, then z-scored with the
    unpadded images' mean and standard deviation and clamped to [-3, 3]."""
    nd = images.dim() - 2
    flat = images.flatten(1)
    mean = flat.mean(1).view(-1, *[1] * (nd + 1))
    std = flat.std(1).clamp_min(1e-6).view(-1, *[1] * (nd + 1))
    padded = F.pad(images, (margin,) * (2 * nd), value=0.0)
    return ((padded - mean) / std).clamp(-3.0, 3.0)


@dataclass
class PatchCutter:
    """Cuts the patch pairs a :class:`~learnreg.cnnregress.network.CNNRegressNetwork` reads.

    Args:
        patch_size: ``P`` (odd), of the fixed patches.
        margin: ``R``; moving patches have ``P + 2R`` voxels per axis.
    """

    patch_size: int
    margin: int

    @property
    def half(self) -> int:
        """Padding per side: half the moving patch."""
        return self.patch_size // 2 + self.margin

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Padded, z-scored images to cut from (see :func:`padded_zscore`)."""
        return padded_zscore(images, self.half)

    def cut(self, prepared: torch.Tensor, images: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
        """Patches ``(N, 1, *[size] * ndim)`` of ``prepared`` images ``(B, 1, *padded)``: patch ``n`` from image
        ``images[n]``, centred on voxel ``positions[n]`` (index of the unpadded image, axis order)."""
        nd = positions.shape[1]
        spatial = tuple(prepared.shape[2:])
        window = (size,) * nd
        steps = index_positions(torch.arange(size ** nd, device=prepared.device), window) - size // 2
        offsets = flat_index(steps, spatial)  # in the patch's flattening order
        centres = flat_index(positions + self.half, spatial)  # in the padded image
        index = centres.unsqueeze(1) + offsets.unsqueeze(0)
        values = prepared.flatten(1)[images.unsqueeze(1), index]
        return values.view(positions.shape[0], 1, *window)

    def pairs(self, fixed: torch.Tensor, moving: torch.Tensor, images: torch.Tensor,
              positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed ``(N, 1, *[P] * ndim)`` and moving ``(N, 1, *[P + 2R] * ndim)`` patches of prepared images (see
        :meth:`cut`)."""
        return (self.cut(fixed, images, positions, self.patch_size),
                self.cut(moving, images, positions, self.patch_size + 2 * self.margin))
