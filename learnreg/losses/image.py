"""Image similarity losses (lower is better), 2D and 3D, for tensors ``(B, C, *spatial)``.

Each loss takes the fixed image, the warped moving image and an optional mask (1 where the warped
image was sampled inside the moving image), so that voxels pulled from outside the moving image do
not count (as R2N2 does).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from learnreg.options import IMAGE_LOSS_NAMES


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


class MSE(torch.nn.Module):
    """Mean squared intensity difference."""

    #: a mean over voxels: it may be measured on a random subset of them
    pointwise = True

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return _masked_mean((fixed - warped) ** 2, mask)


class NCC(torch.nn.Module):
    """``1 - `` global normalised cross-correlation, per batch item, averaged."""

    #: global statistics over voxels: it may be measured on a random subset of them
    pointwise = True

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        dims = tuple(range(1, fixed.dim()))
        w = torch.ones_like(fixed) if mask is None else mask.expand_as(fixed)
        n = w.sum(dim=dims).clamp_min(1.0)
        mf = (fixed * w).sum(dim=dims) / n
        mw = (warped * w).sum(dim=dims) / n
        shape = (-1,) + (1,) * (fixed.dim() - 1)
        df, dw = (fixed - mf.view(shape)) * w, (warped - mw.view(shape)) * w
        cross = (df * dw).sum(dim=dims)
        denom = torch.sqrt((df ** 2).sum(dim=dims) * (dw ** 2).sum(dim=dims) + self.eps)
        return (1.0 - cross / denom).mean()


def axis_box_mean(x: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """Means of ``size`` consecutive voxels along spatial ``axis`` of ``x`` ``(B, C, *spatial)``, where the window
    fits (``size - 1`` fewer voxels along that axis). Applied along every axis in turn it gives the box mean, at
    ``size`` additions a voxel per axis instead of ``size ** ndim``."""
    # on CPU about 5 x faster than avg_pool3d with a (size, 1, 1) kernel forward, and no slower with the gradient
    return x.unfold(2 + axis, size, 1).mean(-1)


class LocalNCC(torch.nn.Module):
    """``1 - `` mean squared local normalised cross-correlation over a box window.

    Args:
        window_mm: window width in mm; converted per axis to an odd number of voxels (at least 3), so
            the window covers the same physical region at any spacing.
        spacing: mm per voxel along ``(i, j[, k])``; set per pyramid level with :meth:`with_spacing`.
    """

    def __init__(self, window_mm: float = 9.0, spacing=(1.0, 1.0, 1.0), eps: float = 1e-5) -> None:
        super().__init__()
        self.window_mm = float(window_mm)
        self.spacing = tuple(float(s) for s in spacing)
        self.eps = eps

    def with_spacing(self, spacing) -> "LocalNCC":
        return LocalNCC(self.window_mm, spacing, self.eps)

    def _window(self, nd: int) -> tuple[int, ...]:
        sizes = [max(3, 2 * int(math.floor(self.window_mm / s / 2)) + 1) for s in self.spacing[:nd]]
        return tuple(reversed(sizes))  # spatial order (k, j, i)

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        nd = fixed.dim() - 2
        window = self._window(nd)

        # the box mean one axis at a time (the same values: a 9-voxel 3D window costs 27 additions a voxel, not
        # 729), zero-padded and divided by the fraction of the window inside, so a window may be wider than the
        # image: per axis (spatial axis a is tensor dimension 2 + a) its window, padding and that fraction
        passes = []
        for axis, size in enumerate(window):
            if size > 1:
                pad = [0, 0] * nd
                pad[2 * (nd - 1 - axis)] = pad[2 * (nd - 1 - axis) + 1] = size // 2  # F.pad: last dimension first
                ones = fixed.new_ones([fixed.shape[2 + a] if a == axis else 1 for a in range(nd)])[None, None]
                passes.append((axis, size, pad, axis_box_mean(F.pad(ones, pad), axis, size)))

        def local_mean(x: torch.Tensor) -> torch.Tensor:
            for axis, size, pad, inside in passes:
                x = axis_box_mean(F.pad(x, pad), axis, size) / inside
            return x

        mf, mw = local_mean(fixed), local_mean(warped)
        cross = local_mean(fixed * warped) - mf * mw
        var_f = (local_mean(fixed * fixed) - mf * mf).clamp_min(0.0)
        var_w = (local_mean(warped * warped) - mw * mw).clamp_min(0.0)
        cc = cross * cross / (var_f * var_w + self.eps)
        return 1.0 - _masked_mean(cc, mask)


IMAGE_LOSSES = dict(zip(IMAGE_LOSS_NAMES, (MSE, NCC, LocalNCC)))
