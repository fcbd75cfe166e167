"""The ``istn`` registrar: one pass of a trained ISTN, then optional test-time refinement.

Steps of the result: step 0 is the one-pass prediction, step 1 (when refinement ran) the change refinement
made, so the field after each step is what a reviewer compares (Dice before and after refinement). The
ITN representations of both images (what the network looks at) come back as images on the working grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from learnreg.errors import InputError
from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.istn.model import (ISTNModel, affine_matrix_lps, full_resolution_field, pair_loss, refine,
                                 shipped_weights)
from learnreg.istn.network import TRANSFORMATIONS, VARIANTS
from learnreg.istn.objective import WorkingWarp
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, Registrar, StepRecord, register_method
from learnreg.working import to_working, working_grid, zscore


@dataclass
class ISTNOptions:
    """Options of ``istn``.

    Attributes:
        weights: weights file (``.pt`` with its ``.card.json``); it fixes the transformation and variant.
            Empty: the shipped weights for the image's dimension, ``transformation`` and ``variant``.
        transformation: ``affine`` or ``bspline`` (shipped weights only).
        variant: ``istn-i``, ``istn-e``, ``stn-s`` or ``stn-u`` (shipped weights only).
        refine_steps: test-time refinement steps (0: one pass only).
        refine_learning_rate: Adam learning rate of the refinement.
    """

    weights: str = ""
    transformation: str = "affine"
    variant: str = "istn-i"
    refine_steps: int = 50
    refine_learning_rate: float = 1e-3

    def validate(self) -> None:
        if self.transformation not in TRANSFORMATIONS:
            raise InputError(f"transformation={self.transformation!r} must be one of {', '.join(TRANSFORMATIONS)}")
        if self.variant not in VARIANTS:
            raise InputError(f"variant={self.variant!r} must be one of {', '.join(VARIANTS)}")
        if not 0 <= self.refine_steps <= 2000:
            raise InputError(f"refine_steps={self.refine_steps} must be between 0 (no refinement) and 2000")
        if not 0 < self.refine_learning_rate <= 1:
            raise InputError(f"refine_learning_rate={self.refine_learning_rate} must be in (0, 1]")


def _working_image(tensor: torch.Tensor, grid) -> Image:
    array = tensor.detach().cpu().numpy()
    return Image(array if grid.ndim == 3 else array[None], grid)


@register_method
class ISTNRegistrar(Registrar):
    """ISTN: learned structure-focused representations, an affine or B-spline STN, test-time refinement."""

    name = "istn"
    description = "Image-and-spatial transformer network (trained), affine or B-spline, with test-time refinement"
    Options = ISTNOptions
    bytes_per_voxel = 96

    @classmethod
    def ready(cls) -> bool:
        """Whether the default transformation and variant have shipped weights (2D or 3D)."""
        o = cls.Options()
        return any(shipped_weights(nd, o.transformation, o.variant).is_file() for nd in (2, 3))

    def model_for(self, ndim: int) -> ISTNModel:
        o = self.options
        return ISTNModel.chosen(o.weights, shipped_weights(ndim, o.transformation, o.variant), ndim,
                                f"ISTN weights for transformation={o.transformation} and variant={o.variant}",
                                "choose another pair or pass weights=FILE")

    def run(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
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
                            model.regulariser_weight, progress.span(0.05, 0.95))
            history = result.losses
            if result.best_step == 0:
                progress.report(0.95, "istn: refinement did not lower the representation loss; keeping the "
                                      "one-pass result")
            else:
                kept = result.raw
                with torch.no_grad():
                    field = full_resolution_field(network, result.raw, fixed.grid, work)
                steps.append(StepRecord(1, result.losses[result.best_step],
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
