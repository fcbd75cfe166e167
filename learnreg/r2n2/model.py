"""A trained R2N2: the network, its working grid and the recurrent registration sequence.

The network sees the images on a working grid (:mod:`learnreg.working`) of ``working_size`` voxels per
axis; its outputs, normalised to that grid's [-1, 1] coordinates, become millimetres through the grid's
physical size, and the final field is a sum of Gaussians evaluated on the full-resolution fixed grid.

:func:`run_sequence` is the one recurrent loop, used by training and by the registrar alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from learnreg.image import Grid
from learnreg.model_files import MODELS_DIR, SavedNetwork
from learnreg.r2n2.gaussian import gaussian_displacement
from learnreg.r2n2.network import NetworkConfig, NormalisedGaussian, R2N2Network
from learnreg.warp import Warper, axis_coordinate_tensor

METHOD = "r2n2"


def shipped_weights(ndim: int) -> Path:
    """Path of the shipped weights for 2D or 3D images."""
    return MODELS_DIR / f"r2n2_{ndim}d.pt"


@dataclass
class GaussianMM:
    """One step's Gaussian in millimetres in the working grid's axis frame (``(B, ...)`` tensors)."""

    centre: torch.Tensor
    widths: torch.Tensor
    angles: torch.Tensor
    weight: torch.Tensor


def to_millimetres(gaussian: NormalisedGaussian, working: Grid) -> GaussianMM:
    """Normalised network outputs -> millimetres on ``working`` (its coordinates -1..1 span ``(N-1) h``)."""
    half = (working.size[0] - 1) * working.spacing[0] / 2
    return GaussianMM((gaussian.position + 1) * half, gaussian.widths * half, gaussian.angles,
                      gaussian.weight * half)


@dataclass
class SequenceStep:
    """State after one step of :func:`run_sequence` (tensors on the working grid)."""

    index: int
    gaussian: GaussianMM
    displacement: torch.Tensor  # (B, ndim, *spatial) mm, this step's Gaussian
    field: torch.Tensor  # (B, ndim, *spatial) mm, accumulated pull field
    warped: torch.Tensor  # (B, 1, *spatial) moving warped by ``field``
    inside: torch.Tensor  # (B, 1, *spatial) 1 where the warp sampled inside the moving image


def run_sequence(network: R2N2Network, fixed: torch.Tensor, moving: torch.Tensor, working: Grid,
                 length: int) -> Iterator[SequenceStep]:
    """The recurrent registration: up to ``length`` steps, each adding one Gaussian to the field.

    ``fixed`` and ``moving`` are ``(B, 1, *spatial)`` z-scored images on ``working``; the consumer may stop
    iterating at any step. Gradients flow through the whole sequence when enabled (training).
    """
    warper = Warper(working, working).to(fixed.device)
    coordinates = axis_coordinate_tensor(working, device=fixed.device)
    field = torch.zeros(fixed.shape[0], working.ndim, *fixed.shape[2:], device=fixed.device, dtype=fixed.dtype)
    warped = moving
    state = network.start()
    for index in range(length):
        normalised, state = network(fixed, warped, state)
        gaussian = to_millimetres(normalised, working)
        displacement = gaussian_displacement(coordinates, gaussian.centre, gaussian.widths, gaussian.angles,
                                             gaussian.weight)
        field = field + displacement
        warped, inside = warper(moving, field, return_mask=True)
        yield SequenceStep(index, gaussian, displacement, field, warped, inside)


class R2N2Model(SavedNetwork):
    """Network weights plus what inference needs to know about how they were trained.

    Attributes:
        network: the :class:`R2N2Network`.
        working_size: voxels per axis of the working grid.
        sequence_length: steps per registration in training (the default number of steps).
        card: the model card (empty for a model not loaded from a file).
    """

    method = METHOD

    def __init__(self, network: R2N2Network, working_size: int, sequence_length: int, card: dict | None = None):
        if working_size % network.size_multiple:
            raise ValueError(f"working size must be a multiple of {network.size_multiple}")
        super().__init__(network, card)
        self.working_size = int(working_size)
        self.sequence_length = int(sequence_length)

    @classmethod
    def create(cls, config: NetworkConfig, working_size: int, sequence_length: int) -> "R2N2Model":
        return cls(R2N2Network(config), working_size, sequence_length)

    def settings(self) -> dict:
        return {"working_size": self.working_size, "sequence_length": self.sequence_length}

    @classmethod
    def from_payload(cls, payload: dict, card: dict | None = None) -> "R2N2Model":
        network = R2N2Network(NetworkConfig.from_dict(payload["network"]))
        network.load_state_dict(payload["state_dict"])
        return cls(network, payload["working_size"], payload["sequence_length"], card)
