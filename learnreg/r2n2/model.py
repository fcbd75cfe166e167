"""A trained R2N2: the network, its working grid and the recurrent registration sequence.

The network sees the images on a *working grid*: a square (2D) or cubic (3D) grid of ``working_size``
voxels per axis that covers the fixed image's field of view, with the fixed image's direction and
isotropic spacing ``largest extent / working_size``. Its outputs, normalised to that grid's [-1, 1]
coordinates, become millimetres through the grid's physical size; so the same weights serve any voxel
spacing and any field of view, and the final field is a sum of Gaussians evaluated on the full-resolution
fixed grid. Intensities are mapped to [0, 1] (percentiles, :func:`learnreg.image.normalise`), resampled to
the working grid (outside the image: 0), then z-scored and clamped to [-2, 2], as in the paper.

:func:`run_sequence` is the one recurrent loop, used by training and by the registrar alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from learnreg.image import Grid, Image
from learnreg.model_files import MODELS_DIR, load_model_file, save_model_file
from learnreg.r2n2.gaussian import gaussian_displacement
from learnreg.r2n2.network import NetworkConfig, NormalisedGaussian, R2N2Network
from learnreg.warp import Warper, axis_coordinate_tensor, resample_to_grid

METHOD = "r2n2"


def shipped_weights(ndim: int) -> Path:
    """Path of the shipped weights for 2D or 3D images."""
    return MODELS_DIR / f"r2n2_{ndim}d.pt"


def working_grid(fixed: Grid, size: int) -> Grid:
    """The square/cubic grid the network sees (see the module docstring), centred on ``fixed``."""
    nd = fixed.ndim
    full_extent = np.asarray(fixed.size[:nd]) * np.asarray(fixed.spacing[:nd])
    spacing = float(full_extent.max()) / size
    centre_axis = (np.asarray(fixed.size[:nd]) - 1) * np.asarray(fixed.spacing[:nd]) / 2
    first_axis = centre_axis - (size - 1) * spacing / 2
    origin = np.asarray(fixed.origin) + fixed.direction_matrix[:, :nd] @ first_axis
    sizes = (size,) * nd + (1,) * (3 - nd)
    spacings = (spacing,) * nd + tuple(fixed.spacing[nd:])
    return Grid(sizes, spacings, tuple(float(v) for v in origin), fixed.direction)


def axis_offset(fixed: Grid, working: Grid) -> np.ndarray:
    """Position of the working grid's first voxel in the fixed grid's axis frame (mm), ``(ndim,)``."""
    nd = fixed.ndim
    return (fixed.direction_matrix.T @ (np.asarray(working.origin) - np.asarray(fixed.origin)))[:nd]


def to_working(image: Image, working: Grid) -> torch.Tensor:
    """``image`` (intensities in [0, 1]) on the working grid as ``(1, 1, *spatial)``: low-pass filtered where the
    working grid is coarser (Gaussian, sigma 0.4 working voxels), then resampled (outside the image: 0)."""
    nd = image.ndim
    sigma_mm = 0.4 * working.spacing[0]
    sigma_kji = [sigma_mm / s if sigma_mm > s else 0.0 for s in reversed(image.grid.spacing[:nd])]
    array = np.asarray(image.spatial_array(), dtype=np.float32)
    if any(sigma_kji):
        array = gaussian_filter(array, sigma_kji)
    resampled = resample_to_grid(Image(array if nd == 3 else array[None], image.grid), working)
    return torch.from_numpy(resampled.spatial_array())[None, None]


def zscore(images: torch.Tensor) -> torch.Tensor:
    """Per-image z-score clamped to [-2, 2], for ``(B, 1, *spatial)``."""
    flat = images.flatten(1)
    mean = flat.mean(1).view(-1, *[1] * (images.dim() - 1))
    std = flat.std(1).clamp_min(1e-6).view(-1, *[1] * (images.dim() - 1))
    return ((images - mean) / std).clamp(-2.0, 2.0)


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


class R2N2Model:
    """Network weights plus what inference needs to know about how they were trained.

    Attributes:
        network: the :class:`R2N2Network`.
        working_size: voxels per axis of the working grid.
        sequence_length: steps per registration in training (the default number of steps).
        card: the model card (empty for a model not loaded from a file).
    """

    def __init__(self, network: R2N2Network, working_size: int, sequence_length: int, card: dict | None = None):
        if working_size % network.size_multiple:
            raise ValueError(f"working size must be a multiple of {network.size_multiple}")
        self.network = network
        self.working_size = int(working_size)
        self.sequence_length = int(sequence_length)
        self.card = card or {}

    @property
    def ndim(self) -> int:
        return self.network.config.ndim

    @classmethod
    def create(cls, config: NetworkConfig, working_size: int, sequence_length: int) -> "R2N2Model":
        return cls(R2N2Network(config), working_size, sequence_length)

    def payload(self) -> dict:
        """What goes into the weights file (tensors and plain values only)."""
        return {"method": METHOD, "network": self.network.config.as_dict(), "working_size": self.working_size,
                "sequence_length": self.sequence_length,
                "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()}}

    def save(self, path, card: dict) -> dict:
        """Write weights and model card; returns the card."""
        return save_model_file(path, self.payload(), {"method": METHOD, **card})

    @classmethod
    def from_payload(cls, payload: dict, card: dict | None = None) -> "R2N2Model":
        network = R2N2Network(NetworkConfig.from_dict(payload["network"]))
        network.load_state_dict(payload["state_dict"])
        return cls(network, payload["working_size"], payload["sequence_length"], card)

    @classmethod
    def load(cls, path) -> "R2N2Model":
        """Load checked weights (see :func:`learnreg.model_files.load_model_file`)."""
        payload, card = load_model_file(path, METHOD)
        return cls.from_payload(payload, card)
