"""The ``istn`` registrar: one pass of a trained ISTN, then optional test-time refinement.

Steps of the result: step 0 is the one-pass prediction, step 1 (when refinement ran) the change refinement
made, so the field after each step is what a reviewer compares (Dice before and after refinement). The
ITN representations of both images (what the network looks at) come back as images on the working grid.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.istn.method import ISTNOptions
from learnreg.istn.model import ISTNModel, affine_matrix_lps, full_resolution_field, pair_loss, refine, shipped_weights
from learnreg.istn.objective import WorkingWarp
from learnreg.learned import LearnedRegistrar
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, StepRecord
from learnreg.working import to_working, working_grid, zscore


def _working_image(tensor: torch.Tensor, grid) -> Image:
    array = tensor.detach().cpu().numpy()
    return Image(array if grid.ndim == 3 else array[None], grid)


class ISTNRegistrar(LearnedRegistrar):
    """ISTN: learned structure-focused representations, an affine or B-spline STN, test-time refinement."""

    name = "istn"
    Options = ISTNOptions
    bytes_per_voxel = 96

    def shipped_weights(self, ndim: int) -> Path:
        return shipped_weights(ndim, self.options.transformation, self.options.variant)

    def model_for(self, ndim: int) -> ISTNModel:
        o = self.options
        return ISTNModel.chosen(o.weights, self.shipped_weights(ndim), ndim,
                                f"ISTN weights for transformation={o.transformation} and variant={o.variant}",
                                "choose another pair or pass weights=FILE")

    def refine_scope(self, ndim: int) -> str:
        """What ISTN's own refinement optimises for images of ``ndim`` dimensions (``auto`` resolved)."""
        scope = self.options.refine_scope
        return scope if scope != "auto" else ("head" if ndim == 3 else "stn")

    def predict(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        t0 = time.perf_counter()
        model = self.model_for(fixed.ndim)
        network = model.network.to(device).eval()
        work = working_grid(fixed.grid, model.config.working_size)
        warp = WorkingWarp(network, work).to(device)
        fixed_w = zscore(to_working(fixed, work)).to(device)
        moving_w = zscore(to_working(moving, work)).to(device)
        with torch.no_grad():
            output = network(fixed_w, moving_w)
            one_pass_loss = float(pair_loss(network, output, warp, model.regulariser_weight))
        t_pass = time.perf_counter()
        progress.report(0.05, f"istn: one pass done, loss {one_pass_loss:.5f}")
        with torch.no_grad():
            one_pass = full_resolution_field(network, output.raw, fixed.grid, work)
        steps = [StepRecord(0, one_pass_loss, {"stage": "one pass"}, DisplacementField.from_axis_tensor(
            one_pass, fixed.grid))]
        history, field, kept = [one_pass_loss], one_pass, output.raw
        if self.options.refine_steps:
            result = refine(network, output, warp, self.options.refine_steps, self.options.refine_learning_rate,
                            model.regulariser_weight, progress.span(0.05, 0.95), self.refine_scope(fixed.ndim),
                            self.options.refine_samples)
            history = result.losses
            if result.best_step == 0:
                progress.report(0.95, "istn: refinement did not lower the representation loss; keeping the "
                                      "one-pass result")
            else:
                kept = result.raw
                with torch.no_grad():
                    field = full_resolution_field(network, result.raw, fixed.grid, work)
                steps.append(StepRecord(1, result.kept_loss,
                                        {"stage": "refined", "best_step": result.best_step},
                                        DisplacementField.from_axis_tensor(field - one_pass, fixed.grid)))
        images = {}
        if network.itn is not None:
            for role, tensor in (("fixed", output.fixed_representation), ("moving", output.moving_representation)):
                for channel in range(tensor.shape[1]):
                    images[f"{role} representation {channel + 1}"] = _working_image(tensor[0, channel], work)
        return MethodOutput(field=field, parameter_count=network.transformation.parameter_count, steps=steps,
                            loss_history=history, images=images,
                            affine_lps=affine_matrix_lps(network, kept, fixed.grid, work)
                            if network.config.transformation == "affine" else None,
                            stage_times={"one_pass": t_pass - t0, "refinement": time.perf_counter() - t_pass})
