"""The ``r2n2`` registrar: trained R2N2 weights, one Gaussian per step, a stopping rule, per-step records.

The network runs on the working grid (:func:`learnreg.r2n2.model.working_grid`); each step's Gaussian is
converted to the fixed grid's axis frame and evaluated at full resolution, so the returned field is
exactly the sum of the reported Gaussians. The stopping criterion is the one the paper proposes as future
work, with patience: a step *improves* when it brings the image loss (masked MSE of the z-scored images on
the working grid) at least ``tolerance`` x the initial loss below the best loss so far; the sequence ends
after ``steps`` steps or after ``patience`` steps in a row that do not improve, and the result is the
sequence up to its best step (later steps are dropped). A trained network may take a step that costs a
little image loss and then one that gains more, which a stop at the first such step would cut off.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from learnreg.image import Grid, Image
from learnreg.learned import LearnedRegistrar
from learnreg.losses.image import MSE
from learnreg.progress import Progress
from learnreg.r2n2.gaussian import GaussianParameters, gaussian_displacement, step_record
from learnreg.r2n2.method import R2N2Options
from learnreg.r2n2.model import R2N2Model, run_sequence, shipped_weights
from learnreg.registration import MethodOutput
from learnreg.warp import Warper, axis_coordinate_tensor
from learnreg.working import axis_offset, to_working, working_grid, zscore

#: an image larger than this many working voxels along an axis is worth a note (detail finer than the
#: working grid is not seen by the network)
_DOWNSAMPLING_NOTE = 2.0


class R2N2Registrar(LearnedRegistrar):
    """R2N2: a recurrent network adds one rotated anisotropic Gaussian per step (trained weights)."""

    name = "r2n2"
    Options = R2N2Options
    bytes_per_voxel = 64

    def shipped_weights(self, ndim: int) -> Path:
        return shipped_weights(ndim)

    def pass_memory_bytes(self, fixed: Grid, moving: Grid) -> int:
        steps = self.options.steps or 50
        return fixed.num_voxels * (self.bytes_per_voxel + 4 * fixed.ndim * steps) + 16 * moving.num_voxels

    def model_for(self, ndim: int) -> R2N2Model:
        return R2N2Model.chosen(self.options.weights, self.shipped_weights(ndim), ndim, "R2N2 weights",
                                f"train them with 'learnreg train r2n2 --config Resources/Models/r2n2_{ndim}d.toml' "
                                "or pass weights=FILE")

    def predict(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        t0 = time.perf_counter()
        model = self.model_for(fixed.ndim)
        network = model.network.to(device).eval()
        work = working_grid(fixed.grid, model.working_size)
        largest = max(fixed.grid.size[: fixed.ndim])
        if largest > _DOWNSAMPLING_NOTE * model.working_size:
            progress.report(0.0, f"r2n2: the network sees the images on {model.working_size}^{fixed.ndim} voxels of "
                                 f"{work.spacing[0]:.2f} mm (the images have up to {largest}); the field is "
                                 "evaluated at full resolution")
        fixed_w = zscore(to_working(fixed, work)).to(device)
        moving_w = zscore(to_working(moving, work)).to(device)
        coordinates = axis_coordinate_tensor(fixed.grid, device=device)
        offset = torch.as_tensor(axis_offset(fixed.grid, work), dtype=torch.float32, device=device)
        steps = self.options.steps or model.sequence_length
        image_loss = MSE()
        identity, inside = Warper(work, work).to(device)(moving_w, None, return_mask=True)
        initial = float(image_loss(fixed_w, identity, inside))  # through the warp, as every step's loss
        best, misses = initial, 0
        field = torch.zeros(1, fixed.ndim, *fixed.grid.spatial_shape, device=device)
        kept_field, records, pending = field, [], []
        t_setup = time.perf_counter()
        with torch.no_grad():
            for step in run_sequence(network, fixed_w, moving_w, work, steps):
                loss = float(image_loss(fixed_w, step.warped, step.inside))
                g = step.gaussian
                centre = g.centre + offset
                displacement = gaussian_displacement(coordinates, centre, g.widths, g.angles, g.weight)
                field = field + displacement
                parameters = GaussianParameters(*(t[0].cpu().numpy().astype(float)
                                                  for t in (centre, g.widths, g.angles, g.weight)))
                pending.append(step_record(step.index, loss, parameters, displacement, fixed.grid))
                progress.report((step.index + 1) / steps, f"r2n2: step {step.index + 1}/{steps}, image loss {loss:.4f} "
                                                          f"(best {min(best, loss):.4f}, start {initial:.4f})")
                if loss <= best - self.options.tolerance * initial:
                    records, pending, kept_field, best, misses = records + pending, [], field, loss, 0
                    continue
                misses += 1
                if misses >= self.options.patience:
                    break
        if pending:
            progress.report(1.0, f"r2n2: kept {len(records)} steps (image loss {best:.4f}); the "
                                 f"{len(pending)} after the best did not improve it")
        field = kept_field
        losses = [r.loss for r in records]
        return MethodOutput(field=field, parameter_count=GaussianParameters.count(fixed.ndim) * len(records),
                            steps=records, loss_history=[initial] + losses,
                            stage_times={"setup": t_setup - t0, "network": time.perf_counter() - t_setup})
