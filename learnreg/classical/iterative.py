"""The multi-resolution iterative registrar that ``affine``, ``bspline`` and ``ddf`` specialise."""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F

from learnreg.classical.optimise import FixedStage, optimise_level
from learnreg.classical.options import IterativeOptions
from learnreg.classical.pyramid import PyramidLevel, build_pyramid
from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.losses import image_loss, regulariser
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, Registrar, StepRecord
from learnreg.transformations import AffineTransformation
from learnreg.warp import Warper


def level_image_loss(options: IterativeOptions, level: PyramidLevel) -> torch.nn.Module:
    extra = {"window_mm": options.lncc_window_mm} if options.image_loss == "lncc" else {}
    return image_loss(options.image_loss, spacing=level.grid.axis_spacing, **extra)


def centre_alignment(fixed: Image, moving: Image) -> np.ndarray:
    """Translation (mm along the fixed axes) that maps the fixed image centre onto the moving one."""
    shift_lps = moving.grid.centre - fixed.grid.centre
    return (fixed.grid.direction_matrix.T @ shift_lps)[: fixed.ndim]


def steps_from_snapshots(snapshots: list[dict], fixed: Image) -> list[StepRecord]:
    """One :class:`StepRecord` per pyramid level (and the affine pre-alignment): what each level added.

    Level fields are brought to the fixed grid by linear interpolation, exact at the first and last
    voxel centres that every pyramid level keeps.
    """
    steps: list[StepRecord] = []
    previous = None
    mode = "trilinear" if fixed.ndim == 3 else "bilinear"
    for index, snap in enumerate(snapshots):
        on_fixed = F.interpolate(snap["field"], size=fixed.grid.spatial_shape, mode=mode, align_corners=True)
        added = on_fixed if previous is None else on_fixed - previous
        previous = on_fixed
        parameters = {k: v for k, v in snap.items() if k not in ("field", "loss")}
        steps.append(StepRecord(index, float(snap["loss"]), parameters,
                                DisplacementField.from_axis_tensor(added, fixed.grid)))
    return steps


class IterativeRegistrar(Registrar):
    """Pyramid, optional affine pre-alignment, one model refined level by level.

    Subclasses implement :meth:`model_for_level`, which creates the model on the first level and
    carries it to the next.
    """

    bytes_per_voxel: ClassVar[int] = 600

    @abstractmethod
    def model_for_level(self, model: Optional[torch.nn.Module], level: PyramidLevel, index: int,
                        fixed: Image, moving: Image) -> torch.nn.Module:
        """The model to optimise on ``level``: new on the first level, carried over (or refined) after."""

    def learning_rate(self, level: PyramidLevel) -> float:
        """Adam step size on ``level``; deformable models step in mm, scaled by the level's voxel size."""
        return self.options.learning_rate * float(np.mean(level.grid.axis_spacing))

    def run(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        opts = self.options
        stage_times: dict[str, float] = {}
        history: list[float] = []
        base: Optional[AffineTransformation] = None
        snapshots: list[dict] = []
        parameter_count = 0
        deform_progress = progress
        if getattr(opts, "initialise", "none") == "affine":
            from learnreg.classical.affine import AffineRegistrar

            t0 = time.perf_counter()
            affine_registrar = AffineRegistrar({"image_loss": opts.image_loss, "lncc_window_mm": opts.lncc_window_mm,
                                                "seed": opts.seed, "stop_tolerance": opts.stop_tolerance})
            base, affine_history, affine_snapshots = affine_registrar.fit_levels(
                fixed, moving, device, progress.span(0.0, 0.25))
            for p in base.parameters():
                p.requires_grad_(False)
            history += affine_history
            snapshots.append(dict(affine_snapshots[-1], stage="affine"))
            parameter_count += base.parameter_count
            stage_times["affine"] = time.perf_counter() - t0
            deform_progress = progress.span(0.25, 1.0)
        t0 = time.perf_counter()
        model, level_history, level_snapshots = self.fit_levels(fixed, moving, device, deform_progress, base)
        history += level_history
        snapshots += level_snapshots
        stage_times[self.name] = time.perf_counter() - t0
        with torch.no_grad():
            model.set_grid(fixed.grid)
            field = model()
            if base is not None:
                base.set_grid(fixed.grid)
                field = field + base()
        parameter_count += model.parameter_count
        return MethodOutput(field=field.detach(), parameter_count=parameter_count, loss_history=history,
                            stage_times=stage_times, steps=steps_from_snapshots(snapshots, fixed))

    def fit_levels(self, fixed: Image, moving: Image, device: torch.device, progress: Progress,
                   base: Optional[torch.nn.Module] = None):
        """Optimise this method's model level by level, on top of ``base`` when given: a fixed earlier stage
        (a transformation model with ``set_grid``, whose parameters are not optimised here: the affine
        pre-alignment, added to, or a network's field as a :class:`~learnreg.transformations.FixedField`,
        composed with when its ``composed`` is set; see :class:`~learnreg.classical.optimise.FixedStage`).

        Returns the model, the loss history and one snapshot per level: its loss, shrink factor and
        field (including ``base``) on the level grid, for :func:`steps_from_snapshots`.
        """
        opts = self.options
        levels = build_pyramid(fixed, moving, opts.levels, device)
        weights = np.asarray(opts.iterations, dtype=float) * np.asarray([l.grid.num_voxels for l in levels])
        bounds = np.concatenate([[0.0], np.cumsum(weights) / max(weights.sum(), 1.0)])
        model: Optional[torch.nn.Module] = None
        history: list[float] = []
        snapshots: list[dict] = []
        reg = regulariser(opts.regulariser) if hasattr(opts, "regulariser") else None
        compose_base = bool(getattr(base, "composed", False))
        for index, level in enumerate(levels):
            model = self.model_for_level(model, level, index, fixed, moving).to(device)
            stage = None
            if base is not None:
                base.set_grid(level.grid)
                with torch.no_grad():
                    stage = FixedStage(base(), Warper(level.grid, level.grid).to(device) if compose_base else None)
            history += optimise_level(
                model, level, level_image_loss(opts, level), iterations=int(opts.iterations[index]),
                learning_rate=self.learning_rate(level), progress=progress.span(bounds[index], bounds[index + 1]),
                label=f"{self.name} level {index + 1}/{len(levels)}", regulariser=reg,
                regulariser_weight=getattr(opts, "regulariser_weight", 0.0), base=stage, optimiser=opts.optimiser,
                samples=opts.samples, seed=opts.seed + index, stop_tolerance=opts.stop_tolerance)
            with torch.no_grad():
                level_field = model() if stage is None else stage.on(model())
            snapshots.append({"stage": self.name, "level": index + 1, "shrink_factor": float(opts.levels[index]),
                              "loss": history[-1] if history else float("nan"), "field": level_field})
        return model, history, snapshots
