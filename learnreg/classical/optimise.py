"""The optimisation loop that every classical method shares: warp, image loss, regulariser, Adam.

As in AirLab and the DeepReg tutorial, a registration is assembled from a transformation model, an
image loss and a regulariser from :mod:`learnreg.losses`; this loop fits the model's parameters on one
pyramid level with Adam (AMSGrad).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from learnreg.classical.pyramid import PyramidLevel
from learnreg.progress import Progress


def optimise_level(model: torch.nn.Module, level: PyramidLevel, image_loss: torch.nn.Module, *,
                   iterations: int, learning_rate: float, progress: Progress, label: str,
                   regulariser: Optional[torch.nn.Module] = None, regulariser_weight: float = 0.0,
                   base_field: Optional[torch.Tensor] = None, samples: int = 0, seed: int = 0,
                   stop_tolerance: float = 0.0, stop_window: int = 10) -> list[float]:
    """Fit ``model`` on ``level``; return the image loss of every iteration.

    The warp uses ``base_field + model()`` (``base_field``: a fixed earlier stage, e.g. an affine
    pre-alignment); the regulariser acts on ``model()`` alone (from the model's parameters when it can,
    see :meth:`~learnreg.losses.regularisers.QuadraticRegulariser.of_model`).

    ``samples`` > 0: on a level with more voxels than that, the image loss of each iteration is measured at
    ``samples`` voxels drawn at random, afresh every iteration (elastix's random-coordinate sampler), for
    losses that are means over voxels (``mse``, ``ncc``; ``lncc`` needs whole neighbourhoods and uses every
    voxel). The draws come from a generator seeded with ``seed``: the same inputs give the same result.

    ``stop_tolerance`` > 0: the level ends early once the mean image loss of the last ``stop_window``
    iterations is less than ``stop_tolerance`` (a fraction) below the mean of the window before.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, amsgrad=True)
    spacing = level.grid.axis_spacing
    history: list[float] = []
    voxels = level.grid.num_voxels
    sampler = None
    if 0 < samples < voxels and getattr(image_loss, "pointwise", False):
        sampler = torch.Generator(device="cpu").manual_seed(int(seed))
        fixed_flat = level.fixed.reshape(1, 1, -1)
    for iteration in range(iterations):
        optimiser.zero_grad(set_to_none=True)
        field = model()
        total = field if base_field is None else base_field + field
        if sampler is not None:
            chosen = torch.randint(voxels, (samples,), generator=sampler).to(level.fixed.device)
            warped, mask = level.warper.at_voxels(level.moving, total, chosen)
            similarity = image_loss(fixed_flat[:, :, chosen], warped, mask)
        else:
            warped, mask = level.warper(level.moving, total, return_mask=True)
            similarity = image_loss(level.fixed, warped, mask)
        loss = similarity
        if regulariser is not None and regulariser_weight > 0:
            of_model = getattr(regulariser, "of_model", None)  # from the parameters when the model can
            loss = loss + regulariser_weight * (of_model(model, field, spacing) if of_model else regulariser(field, spacing))
        loss.backward()
        optimiser.step()
        history.append(float(similarity.detach()))
        progress.report((iteration + 1) / iterations, f"{label}: iteration {iteration + 1}/{iterations}, "
                                                      f"image loss {history[-1]:.5f}")
        if stop_tolerance > 0 and len(history) >= 2 * stop_window and len(history) % stop_window == 0:
            previous = float(np.mean(history[-2 * stop_window:-stop_window]))
            current = float(np.mean(history[-stop_window:]))
            if previous - current < stop_tolerance * abs(previous):
                progress.report(1.0, f"{label}: converged after {iteration + 1} iterations, image loss {current:.5f}")
                break
    return history
