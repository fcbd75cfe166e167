"""The R2N2 network (Sandkühler et al., NeurIPS 2019) for 2D and 3D images.

One call of :class:`R2N2Network` is one step of the recurrent registration: it looks at the fixed image
and the moving image warped by the field so far, updates its recurrent state and returns the parameters of
the next Gaussian in *normalised* units of the square (cubic) working grid, whose coordinates run from
-1 to 1 along every axis:

- ``position`` ``(B, ndim)`` in [-1, 1] (order ``(i, j[, k])``),
- ``widths`` ``(B, ndim)``: ``min_width + sigmoid * (max_width - min_width)`` (paper: 1e-5 and 0.25),
- ``weight`` ``(B, ndim)``: ``tanh * max_weight`` (paper: ``max_weight`` 1),
- ``angles`` ``(B, 1)`` in 2D: ``sigmoid * pi``; ``(B, 3)`` in 3D: ``sigmoid * pi`` each (``Rz Ry Rx``).

:mod:`learnreg.r2n2.model` turns these into millimetres. The layers follow the paper and its official code:
CoordConv input, a 7x7 stride-2 stem, three gated recurrent registration units (GR2U: residual units,
convolutional GRU, skip, stride-2 convolution), a position network per level (two 1x1 convolutions with
spatial softmaxes; certainty = 2 - L1 distance between them; certainty-weighted mean over the levels) and
a parameter network (attention pooling, FC(1024), a zero-initialised FC head). In training the recurrent
weights carry multiplicative Gaussian noise, the paper's regularisation of the recurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from learnreg.layers import ConvNormAct, conv, instance_norm
from learnreg.model_files import StoredConfig


def _unit_coordinates(shape, device, dtype) -> torch.Tensor:
    """``(ndim, *shape)`` coordinates in [-1, 1], component order ``(i, j[, k])`` (reversed spatial axes)."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(list(reversed(mesh)), dim=0)


class ResidualUnit(nn.Module):
    """``x + IN(conv3(LeakyReLU(IN(conv3(x)))))`` followed by LeakyReLU."""

    def __init__(self, ndim: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(ndim, channels, channels, 3), conv(ndim)(channels, channels, 3, 1, 1),
                                  instance_norm(ndim, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.1)


class ConvGRUCell(nn.Module):
    """Convolutional GRU; in training its recurrent weights are multiplied by ``1 + noise * N(0, 1)``.

    The noise is drawn once per sequence (:meth:`draw_noise`), so one registration sees one perturbed
    recurrence, as in the paper.
    """

    def __init__(self, ndim: int, channels: int, recurrent_noise: float) -> None:
        super().__init__()
        convolution = conv(ndim)
        self.ndim = ndim
        self.input_gates = convolution(channels, 3 * channels, 3, 1, 1)
        self.hidden_gates = convolution(channels, 3 * channels, 3, 1, 1, bias=False)
        self.recurrent_noise = recurrent_noise
        self._noisy_weight: Optional[torch.Tensor] = None

    def draw_noise(self) -> None:
        """Start a sequence: draw the recurrent-weight noise (training) or clear it (evaluation)."""
        weight = self.hidden_gates.weight
        if self.training and self.recurrent_noise > 0:
            self._noisy_weight = weight * (1 + self.recurrent_noise * torch.randn_like(weight))
        else:
            self._noisy_weight = None

    def forward(self, x: torch.Tensor, hidden: Optional[torch.Tensor]) -> torch.Tensor:
        if hidden is None:
            hidden = torch.zeros_like(x)
        weight = self.hidden_gates.weight if self._noisy_weight is None else self._noisy_weight
        functional_conv = F.conv2d if self.ndim == 2 else F.conv3d
        xr, xz, xn = self.input_gates(x).chunk(3, dim=1)
        hr, hz, hn = functional_conv(hidden, weight, padding=1).chunk(3, dim=1)
        reset = torch.sigmoid(xr + hr)
        update = torch.sigmoid(xz + hz)
        candidate = torch.tanh(xn + reset * hn)
        return (1 - update) * hidden + update * candidate


class GR2U(nn.Module):
    """Gated recurrent registration unit: residual units, ConvGRU, skip (GRU output + unit input), then a
    stride-2 convolution to the next level's channels (none after the last level). Returns
    ``(level features, input of the next level, state)``."""

    def __init__(self, ndim: int, c_in: int, c_out: Optional[int], residual_units: int,
                 recurrent_noise: float) -> None:
        super().__init__()
        self.residual = nn.Sequential(*[ResidualUnit(ndim, c_in) for _ in range(residual_units)])
        self.gru = ConvGRUCell(ndim, c_in, recurrent_noise)
        self.down = ConvNormAct(ndim, c_in, c_out, 3, stride=2) if c_out else None

    def forward(self, x: torch.Tensor, hidden: Optional[torch.Tensor]):
        state = self.gru(self.residual(x), hidden)
        features = state + x
        return features, (self.down(features) if self.down is not None else None), state


def _spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over all spatial positions of a ``(B, C, *spatial)`` tensor."""
    shape = logits.shape
    return torch.softmax(logits.flatten(2), dim=-1).reshape(shape)


class PositionNetwork(nn.Module):
    """Two 1x1 convolutions, each followed by a spatial softmax. Position = expected coordinate under the
    mean of the two distributions, in [-1, 1]; certainty = 2 - L1 distance between them, in [0, 2]."""

    def __init__(self, ndim: int, channels: int) -> None:
        super().__init__()
        self.first = conv(ndim)(channels, 1, 1)
        self.second = conv(ndim)(channels, 1, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = _spatial_softmax(self.first(features))
        q = _spatial_softmax(self.second(features))
        coords = _unit_coordinates(features.shape[2:], features.device, features.dtype)  # (ndim, *spatial)
        mean = 0.5 * (p + q)
        position = (mean * coords.unsqueeze(0)).flatten(2).sum(-1)  # (B, ndim)
        certainty = 2.0 - (p - q).abs().flatten(1).sum(-1, keepdim=True)  # (B, 1)
        return position, certainty


class ParameterNetwork(nn.Module):
    """3x3 convolution; half of its channels, softmaxed over space, pool the other half (attention
    pooling); FC(hidden) and a zero-initialised FC head to the Gaussian's shape parameters."""

    def __init__(self, ndim: int, channels: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.conv = conv(ndim)(channels, 2 * channels, 3, 1, 1)
        self.fc = nn.Linear(channels, hidden)
        self.head = nn.Linear(hidden, outputs)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        attention, values = self.conv(features).chunk(2, dim=1)
        pooled = (_spatial_softmax(attention) * values).flatten(2).sum(-1)
        return self.head(F.leaky_relu(self.fc(pooled), 0.1))


@dataclass(frozen=True)
class NetworkConfig(StoredConfig):
    """The architecture, stored with the weights.

    Attributes:
        ndim: 2 or 3.
        channels: channels of the three GR2U levels (paper: 32, 64, 128).
        residual_units: residual units per GR2U (paper: 3 to 6).
        fc_hidden: width of the parameter network's hidden layer (paper: 1024).
        recurrent_noise: standard deviation of the multiplicative noise on recurrent weights in training.
        max_width: largest Gaussian width in normalised units (paper: 0.25, an eighth of the field of view).
        max_weight: largest displacement of one step in normalised units (paper: 1, half the field of view).
        min_width: smallest Gaussian width (paper: 1e-5); a floor of a voxel or so keeps a step from vanishing
            by shrinking below the grid, a do-nothing solution short trainings fall into.
    """

    ndim: int = 2
    channels: tuple[int, int, int] = (32, 64, 128)
    residual_units: int = 3
    fc_hidden: int = 1024
    recurrent_noise: float = 0.05
    max_width: float = 0.25
    max_weight: float = 1.0
    min_width: float = 1e-5


@dataclass
class NormalisedGaussian:
    """One step's Gaussian in the working grid's normalised units (see the module docstring)."""

    position: torch.Tensor
    widths: torch.Tensor
    weight: torch.Tensor
    angles: torch.Tensor


class R2N2Network(nn.Module):
    """The recurrent network; call :meth:`start` before a sequence, then :meth:`forward` once per step."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        if config.ndim not in (2, 3):
            raise ValueError("R2N2 works on 2D or 3D images")
        self.config = config
        nd = config.ndim
        c = config.channels
        self.stem = ConvNormAct(nd, 2 + nd, c[0], 7, stride=2)
        nexts = (c[1], c[2], None)
        self.units = nn.ModuleList(
            GR2U(nd, c[n], nexts[n], config.residual_units, config.recurrent_noise) for n in range(3))
        self.positions = nn.ModuleList(PositionNetwork(nd, c[n]) for n in range(3))
        self.angle_count = 1 if nd == 2 else 3
        self.parameters_net = ParameterNetwork(nd, c[2], config.fc_hidden, 2 * nd + self.angle_count)

    @property
    def size_multiple(self) -> int:
        """Working-grid sizes must be multiples of this (the stem and two stride-2 convolutions)."""
        return 8

    def start(self) -> list[Optional[torch.Tensor]]:
        """A fresh recurrent state; draws the recurrent-weight noise for this sequence in training."""
        for unit in self.units:
            unit.gru.draw_noise()
        return [None, None, None]

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor, state: list):
        """One step: ``(NormalisedGaussian, new state)`` for images ``(B, 1, *spatial)``."""
        nd = self.config.ndim
        coords = _unit_coordinates(fixed.shape[2:], fixed.device, fixed.dtype)
        x = torch.cat([fixed, warped, coords.unsqueeze(0).expand(fixed.shape[0], *coords.shape)], dim=1)
        x = self.stem(x)
        new_state, weighted, certainties = [], 0.0, 0.0
        features = x
        for unit, position_net, hidden in zip(self.units, self.positions, state):
            features, x, hidden = unit(x, hidden)
            new_state.append(hidden)
            position, certainty = position_net(features)
            weighted = weighted + certainty * position
            certainties = certainties + certainty
        position = weighted / certainties.clamp_min(1e-6)
        raw = self.parameters_net(features)
        low, high = self.config.min_width, self.config.max_width
        widths = low + torch.sigmoid(raw[:, :nd]) * (high - low)
        weight = torch.tanh(raw[:, nd:2 * nd]) * self.config.max_weight
        angles = torch.sigmoid(raw[:, 2 * nd:]) * math.pi
        return NormalisedGaussian(position, widths, weight, angles), new_state
