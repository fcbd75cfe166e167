"""The optimisation loop that every classical method shares: warp, image loss, regulariser, optimiser.

As in AirLab and the DeepReg tutorial, a registration is assembled from a transformation model, an
image loss and a regulariser from :mod:`learnreg.losses`; this loop fits the model's parameters on one
pyramid level with Adam (AMSGrad), whose iterations may measure the loss at a fresh random subset of voxels,
or with L-BFGS on the loss at every voxel (see :func:`choose_optimiser`).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from learnreg.classical.pyramid import PyramidLevel
from learnreg.progress import Progress
from learnreg.warp import Warper

SAMPLED_LEVEL_RATIO = 4
"""``auto`` samples a level only when it has more than this many times ``samples`` voxels: below that a
subset saves little, and L-BFGS needs the deterministic loss of every voxel."""


def choose_optimiser(optimiser: str, voxels: int, samples: int, pointwise: bool) -> tuple[str, int]:
    """``(optimiser, samples)`` for a level of ``voxels`` voxels: ``samples`` is 0 where every voxel is used.

    ``adam`` samples a level with more than ``samples`` voxels (when the loss is a mean over voxels);
    ``lbfgs`` never samples; ``auto`` samples, with Adam, only levels with more than
    :data:`SAMPLED_LEVEL_RATIO` x ``samples`` voxels, and uses L-BFGS on every voxel elsewhere.
    """
    threshold = samples * (SAMPLED_LEVEL_RATIO if optimiser == "auto" else 1)
    sampled = optimiser != "lbfgs" and pointwise and 0 < samples < voxels and voxels > threshold
    if sampled:
        return "adam", samples
    return ("adam" if optimiser == "adam" else "lbfgs"), 0


class FixedStage:
    """A fixed earlier stage's pull field ``(1, ndim, *spatial)`` on one grid (mm along its axes), that a later
    field builds on: added to it (``grid_warper`` None: an affine pre-alignment) or composed with it,
    ``base(x) + field(x + base(x))`` (``grid_warper``: the grid's warper onto itself): ``field`` deforms the moving
    image that ``base`` then warps, and the Jacobian is the product of the two maps', so positive wherever both are
    (a network's folding-free field stays so).

    The linear-interpolation stencil at the points ``x + base(x)`` is computed once, so each composition is a
    gather of the later field (``grid_sample`` there cost most of a refinement iteration, for its backward pass
    to the field it samples)."""

    def __init__(self, field: torch.Tensor, grid_warper: Optional[Warper] = None) -> None:
        self.field = field
        self.stencil = None
        if grid_warper is not None:
            points = grid_warper.sampling_grid(field)
            self.stencil = grid_warper.point_stencil(points.reshape(-1, points.shape[-1]))

    def on(self, field: torch.Tensor) -> torch.Tensor:
        """``field`` ``(1, ndim, *spatial)`` on top of this stage, at every voxel."""
        if self.stencil is None:
            return self.field + field
        return self.field + self.stencil.sample(field).reshape(field.shape)

    def on_voxels(self, field: torch.Tensor, voxels: torch.Tensor) -> torch.Tensor:
        """:meth:`on` at some voxels only (flat indices): ``(ndim, len(voxels))``."""
        nd = field.shape[1]
        base = self.field.reshape(nd, -1).index_select(1, voxels)
        if self.stencil is None:
            return base + field.reshape(nd, -1).index_select(1, voxels)
        return base + self.stencil.rows(voxels).sample(field)


def on_base(base_field: Optional[torch.Tensor], field: torch.Tensor, grid_warper: Optional[Warper]) -> torch.Tensor:
    """``field`` on top of a fixed earlier stage's ``base_field`` (None: no earlier stage), added or composed as
    :class:`FixedStage` says."""
    return field if base_field is None else FixedStage(base_field, grid_warper).on(field)


def optimise_level(model: torch.nn.Module, level: PyramidLevel, image_loss: torch.nn.Module, *,
                   iterations: int, learning_rate: float, progress: Progress, label: str,
                   regulariser: Optional[torch.nn.Module] = None, regulariser_weight: float = 0.0,
                   base: Optional[FixedStage] = None, optimiser: str = "auto",
                   samples: int = 0, seed: int = 0, stop_tolerance: float = 0.0, stop_window: int = 10) -> list[float]:
    """Fit ``model`` on ``level``; return the image loss of every evaluation.

    The warp uses ``model()`` on top of ``base`` (a fixed earlier stage on the level grid: added to it or composed
    with it, see :class:`FixedStage`); the regulariser acts on ``model()`` alone (from the model's parameters when
    it can, see :meth:`~learnreg.losses.regularisers.QuadraticRegulariser.of_model`).

    ``optimiser`` and ``samples`` choose, per :func:`choose_optimiser`, between:

    - Adam (AMSGrad, step ``learning_rate``) on a loss measured at ``samples`` voxels drawn at random,
      afresh every iteration (elastix's random-coordinate sampler), or at every voxel; draws come from a
      generator seeded with ``seed``, so the same inputs give the same result. It stops once the mean
      image loss of the last ``stop_window`` iterations is less than ``stop_tolerance`` (a fraction) below
      the mean of the window before.
    - L-BFGS with a strong-Wolfe line search on the loss at every voxel, at most ``iterations``
      iterations; it stops once the best objective of the last ``stop_window`` evaluations is less than
      ``stop_tolerance`` (a fraction) below the best before them, and keeps the best point evaluated.

    ``stop_tolerance`` = 0 runs every iteration.
    """
    method, samples = choose_optimiser(optimiser, level.grid.num_voxels, samples,
                                       getattr(image_loss, "pointwise", False))
    spacing = level.grid.axis_spacing
    history: list[float] = []

    def objective(voxels: Optional[torch.Tensor]) -> torch.Tensor:
        field = model()
        if voxels is not None:
            warped, mask = level.warper.at_voxels(level.moving, field, voxels,
                                                  vectors=None if base is None else base.on_voxels(field, voxels))
            similarity = image_loss(level.fixed.reshape(1, 1, -1).index_select(2, voxels), warped, mask)
        else:
            warped, mask = level.warper(level.moving, field if base is None else base.on(field), return_mask=True)
            similarity = image_loss(level.fixed, warped, mask)
        history.append(float(similarity.detach()))
        if regulariser is None or regulariser_weight <= 0:
            return similarity
        of_model = getattr(regulariser, "of_model", None)  # from the parameters when the model can
        return similarity + regulariser_weight * (of_model(model, field, spacing) if of_model else regulariser(field, spacing))

    step = "evaluation" if method == "lbfgs" else "iteration"  # L-BFGS's line search evaluates more than once

    def report(fraction: float) -> None:
        progress.report(min(fraction, 1.0), f"{label}: {step} {len(history)}, image loss {history[-1]:.5f}")

    if method == "lbfgs":
        _lbfgs(model, objective, iterations, stop_tolerance, stop_window, report)
    else:
        _adam(model, objective, iterations, learning_rate, level.grid.num_voxels, samples, seed,
              stop_tolerance, stop_window, history, report)
    return history


class _Converged(Exception):
    """Raised from inside L-BFGS's closure to end the level (torch's optimiser has no stopping hook)."""


def _lbfgs(model: torch.nn.Module, objective: Callable, iterations: int, stop_tolerance: float,
           stop_window: int, report: Callable[[float], None]) -> None:
    """L-BFGS (strong-Wolfe line search) on ``objective(None)``, at most ``iterations`` iterations, ending once
    the best objective of the last ``stop_window`` evaluations is less than ``stop_tolerance`` (a fraction)
    below the best before them; the parameters end at the best point evaluated.

    torch's own tolerances are absolute and end a level after a single small step (a fine level that starts
    close to its optimum stopped at once, leaving a 3D pair at its affine start), so they are switched off and
    this rule, the same as Adam's but on the best value, decides instead."""
    if iterations <= 0:
        return
    parameters = list(model.parameters())
    max_evaluations = int(iterations * 1.25)
    optimiser = torch.optim.LBFGS(parameters, lr=1.0, max_iter=iterations, max_eval=max_evaluations, history_size=10,
                                  line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    best_values: list[float] = []  # the best objective after each evaluation
    best_parameters = [p.detach().clone() for p in parameters]

    def closure() -> torch.Tensor:
        optimiser.zero_grad(set_to_none=True)
        value = objective(None)
        value.backward()
        current = float(value.detach())
        if not best_values or current < best_values[-1]:
            for kept, p in zip(best_parameters, parameters):
                kept.copy_(p.detach())
        best_values.append(min(current, best_values[-1]) if best_values else current)
        report(len(best_values) / max_evaluations)
        if stop_tolerance > 0 and len(best_values) > stop_window:
            before = best_values[-1 - stop_window]
            if before - best_values[-1] < stop_tolerance * abs(before):
                raise _Converged
        return value

    try:
        optimiser.step(closure)
    except _Converged:
        pass
    with torch.no_grad():
        for kept, p in zip(best_parameters, parameters):
            p.copy_(kept)
    report(1.0)


def _adam(model: torch.nn.Module, objective: Callable, iterations: int, learning_rate: float, voxels: int,
          samples: int, seed: int, stop_tolerance: float, stop_window: int, history: list[float],
          report: Callable[[float], None]) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, amsgrad=True, fused=True)
    sampler = torch.Generator(device="cpu").manual_seed(int(seed)) if samples else None
    device = next(model.parameters()).device
    for iteration in range(iterations):
        optimiser.zero_grad(set_to_none=True)
        chosen = torch.randint(voxels, (samples,), generator=sampler).to(device) if sampler is not None else None
        objective(chosen).backward()
        optimiser.step()
        report((iteration + 1) / iterations)
        if stop_tolerance > 0 and len(history) >= 2 * stop_window and len(history) % stop_window == 0:
            previous = float(np.mean(history[-2 * stop_window:-stop_window]))
            current = float(np.mean(history[-stop_window:]))
            if previous - current < stop_tolerance * abs(previous):
                break
    report(1.0)
