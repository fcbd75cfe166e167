"""Training CNNRegress: ``learnreg train cnnregress --config FILE``.

Training targets are the generator's known fields: each pair from
:func:`learnreg.training.pairs.random_pairs` is a real image and its synthetic deformation (with independent
intensity augmentation), so the pull displacement at every fixed voxel is exact, where a registration's
field would add that registration's own errors. Per iteration, ``[training] batch_size`` pairs each give
``points_per_pair`` patch pairs on average, at points drawn (over the whole batch) by the equalised active-point sampling
(:func:`~learnreg.cnnregress.sampling.equalised_probabilities`); the loss is the mean squared error of the
predicted displacements, in units of ``tau``.

Validation runs the whole inference (active points at the registrar's default density, thin-plate spline,
two iterations) on fixed held-out pairs and scores the dense field's mean end-point error over the fixed
image's foreground; the weights kept are those with the lowest. Then the thin-plate spline's smoothing is
chosen on the same pairs (:func:`choose_smoothing`) and stored with the weights. The model card records the
distribution of the training displacements with plain active-point sampling and with the equalised
sampling (``sampling.png``).

Sections: :class:`~learnreg.training.image_bank.DataSettings` ``[data]``,
:class:`~learnreg.cnnregress.network.CNNRegressConfig` ``[model]``,
:class:`~learnreg.training.pairs.PairSettings` ``[pairs]``, :class:`SamplingSettings` ``[sampling]``,
:class:`~learnreg.training.trainer.TrainingSettings` ``[training]`` and
:class:`~learnreg.training.trainer.OutputSettings` ``[output]``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from learnreg.cnnregress.model import CNNRegressModel, cutter_for, register_on_working_grid
from learnreg.cnnregress.network import CNNRegressConfig, CNNRegressNetwork
from learnreg.cnnregress.sampling import active_points, equalised_probabilities, flat_index, importance, \
    point_count, sample_points
from learnreg.errors import InputError
from learnreg.training.image_bank import DataSettings, ImageBank
from learnreg.training.pairs import PairBatch, PairSettings, random_pairs, training_grid, validation_pairs
from learnreg.training.trainer import OutputSettings, TrainingSettings, method_trainer, train, training_card

#: foreground of a validation pair: fixed intensities above this (images in [0, 1])
FOREGROUND = 0.1


@dataclass
class SamplingSettings:
    """The ``[sampling]`` section: how the loss's patch pairs are drawn.

    Attributes:
        points_per_pair: patch pairs per image pair and iteration, on average (drawn over the whole batch).
        equalise: equalised active-point sampling (the paper's); ``false``: in proportion to the fixed
            image's gradient magnitude only.
        bins: displacement-magnitude bins on ``(0, tau]`` that the equalised sampling fills equally.
        validation_density: active points of the validation registrations, fraction of the working voxels.
    """

    points_per_pair: int = 64
    equalise: bool = True
    bins: int = 16
    validation_density: float = 0.009

    def validate(self) -> None:
        if self.points_per_pair < 1 or self.bins < 1:
            raise InputError("points_per_pair and bins must be at least 1")
        if not 0 < self.validation_density <= 1:
            raise InputError("validation_density must be in (0, 1]")


SECTIONS = {"data": DataSettings, "model": CNNRegressConfig, "pairs": PairSettings, "sampling": SamplingSettings,
            "training": TrainingSettings, "output": OutputSettings}


@dataclass
class PatchBatch:
    """Fixed patches, moving patches and the true displacements of their centres ``(B, ndim)``, working voxels."""

    fixed: torch.Tensor
    moving: torch.Tensor
    targets: torch.Tensor

    def to(self, device) -> "PatchBatch":
        """The same batch on ``device``."""
        return PatchBatch(self.fixed.to(device), self.moving.to(device), self.targets.to(device))


def sampling_probabilities(pairs: PairBatch, tau: float, settings: SamplingSettings) -> torch.Tensor:
    """Where the loss's points are drawn from, ``(B, *spatial)``: equalised or importance only."""
    if settings.equalise:
        return equalised_probabilities(pairs.fixed, pairs.true_field.norm(dim=1), tau, settings.bins)
    weights = importance(pairs.fixed)
    return weights / weights.sum()


def gather_vectors(field: torch.Tensor, images: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The vectors of ``field`` ``(B, ndim, *spatial)`` of image ``images[n]`` at voxel ``positions[n]`` (axis
    order): ``(N, ndim)``."""
    return field.flatten(2)[images, :, flat_index(positions, tuple(field.shape[2:]))]


def patch_batch(pairs: PairBatch, config: CNNRegressConfig, settings: SamplingSettings,
                generator: torch.Generator) -> PatchBatch:
    """The loss's patch pairs from a batch of image pairs (see the module docstring)."""
    count = settings.points_per_pair * pairs.fixed.shape[0]
    images, positions = sample_points(sampling_probabilities(pairs, config.max_displacement, settings), count,
                                      generator)
    cutter = cutter_for(config)
    fixed, moving = cutter.pairs(cutter.prepare(pairs.fixed), cutter.prepare(pairs.moving), images, positions)
    return PatchBatch(fixed, moving, gather_vectors(pairs.true_field, images, positions))


class RegressionObjective(nn.Module):
    """Mean squared error of the predicted centre displacements, in units of ``tau``."""

    def __init__(self, network: CNNRegressNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, batch: PatchBatch):
        tau = self.network.config.max_displacement
        predicted = self.network(batch.fixed, batch.moving)
        loss = ((predicted - batch.targets) / tau).pow(2).sum(1).mean()
        error = (predicted - batch.targets).detach().norm(dim=1).mean()
        return loss, {"point_error": error}


#: thin-plate-spline smoothing values tried on the validation pairs after training
SMOOTHING_CANDIDATES = (0.0, 0.01, 0.03, 0.1)


def validation_scores(network: CNNRegressNetwork, pairs: list[PairBatch], density: float,
                      smoothing: float = 0.0) -> dict:
    """Mean end-point errors (working voxels) over the fixed foreground: before registration, after one and
    after two iterations, and at the active points of the first iteration."""
    before, one, two, at_points = [], [], [], []
    for batch in pairs:
        count, _ = point_count(density, batch.fixed[0, 0].numel())
        points = active_points(batch.fixed, count)
        passes = register_on_working_grid(network, batch.fixed, batch.moving, points, 2, smoothing)
        mask = (batch.fixed[0, 0] > FOREGROUND).float()
        truth = batch.true_field

        def error(field: torch.Tensor) -> float:
            return float(((field - truth)[0].norm(dim=0) * mask).sum() / mask.sum().clamp_min(1))

        before.append(error(torch.zeros_like(truth)))
        one.append(error(passes[0].field))
        two.append(error(passes[1].field))
        at_points.append(float((passes[0].predictions - gather_vectors(truth, torch.zeros_like(points[:, 0]), points)).norm(dim=1).mean()))
    return {"val_error_before": float(np.mean(before)), "val_error_one_iteration": float(np.mean(one)),
            "val_field_error": float(np.mean(two)), "val_point_error": float(np.mean(at_points))}


def choose_smoothing(network: CNNRegressNetwork, pairs: list[PairBatch], density: float) -> tuple[float, dict]:
    """The thin-plate-spline smoothing of :data:`SMOOTHING_CANDIDATES` with the lowest validation field error
    (two iterations), and its model-card entry with the error of each: the network's predictions are noisy,
    and an exact spline passes that noise on to the field."""
    with torch.no_grad():
        errors = {value: validation_scores(network.eval(), pairs, density, value)["val_field_error"]
                  for value in SMOOTHING_CANDIDATES}
    chosen = min(errors, key=errors.get)
    return chosen, {"chosen": chosen,
                    "validation_field_error_by_smoothing": {str(k): round(v, 5) for k, v in errors.items()}}


def validation_setup(data: DataSettings, config: CNNRegressConfig, pair_s: PairSettings,
                     training: TrainingSettings, device) -> tuple[ImageBank, ImageBank, list[PairBatch]]:
    """The training and validation banks and the fixed validation pairs of a configuration."""
    train_bank, val_bank = data.build_banks(config.ndim, config.working_size)
    grid = training_grid(config.ndim, config.working_size)
    return train_bank, val_bank, validation_pairs(val_bank, training.validation_pairs, grid, pair_s, training.seed,
                                                  device)


def displacement_histograms(bank: ImageBank, config: CNNRegressConfig, pair_s: PairSettings,
                            settings: SamplingSettings, draws: int = 8) -> dict:
    """Histograms of the training displacement lengths (working voxels, bins on ``[0, 2 tau]``) with plain
    active-point sampling and with the equalised sampling, from ``draws`` batches of pairs."""
    grid = training_grid(config.ndim, config.working_size)
    edges = np.linspace(0, 2 * config.max_displacement, 33)
    counts = {"active points": np.zeros(32), "equalised": np.zeros(32)}
    rng = np.random.default_rng(12345)
    generator = torch.Generator().manual_seed(12345)
    for _ in range(draws):
        pairs = random_pairs(bank, 4, grid, pair_s, rng)
        for name, equalise in (("active points", False), ("equalised", True)):
            probabilities = sampling_probabilities(pairs, config.max_displacement,
                                                   dataclasses.replace(settings, equalise=equalise))
            images, positions = sample_points(probabilities, 1024, generator)
            lengths = gather_vectors(pairs.true_field, images, positions).norm(dim=-1).numpy()
            counts[name] += np.histogram(lengths, edges)[0]
    return {"edges": edges.round(4).tolist(), **{k: v.astype(int).tolist() for k, v in counts.items()}}


def plot_histograms(histograms: dict, tau: float, path: Path) -> None:
    """The two displacement-length distributions as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(histograms["edges"])
    centres, width = (edges[1:] + edges[:-1]) / 2, edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    for name, colour in (("active points", "0.6"), ("equalised", "tab:blue")):
        counts = np.asarray(histograms[name], dtype=float)
        ax.bar(centres, counts / counts.sum() / width, width=width, alpha=0.6, color=colour,
               label=f"{name} sampling")
    ax.axvline(tau, color="tab:red", lw=1, ls="--", label=f"cut-off tau = {tau:g}")
    ax.set_xlabel("training displacement length (working voxels)")
    ax.set_ylabel("density")
    ax.set_title("Training displacements: active-point vs equalised sampling", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _train(data: DataSettings, config: CNNRegressConfig, pair_s: PairSettings, sampling: SamplingSettings,
           training: TrainingSettings, output: OutputSettings, context, device, progress, resume) -> Optional[dict]:
    size, nd = config.working_size, config.ndim
    t0 = time.perf_counter()
    train_bank, val_bank, val_pairs = validation_setup(data, config, pair_s, training, device)
    bank_seconds = time.perf_counter() - t0
    grid = training_grid(nd, size)
    torch.manual_seed(training.seed)  # the same initial weights on every process
    network = CNNRegressNetwork(config)
    if training.initial_weights_path:  # a checkpoint being resumed replaces these
        CNNRegressModel.copy_into(training.initial_weights_path, network)
    objective = RegressionObjective(network)

    def draw_batch(rng):
        pairs = random_pairs(train_bank, training.batch_size, grid, pair_s, rng)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return patch_batch(pairs, config, sampling, generator)

    record = train(objective, draw_batch, lambda: validation_scores(network, val_pairs, sampling.validation_density),
                   training, output, validation_key="val_field_error",
                   title=f"CNNRegress {nd}D: loss and validation field error (working voxels)",
                   device=device, context=context, progress=progress, resume=resume)
    if not context.is_main:
        return None
    objective.load_state_dict(record.best_state)
    histograms = displacement_histograms(train_bank, config, pair_s, sampling)
    plot_histograms(histograms, config.max_displacement, Path(output.folder) / "sampling.png")
    smoothing, smoothing_entry = choose_smoothing(network, val_pairs, sampling.validation_density)
    model = CNNRegressModel(network.cpu(), smoothing)
    card = {
        "title": f"CNNRegress {nd}D",
        "data": {**data.card_entry(train_bank, val_bank, training.validation_pairs, size, pair_s),
                 "targets": "the generator's known fields (exact), working voxels"},
        "model": config.as_dict(),
        "network_parameters": sum(p.numel() for p in network.parameters()),
        "sampling_histograms": histograms,
        "tps_smoothing": smoothing_entry,
        **training_card(training, sampling, record, bank_seconds, device, context, "val_field_error"),
    }
    return model.save(output.weights, card, output.weights_precision)


#: ``train_cnnregress(config_path, *, progress=None, resume=True, steps=None, overrides=())``: train from a
#: configuration file (see the module docstring); rank 0 returns the model card of the saved weights
train_cnnregress = method_trainer(SECTIONS, _train)
