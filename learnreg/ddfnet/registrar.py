"""The ``ddfnet`` registrar: one pass of the trained network (then, as every learned method, the similarity
check and the B-spline refinement of :class:`~learnreg.learned.LearnedRegistrar`).

The network sees both images on its working grid (:mod:`learnreg.working`); its pull field, in working
voxels, is interpolated onto the full-resolution fixed grid and scaled to mm. An ``affine`` model also gives
its 4 x 4 matrix (fixed LPS -> moving LPS) for the scene's linear transform.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from learnreg.ddfnet.method import DDFNetOptions
from learnreg.ddfnet.model import DDFNetModel, shipped_weights
from learnreg.ddfnet.network import DDFNetOutput
from learnreg.field import DisplacementField
from learnreg.image import Grid, Image
from learnreg.learned import LearnedRegistrar
from learnreg.losses.image import NCC
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, StepRecord
from learnreg.warp import Warper
from learnreg.working import field_on_fixed_grid, to_working, working_grid, zscore


def affine_matrix_lps(output: DDFNetOutput, fixed: Grid, working: Grid) -> np.ndarray:
    """The affine output as a 4 x 4 matrix from fixed LPS points to moving LPS points (mm).

    With ``R`` the first ``ndim`` columns of the grid direction, ``o`` the working grid's origin, ``s`` its
    spacing and ``c`` its centre in voxels, a working point ``p = R^T (x - o) / s`` moves to
    ``x + s R ((A - I)(p - c) + t)``, i.e. ``x -> x + R (A - I) R^T (x - o) + s R (t - (A - I) c)``.
    """
    nd = fixed.ndim
    offset = output.linear[0].detach().cpu().double().numpy() - np.eye(nd)
    t = output.translation[0].detach().cpu().double().numpy()
    r = fixed.direction_matrix[:, :nd]
    s = working.spacing[0]
    c = np.full(nd, (working.size[0] - 1) / 2)
    matrix = np.eye(4)
    matrix[:3, :3] += r @ offset @ r.T
    matrix[:3, 3] = -r @ offset @ r.T @ np.asarray(working.origin) + s * r @ (t - offset @ c)
    return matrix


class DDFNetRegistrar(LearnedRegistrar):
    """DeepReg's registration network: a dense displacement, a velocity field or an affine map in one pass."""

    name = "ddfnet"
    Options = DDFNetOptions
    bytes_per_voxel = 64

    def shipped_weights(self, ndim: int) -> Path:
        return shipped_weights(ndim, self.options.output)

    def model_for(self, ndim: int) -> DDFNetModel:
        o = self.options
        return DDFNetModel.chosen(o.weights, self.shipped_weights(ndim), ndim,
                                  f"ddfnet weights for output={o.output}", "choose another output or pass weights=FILE")

    def predict(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        t0 = time.perf_counter()
        model = self.model_for(fixed.ndim)
        network = model.network.to(device).eval()
        work = working_grid(fixed.grid, model.config.working_size)
        fixed_w = zscore(to_working(fixed, work)).to(device)
        moving_w = zscore(to_working(moving, work)).to(device)
        with torch.no_grad():
            output = network(fixed_w, moving_w)
            warped, inside = Warper(work, work).to(device)(moving_w, output.field * work.spacing[0], return_mask=True)
            loss = float(NCC()(fixed_w, warped, inside))
            field = field_on_fixed_grid(output.field, work, fixed.grid)
        progress.report(1.0, f"ddfnet: one pass done, 1 - NCC {loss:.4f} on the working grid")
        steps = [StepRecord(0, loss, {"stage": "one pass"}, DisplacementField.from_axis_tensor(field, fixed.grid))]
        affine = affine_matrix_lps(output, fixed.grid, work) if model.config.output == "affine" else None
        # the transformation's parameters: the affine map's, or the dense field's (or velocity's) on the working grid
        parameters = fixed.ndim * (fixed.ndim + 1) if affine is not None else output.field[0].numel()
        return MethodOutput(field=field, parameter_count=parameters, steps=steps, loss_history=[loss],
                            affine_lps=affine, stage_times={"one_pass": time.perf_counter() - t0})
