"""The ``cnnregress`` registrar: displacements regressed at active points, a thin-plate spline, two iterations.

The network sees both images on its working grid (:mod:`learnreg.working`). Each step of the result is one
pass (the paper's iteration) of :func:`~learnreg.cnnregress.model.register_on_working_grid`: its displacement is what the
iteration changed in the field (on the fixed grid, mm), its ``points`` are the active points (LPS) and its
``point_displacements`` the network's predictions there (LPS mm), which the Slicer bridge shows as glyphs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from learnreg.cnnregress.method import CNNRegressOptions
from learnreg.cnnregress.model import CNNRegressModel, register_on_working_grid, shipped_weights
from learnreg.cnnregress.sampling import active_points, point_count
from learnreg.field import DisplacementField
from learnreg.image import Grid, Image
from learnreg.learned import LearnedRegistrar
from learnreg.losses.image import MSE
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, StepRecord
from learnreg.working import field_on_fixed_grid, to_working, working_grid, zscore


def points_lps(positions: torch.Tensor, working: Grid) -> np.ndarray:
    """Working-grid voxel indices ``(N, ndim)`` (axis order) as LPS points ``(N, 3)``."""
    index = np.zeros((positions.shape[0], 3))
    index[:, :positions.shape[1]] = positions.cpu().numpy()
    return working.index_to_physical(index)


def vectors_lps(displacements: torch.Tensor, working: Grid) -> np.ndarray:
    """Displacements ``(N, ndim)`` in working voxels along the working axes as LPS vectors (mm) ``(N, 3)``."""
    nd = displacements.shape[1]
    return displacements.detach().cpu().double().numpy() * working.spacing[0] @ working.direction_matrix[:, :nd].T


class CNNRegressRegistrar(LearnedRegistrar):
    """Similarity-steered CNN regression at active points, thin-plate-spline interpolation, iterated."""

    name = "cnnregress"
    Options = CNNRegressOptions
    bytes_per_voxel = 96

    def shipped_weights(self, ndim: int) -> Path:
        return shipped_weights(ndim)

    def pass_memory_bytes(self, fixed: Grid, moving: Grid) -> int:
        per_iteration = 8 * fixed.ndim
        return fixed.num_voxels * (self.bytes_per_voxel + per_iteration * self.options.passes) \
            + 16 * moving.num_voxels

    def model_for(self, ndim: int) -> CNNRegressModel:
        return CNNRegressModel.chosen(self.options.weights, self.shipped_weights(ndim), ndim, "CNNRegress weights",
                                      f"train them with 'learnreg train cnnregress --config "
                                      f"Resources/Models/cnnregress_{ndim}d.toml' or pass weights=FILE")

    def predict(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        t0 = time.perf_counter()
        model = self.model_for(fixed.ndim)
        network = model.network.to(device).eval()
        work = working_grid(fixed.grid, model.config.working_size)
        fixed_w = to_working(fixed, work).to(device)
        moving_w = to_working(moving, work).to(device)
        coverage = to_working(Image(np.ones(fixed.array.shape, np.float32), fixed.grid), work)[0, 0] > 0.5
        count, note = point_count(self.options.density_for(fixed.ndim) / 100, int(coverage.sum()))
        if note:
            progress.report(0.0, f"cnnregress: {note}")
        points = active_points(fixed_w, count, coverage.to(device))
        progress.report(0.0, f"cnnregress: {count} active points chosen on the {model.config.working_size}^"
                             f"{fixed.ndim} working grid")
        t_setup = time.perf_counter()
        with torch.no_grad():
            smoothing = model.tps_smoothing if self.options.tps_smoothing is None else self.options.tps_smoothing
            passes = register_on_working_grid(network, fixed_w, moving_w, points, self.options.passes, smoothing,
                                              progress.span(0.0, 0.9))
            image_loss = MSE()
            fixed_z = zscore(fixed_w)
            losses = [float(image_loss(fixed_z, zscore(moving_w)))]
            positions = points_lps(points, work)
            steps, previous = [], torch.zeros(1, fixed.ndim, *fixed.grid.spatial_shape, device=device)
            for index, one in enumerate(passes):
                field = field_on_fixed_grid(one.field, work, fixed.grid)
                losses.append(float(image_loss(fixed_z, zscore(one.warped))))
                length_mm = one.predictions.norm(dim=1) * work.spacing[0]
                steps.append(StepRecord(
                    index, losses[-1],
                    {"iteration": index + 1, "active_points": count,
                     "mean_predicted_mm": round(float(length_mm.mean()), 3),
                     "max_predicted_mm": round(float(length_mm.max()), 3), **({"note": note} if note else {})},
                    DisplacementField.from_axis_tensor(field - previous, fixed.grid),
                    points=positions, point_displacements=vectors_lps(one.predictions, work)))
                previous = field
        network_seconds = sum(p.network_seconds for p in passes)
        spline_seconds = sum(p.spline_seconds for p in passes)
        return MethodOutput(field=previous, parameter_count=count * fixed.ndim * len(passes), steps=steps,
                            loss_history=losses,
                            stage_times={"setup": t_setup - t0, "network": network_seconds,
                                         "thin_plate_spline": spline_seconds,
                                         "warp_and_compose": time.perf_counter() - t_setup - network_seconds
                                         - spline_seconds})
