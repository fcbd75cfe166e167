"""A trained CNNRegress network and the registration it drives on the working grid.

:func:`register_on_working_grid` is the paper's inference, shared by the registrar and by validation during
training: predict the displacement at every active point of the fixed image, interpolate the predictions
to a dense field with a thin-plate spline (:mod:`learnreg.cnnregress.tps`), warp the moving image, and
repeat, composing the increments: after the fixed image's field ``t`` and a new increment ``v`` (predicted
between the fixed image and the moving image warped by ``t``) the field is ``v(x) + t(x + v(x))``.

Fields there are in working voxels along the working grid's axes (pull direction); the registrar turns
them into millimetres on the fixed grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from learnreg.cnnregress.network import CNNRegressConfig, CNNRegressNetwork
from learnreg.cnnregress.sampling import PatchCutter
from learnreg.cnnregress.tps import dense_field
from learnreg.image import Grid
from learnreg.model_files import MODELS_DIR, SavedNetwork
from learnreg.progress import Progress
from learnreg.warp import Warper

METHOD = "cnnregress"
#: patch pairs per network call (memory: about 1 MB per 3D pair of the default size)
PATCH_BATCH = 128
#: the spline is evaluated at every ``stride``-th working voxel per dimension (see :func:`~learnreg.cnnregress.tps.dense_field`)
EVALUATION_STRIDE = {2: 1, 3: 2}


def shipped_weights(ndim: int) -> Path:
    """Path of the shipped weights for 2D or 3D images."""
    return MODELS_DIR / f"cnnregress_{ndim}d.pt"


class CNNRegressModel(SavedNetwork):
    """CNNRegress weights (the configuration fixes the working grid, the patch and ``tau``) and the thin-plate
    spline's smoothing ``lambda`` chosen for them on the validation pairs after training."""

    method = METHOD

    def __init__(self, network: CNNRegressNetwork, tps_smoothing: float = 0.0, card: dict | None = None) -> None:
        super().__init__(network, card)
        self.tps_smoothing = float(tps_smoothing)

    @property
    def config(self) -> CNNRegressConfig:
        return self.network.config

    def settings(self) -> dict:
        return {"tps_smoothing": self.tps_smoothing}

    @classmethod
    def from_payload(cls, payload: dict, card: dict | None = None) -> "CNNRegressModel":
        network = CNNRegressNetwork(CNNRegressConfig.from_dict(payload["network"]))
        network.load_state_dict(payload["state_dict"])
        return cls(network, payload["tps_smoothing"], card)


def cutter_for(config: CNNRegressConfig) -> PatchCutter:
    return PatchCutter(config.patch_size, config.margin)


def predict_at_points(network: CNNRegressNetwork, fixed: torch.Tensor, moving: torch.Tensor,
                      positions: torch.Tensor, progress: Optional[Progress] = None) -> torch.Tensor:
    """Displacements ``(N, ndim)`` (working voxels) at voxel indices ``positions`` ``(N, ndim)`` of one pair of
    prepared images (:meth:`~learnreg.cnnregress.sampling.PatchCutter.prepare`), :data:`PATCH_BATCH` at a time,
    each batch reported to ``progress`` (which may cancel there)."""
    cutter = cutter_for(network.config)
    out = []
    chunks = torch.split(positions, PATCH_BATCH)
    for index, chunk in enumerate(chunks):
        images = torch.zeros(chunk.shape[0], dtype=torch.long, device=chunk.device)
        out.append(network(*cutter.pairs(fixed, moving, images, chunk)))
        if progress is not None:
            progress.report((index + 1) / len(chunks), f"cnnregress: {min((index + 1) * PATCH_BATCH, len(positions))}"
                                                       f"/{len(positions)} active points predicted")
    return torch.cat(out)


def unit_grid(config: CNNRegressConfig) -> Grid:
    """The working grid in its own voxel units (spacing 1), where fields are in working voxels."""
    return Grid.make((config.working_size,) * config.ndim + (1,) * (3 - config.ndim))


def compose(total: torch.Tensor, increment: torch.Tensor, warper: Warper) -> torch.Tensor:
    """``increment(x) + total(x + increment(x))`` (fields ``(1, ndim, *spatial)`` on ``warper``'s unit grid;
    outside the grid ``total`` takes its border value)."""
    moved = F.grid_sample(total, warper.sampling_grid(increment).to(total.dtype), mode="bilinear",
                          padding_mode="border", align_corners=True)
    return increment + moved


@dataclass
class Iteration:
    """One pass of the paper's inference: the predictions at the active points ``(N, ndim)``, the spline's
    increment and the composed field after it, ``(1, ndim, *spatial)``, all in working voxels; the warped
    moving image ``(1, 1, *spatial)``; wall times of the network and of the spline (s)."""

    predictions: torch.Tensor
    increment: torch.Tensor
    field: torch.Tensor
    warped: torch.Tensor
    network_seconds: float
    spline_seconds: float


def register_on_working_grid(network: CNNRegressNetwork, fixed: torch.Tensor, moving: torch.Tensor,
                             points: torch.Tensor, iterations: int, smoothing: float = 0.0,
                             progress: Optional[Progress] = None) -> list[Iteration]:
    """The paper's iterative inference (see the module docstring) for one pair ``(1, 1, *spatial)`` of
    working-grid images in [0, 1] at active points ``(N, ndim)``; one :class:`Iteration` per pass."""
    config = network.config
    cutter = cutter_for(config)
    warper = Warper(unit_grid(config), unit_grid(config)).to(fixed.device)
    spatial = tuple(fixed.shape[2:])
    fixed_prepared = cutter.prepare(fixed)
    field = torch.zeros(1, config.ndim, *spatial, device=fixed.device)
    warped = moving
    result = []
    for iteration in range(iterations):
        t0 = time.perf_counter()
        share = None if progress is None else progress.span(iteration / iterations, (iteration + 1) / iterations)
        predictions = predict_at_points(network, fixed_prepared, cutter.prepare(warped), points,
                                        None if share is None else share.span(0.0, 0.75))
        t1 = time.perf_counter()
        increment = dense_field(points, predictions, spatial, smoothing, EVALUATION_STRIDE[config.ndim],
                                None if share is None else share.span(0.75, 0.99))
        t2 = time.perf_counter()
        field = compose(field, increment, warper) if iteration else increment
        warped = warper(moving, field)
        result.append(Iteration(predictions, increment, field, warped, t1 - t0, t2 - t1))
        if progress is not None:
            progress.report((iteration + 1) / iterations,
                            f"cnnregress: iteration {iteration + 1}/{iterations}, {points.shape[0]} active points, "
                            f"mean predicted displacement {float(predictions.norm(dim=1).mean()):.2f} working voxels")
    return result
