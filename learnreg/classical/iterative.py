"""The multi-resolution iterative registrar that ``affine``, ``bspline`` and ``ddf`` specialise."""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F

from learnreg.classical.optimise import optimise_level
from learnreg.classical.pyramid import PyramidLevel, build_pyramid
from learnreg.errors import InputError
from learnreg.field import DisplacementField
from learnreg.image import Image
from learnreg.losses import image_loss, regulariser
from learnreg.losses.image import IMAGE_LOSSES
from learnreg.losses.regularisers import REGULARISERS
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, Registrar, StepRecord
from learnreg.transformations import AffineTransformation


@dataclass
class IterativeOptions:
    """Options every iterative method shares.

    Attributes:
        levels: pyramid shrink factors, coarse to fine (1 = full resolution).
        iterations: Adam iterations per level.
        learning_rate: Adam step size (per method: its parameters' units are documented there).
        image_loss: ``mse``, ``ncc`` or ``lncc``.
        lncc_window_mm: window width of ``lncc`` in mm.
        normalisation: intensity normalisation of both images: ``percentile``, ``zscore`` or ``none``.
        samples: on levels with more voxels than this, the image loss of each iteration is measured at this
            many voxels drawn at random, afresh every iteration (``mse`` and ``ncc``); 0 = every voxel.
        seed: seed of those draws (the same inputs and seed give the same result).
        stop_tolerance: a level ends early when its mean image loss over 10 iterations falls by less than
            this fraction from the 10 before; 0 = always run every iteration.
    """

    levels: tuple[float, ...] = (4, 2, 1)
    iterations: tuple[int, ...] = (100, 100, 50)
    learning_rate: float = 0.1
    image_loss: str = "mse"
    lncc_window_mm: float = 9.0
    normalisation: str = "percentile"
    samples: int = 0
    seed: int = 0
    stop_tolerance: float = 0.0

    def validate(self) -> None:
        if len(self.levels) != len(self.iterations) or not self.levels:
            raise InputError(f"give one iteration count per level: levels={self.levels}, iterations={self.iterations}")
        if any(f < 1 for f in self.levels) or any(n < 0 for n in self.iterations):
            raise InputError("levels must be shrink factors >= 1 and iterations >= 0")
        if self.learning_rate <= 0:
            raise InputError("learning_rate must be positive")
        if not 0 <= self.stop_tolerance < 1:
            raise InputError(f"stop_tolerance={self.stop_tolerance} must be a fraction in [0, 1) (0 = no early stop)")
        if self.samples < 0:
            raise InputError(f"samples={self.samples} must be 0 (every voxel) or a positive number of voxels")
        if self.image_loss not in IMAGE_LOSSES:
            raise InputError(f"unknown image_loss {self.image_loss!r}; use {', '.join(IMAGE_LOSSES)}")
        if self.normalisation not in ("percentile", "zscore", "none"):
            raise InputError("normalisation must be percentile, zscore or none")


@dataclass
class DeformableOptions(IterativeOptions):
    """Options of the deformable methods, on top of :class:`IterativeOptions`.

    Attributes:
        regulariser: ``bending``, ``diffusion`` or ``tv`` (isotropic total variation).
        regulariser_weight: weight of the regulariser against the image loss.
        initialise: ``affine`` runs the ``affine`` method first and deforms on top of it; ``none`` starts
            from the identity.
    """

    regulariser: str = "bending"
    regulariser_weight: float = 1.0
    initialise: str = "affine"

    def validate(self) -> None:
        super().validate()
        if self.regulariser not in REGULARISERS:
            raise InputError(f"unknown regulariser {self.regulariser!r}; use {', '.join(REGULARISERS)}")
        if self.regulariser_weight < 0:
            raise InputError("regulariser_weight must be >= 0")
        if self.initialise not in ("affine", "none"):
            raise InputError("initialise must be affine or none")


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
                   base: Optional[AffineTransformation] = None):
        """Optimise this method's model level by level.

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
        for index, level in enumerate(levels):
            model = self.model_for_level(model, level, index, fixed, moving).to(device)
            base_field = None
            if base is not None:
                base.set_grid(level.grid)
                with torch.no_grad():
                    base_field = base()
            history += optimise_level(
                model, level, level_image_loss(opts, level), iterations=int(opts.iterations[index]),
                learning_rate=self.learning_rate(level), progress=progress.span(bounds[index], bounds[index + 1]),
                label=f"{self.name} level {index + 1}/{len(levels)}", regulariser=reg,
                regulariser_weight=getattr(opts, "regulariser_weight", 0.0), base_field=base_field,
                samples=opts.samples, seed=opts.seed + index, stop_tolerance=opts.stop_tolerance)
            with torch.no_grad():
                level_field = model() if base_field is None else model() + base_field
            snapshots.append({"stage": self.name, "level": index + 1, "shrink_factor": float(opts.levels[index]),
                              "loss": history[-1] if history else float("nan"), "field": level_field})
        return model, history, snapshots
