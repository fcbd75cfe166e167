"""Training R2N2: ``learnreg train r2n2 --config FILE``.

Unsupervised, as in the paper: the loss is the mean over the sequence's steps of the image MSE (pixels
sampled outside the moving image masked out) plus ``tv_weight`` x the isotropic total variation of the
accumulated field; Adam with AMSGrad, gradient-norm clipping and multiplicative noise on the recurrent
weights (:class:`~learnreg.r2n2.network.ConvGRUCell`). Pairs come from
:func:`learnreg.training.pairs.random_pairs` over a bank of real images; validation pairs come from
separate, held-out images, and the kept weights are those with the lowest validation TRE (mean endpoint
error of the field over the fixed image's foreground, in mm).

The configuration sections are :class:`~learnreg.training.image_bank.DataSettings` ``[data]``, :class:`ModelSettings` ``[model]``,
:class:`~learnreg.training.pairs.PairSettings` ``[pairs]``, :class:`LossSettings` ``[loss]``,
:class:`~learnreg.training.trainer.TrainingSettings` ``[training]`` and
:class:`~learnreg.training.trainer.OutputSettings` ``[output]``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Optional

import torch

from learnreg.errors import InputError
from learnreg.image import Grid
from learnreg.losses.image import MSE
from learnreg.losses.regularisers import TotalVariation
from learnreg.r2n2.model import R2N2Model, run_sequence
from learnreg.r2n2.network import NetworkConfig, R2N2Network
from learnreg.training.image_bank import DataSettings
from learnreg.training.pairs import PairBatch, PairSettings, random_pairs, training_grid, validation_pairs
from learnreg.training.trainer import OutputSettings, TrainingSettings, method_trainer, train, training_card
from learnreg.warp import axis_coordinate_tensor
from learnreg.working import zscore


@dataclass(frozen=True)
class ModelSettings(NetworkConfig):
    """The ``[model]`` section: the network (the fields of :class:`~learnreg.r2n2.network.NetworkConfig`),
    the working grid's size and the number of steps per registration."""

    working_size: int = 64
    sequence_length: int = 20

    def validate(self) -> None:
        if self.ndim not in (2, 3):
            raise InputError("ndim must be 2 or 3")
        if len(self.channels) != 3:
            raise InputError("channels needs three values, one per GR2U level")
        if self.working_size % 8 or self.working_size < 16:
            raise InputError("working_size must be a multiple of 8, at least 16")

    def network_config(self) -> NetworkConfig:
        return NetworkConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(NetworkConfig)})


@dataclass
class LossSettings:
    """The ``[loss]`` section.

    Attributes:
        tv_weight: weight of the isotropic total variation (paper: 1.0).
        field_weight: weight of a supervised term the paper does not have: the mean squared difference
            between the accumulated field and the pair's known synthetic field, in the working grid's
            normalised units. 0 (the default) trains as the paper does, unsupervised; a positive weight
            speeds up short trainings (the shipped models' cards say which they used).
        step_target_weight: weight of another supervised term the paper does not have: each step's centre
            and weight are pulled towards a greedy target (:func:`greedy_step_target`), the foreground spot
            where the known field still differs most from the accumulated one and that difference. It
            teaches the position network where to look long before the image loss alone does. 0 (default):
            off.
    """

    tv_weight: float = 1.0
    field_weight: float = 0.0
    step_target_weight: float = 0.0

    def validate(self) -> None:
        if min(self.tv_weight, self.field_weight, self.step_target_weight) < 0:
            raise InputError("loss weights must be >= 0")


SECTIONS = {"data": DataSettings, "model": ModelSettings, "pairs": PairSettings, "loss": LossSettings,
            "training": TrainingSettings, "output": OutputSettings}


def greedy_step_target(residual: torch.Tensor, foreground: torch.Tensor, coordinates: torch.Tensor):
    """Where one more Gaussian helps most, for a batch: ``(centre, weight)``, each ``(B, ndim)`` in mm.

    The centre is the foreground voxel where the residual displacement ``residual`` ``(B, ndim, *spatial)``
    (known field minus the accumulated one, mm) is longest after a 5-voxel box average, and the weight is
    that averaged residual there. ``foreground`` ``(B, 1, *spatial)`` is 1 where the fixed image has
    tissue; ``coordinates`` ``(ndim, *spatial)`` the voxel positions in mm.
    """
    pool = torch.nn.functional.avg_pool2d if residual.dim() == 4 else torch.nn.functional.avg_pool3d
    averaged = pool(residual, 5, stride=1, padding=2, count_include_pad=False)
    length = averaged.norm(dim=1, keepdim=True) * foreground
    index = length.flatten(1).argmax(1)  # (B,)
    centre = coordinates.flatten(1)[:, index].T
    weight = averaged.flatten(2).gather(2, index.view(-1, 1, 1).expand(-1, residual.shape[1], 1))[..., 0]
    return centre, weight


class SequenceObjective(torch.nn.Module):
    """The loss over one unrolled sequence (see :class:`LossSettings`); ``forward(batch) -> (loss, stats)``."""

    def __init__(self, network: R2N2Network, grid: Grid, length: int, loss: LossSettings) -> None:
        super().__init__()
        self.network = network
        self.grid = grid
        self.length = length
        self.weights = loss
        self.half_extent = float(grid.extent_mm[0]) / 2
        self.largest_step = network.config.max_weight * self.half_extent  # mm
        self.mse = MSE()
        self.tv = TotalVariation()
        self.register_buffer("coordinates", axis_coordinate_tensor(grid), persistent=False)

    def forward(self, batch: PairBatch):
        fixed, moving = zscore(batch.fixed), zscore(batch.moving)
        foreground = (batch.fixed > 0.1).float() if self.weights.step_target_weight else None
        total, stats = 0.0, {}
        for step in run_sequence(self.network, fixed, moving, self.grid, self.length):
            if foreground is not None:
                before = (step.field - step.displacement).detach()
                centre, weight = greedy_step_target(batch.true_field - before, foreground, self.coordinates)
                g = step.gaussian
                stats["final_centre_miss"] = (((g.centre - centre) / self.half_extent) ** 2).sum(1).mean()
                stats["final_weight_miss"] = (((g.weight - weight) / self.largest_step) ** 2).sum(1).mean()
                total = total + self.weights.step_target_weight * (stats["final_centre_miss"]
                                                                   + stats["final_weight_miss"])
            stats["final_mse"] = self.mse(fixed, step.warped, step.inside)
            stats["final_tv"] = self.tv(step.field, self.grid.axis_spacing)
            total = total + stats["final_mse"] + self.weights.tv_weight * stats["final_tv"]
            if self.weights.field_weight:
                error = (step.field - batch.true_field) / self.half_extent
                stats["final_field_error"] = (error ** 2).sum(1).mean()
                total = total + self.weights.field_weight * stats["final_field_error"]
        return total / self.length, {k: v.detach() for k, v in stats.items()}


def foreground_endpoint_error(field: torch.Tensor, batch: PairBatch) -> torch.Tensor:
    """Mean |predicted - true| displacement (mm) over voxels where the fixed image is above 10 % intensity."""
    error = (field - batch.true_field).norm(dim=1) * batch.mm_per_unit.view(-1, *[1] * (field.dim() - 2))
    mask = (batch.fixed[:, 0] > 0.1).float()
    return (error * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)


def validation_scores(network: R2N2Network, pairs: list[PairBatch], grid: Grid, length: int) -> dict:
    """Validation TRE before/after (mean foreground endpoint error, mm), final MSE and folding fraction."""
    from learnreg.field import jacobian_determinant

    before, after, mse, folds = [], [], [], []
    for batch in pairs:
        fixed, moving = zscore(batch.fixed), zscore(batch.moving)
        *_, last = run_sequence(network, fixed, moving, grid, length)
        before.append(foreground_endpoint_error(torch.zeros_like(last.field), batch))
        after.append(foreground_endpoint_error(last.field, batch))
        mse.append(((fixed - last.warped) ** 2).flatten(1).mean(1))
        det = jacobian_determinant(last.field, grid.axis_spacing)
        folds.append((det <= 0).float().flatten(1).mean(1))
    return {"val_tre_before_mm": float(torch.cat(before).mean()), "val_tre_mm": float(torch.cat(after).mean()),
            "val_mse": float(torch.cat(mse).mean()), "val_folding_percent": 100 * float(torch.cat(folds).mean())}


def _train(data: DataSettings, model_s: ModelSettings, pair_s: PairSettings, loss_s: LossSettings,
           training: TrainingSettings, output: OutputSettings, context, device, progress, resume) -> Optional[dict]:
    size, nd = model_s.working_size, model_s.ndim
    t0 = time.perf_counter()
    train_bank, val_bank = data.build_banks(nd, size)
    bank_seconds = time.perf_counter() - t0
    grid = training_grid(nd, size)
    torch.manual_seed(training.seed)  # the same initial weights on every process
    network = R2N2Network(model_s.network_config())
    if training.initial_weights_path:  # a checkpoint being resumed replaces these
        R2N2Model.copy_into(training.initial_weights_path, network)
    objective = SequenceObjective(network, grid, model_s.sequence_length, loss_s)
    val_pairs = validation_pairs(val_bank, training.validation_pairs, grid, pair_s, training.seed, device)

    def draw_batch(rng):
        return random_pairs(train_bank, training.batch_size, grid, pair_s, rng)

    record = train(objective, draw_batch,
                   lambda: validation_scores(network, val_pairs, grid, model_s.sequence_length),
                   training, output, validation_key="val_tre_mm",
                   title=f"R2N2 {nd}D: loss and validation TRE", device=device, context=context,
                   progress=progress, resume=resume)
    if not context.is_main:
        return None
    objective.load_state_dict(record.best_state)
    model = R2N2Model(network.cpu(), size, model_s.sequence_length)
    card = {
        "title": f"R2N2 {nd}D",
        "data": data.card_entry(train_bank, val_bank, training.validation_pairs, size, pair_s),
        "model": dataclasses.asdict(model_s),
        "network_parameters": sum(p.numel() for p in network.parameters()),
        **training_card(training, loss_s, record, bank_seconds, device, context, "val_tre_mm"),
    }
    return model.save(output.weights, card, output.weights_precision)


#: ``train_r2n2(config_path, *, progress=None, resume=True, steps=None, overrides=())``: train from a configuration
#: file (see the module docstring); rank 0 returns the model card of the saved weights
train_r2n2 = method_trainer(SECTIONS, _train)
