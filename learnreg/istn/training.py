"""Training an ISTN: ``learnreg train istn --config FILE``.

The variant's loss (:mod:`learnreg.istn.objective`) on pairs from :func:`learnreg.training.pairs.random_pairs`
over a bank of real images with their label maps: each pair is an image and its synthetic deformation
(random affine part and smooth field), with independent intensity augmentation, and the structure maps of
both. Validation pairs come from held-out images; the weights kept are those with the best validation
Dice of the warped structures after one pass.

Sections: :class:`~learnreg.training.image_bank.StructureDataSettings` ``[data]``, :class:`~learnreg.istn.network.ISTNConfig`
``[model]``, :class:`~learnreg.training.pairs.PairSettings` ``[pairs]``, :class:`LossSettings` ``[loss]``,
:class:`~learnreg.training.trainer.TrainingSettings` ``[training]`` and
:class:`~learnreg.training.trainer.OutputSettings` ``[output]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from learnreg.errors import InputError
from learnreg.field import jacobian_determinant
from learnreg.istn.model import ISTNModel
from learnreg.istn.network import ISTNConfig, ISTNNetwork
from learnreg.istn.objective import ISTNObjective, WorkingWarp
from learnreg.losses.label import hard_dice
from learnreg.training.image_bank import StructureDataSettings
from learnreg.training.pairs import PairBatch, PairSettings, random_pairs, training_grid, validation_pairs
from learnreg.training.trainer import OutputSettings, TrainingSettings, method_trainer, train, training_card
from learnreg.working import zscore


@dataclass
class LossSettings:
    """The ``[loss]`` section: ``regulariser_weight`` x the transformation's regulariser (the B-spline's
    bending energy in normalised units; the affine model has none)."""

    regulariser_weight: float = 0.1

    def validate(self) -> None:
        if self.regulariser_weight < 0:
            raise InputError("regulariser_weight must be >= 0")


SECTIONS = {"data": StructureDataSettings, "model": ISTNConfig, "pairs": PairSettings, "loss": LossSettings,
            "training": TrainingSettings, "output": OutputSettings}


def validation_scores(network: ISTNNetwork, pairs: list[PairBatch], warp: WorkingWarp) -> dict:
    """Mean structure Dice before and after one pass, ``val_dice_loss`` (1 - Dice after) and folding (%)."""
    before, after, folds = [], [], []
    for batch in pairs:
        output = network(zscore(batch.fixed), zscore(batch.moving))
        warped = warp(batch.moving_structures, output.raw)
        before.append(hard_dice(batch.fixed_structures, batch.moving_structures).mean(1))
        after.append(hard_dice(batch.fixed_structures, warped).mean(1))
        det = jacobian_determinant(warp.field(output.raw), warp.warper.fixed_grid.axis_spacing)
        folds.append((det <= 0).float().flatten(1).mean(1))
    dice = float(torch.cat(after).mean())
    return {"val_dice_before": float(torch.cat(before).mean()), "val_dice": dice, "val_dice_loss": 1.0 - dice,
            "val_folding_percent": 100 * float(torch.cat(folds).mean())}


def _train(data: StructureDataSettings, config: ISTNConfig, pair_s: PairSettings, loss_s: LossSettings,
           training: TrainingSettings, output: OutputSettings, context, device, progress, resume) -> Optional[dict]:
    size, nd = config.working_size, config.ndim
    if len(data.structure_labels) != config.structures:
        raise InputError(f"[model] structures = {config.structures} but [data] structure_labels lists "
                         f"{len(data.structure_labels)} structures; make them agree")
    t0 = time.perf_counter()
    train_bank, val_bank = data.build_banks(nd, size)
    bank_seconds = time.perf_counter() - t0
    grid = training_grid(nd, size)
    torch.manual_seed(training.seed)  # the same initial weights on every process
    network = ISTNNetwork(config)
    if training.initial_weights_path:  # a checkpoint being resumed replaces these
        ISTNModel.copy_into(training.initial_weights_path, network)
    objective = ISTNObjective(network, grid, loss_s.regulariser_weight)
    val_pairs = validation_pairs(val_bank, training.validation_pairs, grid, pair_s, training.seed, device)

    def draw_batch(rng):
        return random_pairs(train_bank, training.batch_size, grid, pair_s, rng)

    record = train(objective, draw_batch, lambda: validation_scores(network, val_pairs, objective.warp),
                   training, output, validation_key="val_dice_loss",
                   title=f"ISTN {nd}D {config.transformation} {config.variant}: loss and validation 1 - Dice",
                   device=device, context=context, progress=progress, resume=resume)
    if not context.is_main:
        return None
    objective.load_state_dict(record.best_state)
    model = ISTNModel(network.cpu(), loss_s.regulariser_weight)
    card = {
        "title": f"ISTN {nd}D, {config.transformation}, {config.variant}",
        "data": data.card_entry(train_bank, val_bank, training.validation_pairs, size, pair_s),
        "model": config.as_dict(),
        "network_parameters": sum(p.numel() for p in network.parameters()),
        **training_card(training, loss_s, record, bank_seconds, device, context, "val_dice_loss"),
    }
    return model.save(output.weights, card, output.weights_precision)


#: ``train_istn(config_path, *, progress=None, resume=True, steps=None, overrides=())``: train from a configuration
#: file (see the module docstring); rank 0 returns the model card of the saved weights
train_istn = method_trainer(SECTIONS, _train)
