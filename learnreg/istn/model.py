"""A trained ISTN, its fields at full resolution, and test-time refinement.

The network sees both images on the working grid (:mod:`learnreg.working`); its transformation, in the
working grid's normalised frame, is evaluated directly at the voxels of the full-resolution fixed grid
(same direction, so the axes agree) and scaled to millimetres.

Refinement (:func:`refine`) is the paper's test-specific iteration: a copy of the STN is optimised on the
pair with Adam while the ITN stays frozen, minimising ``MSE(M'_theta, F')`` (plus the training's
regulariser weight x the B-spline's bending energy). No annotations are needed. The parameters with the
lowest loss seen, the one-pass prediction included, are kept. Its scope is the whole STN (``stn``, the
paper's) or only the STN's output layer (``head``): that layer's bias alone reaches every transformation
parameter, and with the layers before it fixed their output is computed once, so a step costs a third as
much at 64³ (``refine_scope`` in :mod:`learnreg.istn.method` says which one runs by default). On large working
grids each step may measure the loss at a random subset of voxels (``refine_samples``), and the last step is kept
when it beats the one pass on the whole grid: 50 steps at 64³ took 1.8 s on every voxel and 0.8 to 0.9 s at
32768 voxels on 2 threads, for the same held-out TRE to 0.005 mm (the warp was most of a step).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from learnreg.image import Grid
from learnreg.istn.network import ISTNConfig, ISTNNetwork, ISTNOutput
from learnreg.istn.objective import WorkingWarp, half_extent, representation_loss
from learnreg.model_files import MODELS_DIR, SavedNetwork
from learnreg.progress import Progress
from learnreg.working import axis_offset

METHOD = "istn"


def shipped_weights(ndim: int, transformation: str, variant: str) -> Path:
    """Path of the shipped weights for a dimension, transformation model and variant."""
    return MODELS_DIR / f"istn_{ndim}d_{transformation}_{variant}.pt"


class ISTNModel(SavedNetwork):
    """ISTN weights plus the regulariser weight they were trained with (refinement uses it too)."""

    method = METHOD

    def __init__(self, network: ISTNNetwork, regulariser_weight: float = 0.0, card: dict | None = None) -> None:
        super().__init__(network, card)
        self.regulariser_weight = float(regulariser_weight)

    @property
    def config(self) -> ISTNConfig:
        return self.network.config

    def settings(self) -> dict:
        return {"regulariser_weight": self.regulariser_weight}

    @classmethod
    def from_payload(cls, payload: dict, card: dict | None = None) -> "ISTNModel":
        network = ISTNNetwork(ISTNConfig.from_dict(payload["network"]))
        network.load_state_dict(payload["state_dict"])
        return cls(network, payload["regulariser_weight"], card)


def full_resolution_field(network: ISTNNetwork, raw: torch.Tensor, fixed: Grid, working: Grid) -> torch.Tensor:
    """The transformation's pull field on the fixed grid, mm along its axes, ``(1, ndim, *spatial)``."""
    nd = fixed.ndim
    offset = axis_offset(fixed, working)
    half = half_extent(working)
    positions = [(torch.arange(fixed.size[a], device=raw.device, dtype=torch.float32) * fixed.spacing[a]
                  - float(offset[a])) / half - 1.0 for a in range(nd)]
    return network.transformation.field(raw, positions) * half


def affine_matrix_lps(network: ISTNNetwork, raw: torch.Tensor, fixed: Grid, working: Grid) -> np.ndarray:
    """The affine STN's map as a ``4 x 4`` matrix from fixed LPS points to moving LPS points (mm).

    With ``R`` the first ``ndim`` columns of the grid direction, ``o`` the working grid's origin and ``h``
    its half extent, the pull map ``x + h R ((A - I) p + t)`` at normalised ``p = R^T (x - o) / h - 1`` is
    ``x -> x + R (A - I) R^T (x - o) + h R ((I - A) 1 + t)``.
    """
    nd = fixed.ndim
    linear, translation = network.transformation.matrix(raw)
    offset = linear[0].detach().cpu().double().numpy() - np.eye(nd)
    t = translation[0].detach().cpu().double().numpy()
    r = fixed.direction_matrix[:, :nd]
    h = half_extent(working)
    matrix = np.eye(4)
    matrix[:3, :3] += r @ offset @ r.T
    matrix[:3, 3] = -r @ offset @ r.T @ np.asarray(working.origin) + h * r @ (-offset @ np.ones(nd) + t)
    return matrix


@dataclass
class Refinement:
    """Outcome of :func:`refine`: the kept parameters and their loss on the whole working grid, the loss per step
    (step 0: one pass; later steps: at the voxels drawn for them, when sampled) and where the kept parameters
    were found (0 means refinement never beat the one-pass prediction)."""

    raw: torch.Tensor
    kept_loss: float
    losses: list[float] = field(default_factory=list)
    best_step: int = 0


def pair_loss(network: ISTNNetwork, output: ISTNOutput, warp: WorkingWarp, regulariser_weight: float,
              raw: Optional[torch.Tensor] = None, voxels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The refinement loss of parameters ``raw`` (default: the output's own) on one pair: ``MSE(M'_theta, F')``
    (over the working grid, or at ``voxels``) plus ``regulariser_weight`` x the transformation's regulariser."""
    raw = output.raw if raw is None else raw
    return representation_loss(output, warp, raw, voxels) + regulariser_weight * network.transformation.regulariser(raw)


def refine(network: ISTNNetwork, output: ISTNOutput, warp: WorkingWarp, steps: int, learning_rate: float,
           regulariser_weight: float, progress: Optional[Progress] = None, scope: str = "stn",
           samples: int = 0) -> Refinement:
    """Optimise a copy of the STN (``scope="stn"``) or of its output layer (``"head"``) on one pair (batch of
    one) for ``steps`` Adam steps (see the module docstring).

    ``samples`` > 0, on a working grid with more voxels than that: each step measures the representation loss at
    that many voxels drawn at random, afresh every step (seeded: the same inputs give the same result), as the
    classical optimiser's sampled levels do; those estimates cannot rank steps, so the last step's parameters are
    kept when their loss over the whole grid is below the one pass's."""
    fixed_r, moving_r = output.fixed_representation.detach(), output.moving_representation.detach()
    frozen = ISTNOutput(fixed_r, moving_r, output.raw.detach())
    stn = copy.deepcopy(network.stn).train(False)
    if scope == "stn":
        parameters, predict = stn.parameters(), lambda: stn(fixed_r, moving_r)
    else:
        with torch.no_grad():
            hidden = stn.encode(fixed_r, moving_r)
        parameters, predict = stn.head.parameters(), lambda: stn.head(hidden)
    optimiser = torch.optim.Adam(parameters, lr=learning_rate, fused=True)
    voxel_count = fixed_r[0, 0].numel()
    sampler = torch.Generator(device="cpu").manual_seed(0) if 0 < samples < voxel_count else None

    def loss_of(raw: torch.Tensor, voxels: Optional[torch.Tensor] = None) -> torch.Tensor:
        return pair_loss(network, frozen, warp, regulariser_weight, raw, voxels)

    with torch.no_grad():
        first = float(loss_of(output.raw))
    result = Refinement(output.raw.detach(), first, [first], 0)
    for step in range(1, steps + 1):
        voxels = None if sampler is None else \
            torch.randint(voxel_count, (samples,), generator=sampler).to(fixed_r.device)
        with torch.enable_grad():
            raw = predict()
            loss = loss_of(raw, voxels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        value = float(loss.detach())  # the loss of the parameters before this update
        result.losses.append(value)
        if sampler is None and value < result.kept_loss:
            result.kept_loss, result.raw, result.best_step = value, raw.detach(), step
        if progress is not None:
            progress.report(step / steps, f"istn: refinement step {step}/{steps}, loss {value:.5f} "
                                          f"(one pass {first:.5f})")
    if sampler is not None and steps:
        with torch.no_grad():
            raw = predict()
            value = float(loss_of(raw))
        if value < first:
            result.kept_loss, result.raw, result.best_step = value, raw, steps
    return result
