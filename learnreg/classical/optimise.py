"""The optimisation loop that every classical method shares: warp, image loss, regulariser, Adam.

As in AirLab and the DeepReg tutorial, a registration is assembled from a transformation model, an
image loss and a regulariser from :mod:`learnreg.losses`; this loop fits the model's parameters on one
pyramid level with Adam (AMSGrad).
"""

from __future__ import annotations

from typing import Optional

import torch

from learnreg.classical.pyramid import PyramidLevel
from learnreg.progress import Progress


def optimise_level(model: torch.nn.Module, level: PyramidLevel, image_loss: torch.nn.Module, *,
                   iterations: int, learning_rate: float, progress: Progress, label: str,
                   regulariser: Optional[torch.nn.Module] = None, regulariser_weight: float = 0.0,
                   base_field: Optional[torch.Tensor] = None) -> list[float]:
    """Fit ``model`` on ``level``; return the image loss of every iteration.

    The warp uses ``base_field + model()`` (``base_field``: a fixed earlier stage, e.g. an affine
    pre-alignment); the regulariser acts on ``model()`` alone.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, amsgrad=True)
    spacing = level.grid.axis_spacing
    history: list[float] = []
    for iteration in range(iterations):
        optimiser.zero_grad(set_to_none=True)
        field = model()
        total = field if base_field is None else base_field + field
        warped, mask = level.warper(level.moving, total, return_mask=True)
        similarity = image_loss(level.fixed, warped, mask)
        loss = similarity
        if regulariser is not None and regulariser_weight > 0:
            loss = loss + regulariser_weight * regulariser(field, spacing)
        loss.backward()
        optimiser.step()
        history.append(float(similarity.detach()))
        progress.report((iteration + 1) / iterations, f"{label}: iteration {iteration + 1}/{iterations}, "
                                                      f"image loss {history[-1]:.5f}")
    return history
