"""Training ``ddfnet``: ``learnreg train ddfnet --config FILE``, in DeepReg's three modes.

- ``unsupervised``: image loss between the fixed image and the warped moving image, plus
  ``regulariser_weight`` x the deformation loss;
- ``weak`` (weakly supervised): label loss (soft Dice) between the fixed label and the warped moving label,
  plus the deformation loss; when an image has several structures, one is sampled per pair and iteration
  (:func:`sample_one_structure`), as DeepReg does;
- ``combined``: both.

Pairs (``[pairs] pairing``): ``synthetic`` (paired, intra-subject: an image and its own synthetic deformation,
as :func:`learnreg.training.pairs.random_pairs`, e.g. a chest CT and its simulated breathing) or ``unpaired``
(inter-subject: two different images of the bank paired at random, :func:`learnreg.training.pairs.
unpaired_pairs`). The bank's images carry label maps (the structures of interest), used by the label loss
and by validation; the weights kept are those with the best validation score (``val_dice_loss``, 1 - Dice of
the warped structures; the unsupervised mode selects on ``val_image_loss`` and never reads labels).

Every loss is the shared library's (:mod:`learnreg.losses`), as for classical registration. The training
grid has 1-unit voxels, so fields are in working voxels, the network's output convention.

Sections: :class:`~learnreg.training.image_bank.StructureDataSettings` ``[data]``,
:class:`~learnreg.ddfnet.network.DDFNetConfig` ``[model]``, :class:`DDFNetPairSettings` ``[pairs]``,
:class:`LossSettings` ``[loss]``, :class:`~learnreg.training.trainer.TrainingSettings` ``[training]`` and
:class:`~learnreg.training.trainer.OutputSettings` ``[output]``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from learnreg.ddfnet.model import DDFNetModel
from learnreg.ddfnet.network import DDFNet, DDFNetConfig
from learnreg.errors import InputError
from learnreg.field import jacobian_determinant
from learnreg.image import Grid
from learnreg.losses import SoftDice, image_loss, regulariser
from learnreg.losses.label import hard_dice
from learnreg.options import IMAGE_LOSS_NAMES, REGULARISER_NAMES
from learnreg.training.image_bank import StructureDataSettings
from learnreg.training.pairs import PairBatch, PairSettings, random_pairs, training_grid, unpaired_pairs, \
    validation_pairs
from learnreg.training.trainer import OutputSettings, TrainingSettings, method_trainer, train, training_card
from learnreg.warp import Warper
from learnreg.working import zscore

#: DeepReg's training modes
MODES = ("unsupervised", "weak", "combined")
#: how training pairs are made
PAIRINGS = ("synthetic", "unpaired")


@dataclass
class DDFNetPairSettings(PairSettings):
    """The ``[pairs]`` section: :class:`~learnreg.training.pairs.PairSettings` plus ``pairing``
    (``synthetic``: an image and its synthetic deformation; ``unpaired``: two different images)."""

    pairing: str = "synthetic"

    def validate(self) -> None:
        super().validate()
        if self.pairing not in PAIRINGS:
            raise InputError(f"pairing={self.pairing!r} must be one of {', '.join(PAIRINGS)}")


@dataclass
class LossSettings:
    """The ``[loss]`` section.

    Attributes:
        mode: ``unsupervised``, ``weak`` or ``combined``.
        image_loss: ``lncc``, ``ncc`` or ``mse`` (on z-scored images); ``window_voxels`` for ``lncc``.
        image_weight, label_weight: weights of the image loss and of the label loss (1 - soft Dice).
        regulariser: the deformation loss, ``bending``, ``diffusion`` or ``tv``, on the displacement field in
            working voxels, weighted by ``regulariser_weight``.
    """

    mode: str = "combined"
    image_loss: str = "lncc"
    window_voxels: float = 9.0
    image_weight: float = 1.0
    label_weight: float = 1.0
    regulariser: str = "bending"
    regulariser_weight: float = 0.5

    def validate(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode={self.mode!r} must be one of {', '.join(MODES)}")
        if self.image_loss not in IMAGE_LOSS_NAMES:
            raise InputError(f"image_loss={self.image_loss!r} must be one of {', '.join(IMAGE_LOSS_NAMES)}")
        if self.regulariser not in REGULARISER_NAMES:
            raise InputError(f"regulariser={self.regulariser!r} must be one of {', '.join(REGULARISER_NAMES)}")
        if min(self.image_weight, self.label_weight, self.regulariser_weight) < 0 or self.window_voxels < 3:
            raise InputError("loss weights must be >= 0 and window_voxels >= 3")

    @property
    def uses_images(self) -> bool:
        return self.mode in ("unsupervised", "combined")

    @property
    def uses_labels(self) -> bool:
        return self.mode in ("weak", "combined")


SECTIONS = {"data": StructureDataSettings, "model": DDFNetConfig, "pairs": DDFNetPairSettings, "loss": LossSettings,
            "training": TrainingSettings, "output": OutputSettings}


def sample_one_structure(batch: PairBatch, rng: np.random.Generator) -> PairBatch:
    """The batch with one structure channel per pair, drawn uniformly (the same for its fixed and moving maps):
    DeepReg's label sampling for images with several labels."""
    if batch.fixed_structures is None or batch.fixed_structures.shape[1] == 1:
        return batch
    picks = torch.from_numpy(rng.integers(0, batch.fixed_structures.shape[1], batch.fixed.shape[0]))
    rows = torch.arange(batch.fixed.shape[0])
    return dataclasses.replace(batch, fixed_structures=batch.fixed_structures[rows, picks].unsqueeze(1),
                               moving_structures=batch.moving_structures[rows, picks].unsqueeze(1))


class DDFNetObjective(torch.nn.Module):
    """The training loss of one mode; ``forward(batch) -> (loss, stats)``."""

    def __init__(self, network: DDFNet, grid: Grid, settings: LossSettings) -> None:
        super().__init__()
        self.network = network
        self.settings = settings
        self.warper = Warper(grid, grid)
        self.spacing = grid.axis_spacing
        window = {"window_mm": settings.window_voxels * grid.spacing[0]} if settings.image_loss == "lncc" else {}
        self.image_loss = image_loss(settings.image_loss, spacing=self.spacing, **window)
        self.label_loss = SoftDice()
        self.regulariser = regulariser(settings.regulariser)

    def forward(self, batch: PairBatch):
        s = self.settings
        fixed, moving = zscore(batch.fixed), zscore(batch.moving)
        field = self.network(fixed, moving).field
        stats = {"regulariser": self.regulariser(field, self.spacing)}
        loss = s.regulariser_weight * stats["regulariser"]
        if s.uses_images:
            warped, inside = self.warper(moving, field, return_mask=True)
            stats["image_loss"] = self.image_loss(fixed, warped, inside)
            loss = loss + s.image_weight * stats["image_loss"]
        if s.uses_labels:
            stats["label_loss"] = self.label_loss(batch.fixed_structures, self.warper(batch.moving_structures, field))
            loss = loss + s.label_weight * stats["label_loss"]
        return loss, {k: v.detach() for k, v in stats.items()}


def validation_scores(objective: DDFNetObjective, pairs: list[PairBatch]) -> dict:
    """Mean structure Dice before and after one pass, ``val_dice_loss`` (1 - Dice after), the image loss, the
    mean error of the field against the true one over the whole grid (synthetic pairs; working voxels; the
    background, where no image constrains the field, included) and folding (%)."""
    network, warper = objective.network, objective.warper
    before, after, image, error, folds = [], [], [], [], []
    for batch in pairs:
        fixed, moving = zscore(batch.fixed), zscore(batch.moving)
        field = network(fixed, moving).field
        warped = warper(batch.moving_structures, field)
        before.append(hard_dice(batch.fixed_structures, batch.moving_structures).mean(1))
        after.append(hard_dice(batch.fixed_structures, warped).mean(1))
        image.append(objective.image_loss(fixed, *warper(moving, field, return_mask=True)).view(1))
        if batch.true_field is not None:
            error.append((field - batch.true_field).norm(dim=1).flatten(1).mean(1))
        folds.append((jacobian_determinant(field, objective.spacing) <= 0).float().flatten(1).mean(1))
    dice = float(torch.cat(after).mean())
    scores = {"val_dice_before": float(torch.cat(before).mean()), "val_dice": dice, "val_dice_loss": 1.0 - dice,
              "val_image_loss": float(torch.cat(image).mean()),
              "val_folding_percent": 100 * float(torch.cat(folds).mean())}
    if error:
        scores["val_field_error_voxels"] = float(torch.cat(error).mean())
    return scores


def _pairs(bank, batch_size: int, grid: Grid, settings: DDFNetPairSettings, rng) -> PairBatch:
    if settings.pairing == "unpaired":
        return unpaired_pairs(bank, batch_size, grid, settings, rng)
    return random_pairs(bank, batch_size, grid, settings, rng)


def _train(data: StructureDataSettings, config: DDFNetConfig, pair_s: DDFNetPairSettings, loss_s: LossSettings,
           training: TrainingSettings, output: OutputSettings, context, device, progress, resume) -> Optional[dict]:
    t0 = time.perf_counter()
    train_bank, val_bank = data.build_banks(config.ndim, config.working_size)
    if pair_s.pairing == "unpaired" and min(len(train_bank), len(val_bank)) < 2:
        raise InputError("pairing = \"unpaired\" needs at least two training and two validation images (or slices)")
    bank_seconds = time.perf_counter() - t0
    grid = training_grid(config.ndim, config.working_size)
    torch.manual_seed(training.seed)  # the same initial weights on every process
    network = DDFNet(config)
    if training.initial_weights_path:  # a checkpoint being resumed replaces these
        DDFNetModel.copy_into(training.initial_weights_path, network)
    objective = DDFNetObjective(network, grid, loss_s)
    val_pairs = validation_pairs(val_bank, training.validation_pairs, grid, pair_s, training.seed, device, _pairs)

    def draw_batch(rng):
        return sample_one_structure(_pairs(train_bank, training.batch_size, grid, pair_s, rng), rng)

    key = "val_dice_loss" if loss_s.uses_labels else "val_image_loss"
    record = train(objective, draw_batch, lambda: validation_scores(objective, val_pairs), training, output,
                   validation_key=key, title=f"ddfnet {config.ndim}D {config.output}, {loss_s.mode}: loss and {key}",
                   device=device, context=context, progress=progress, resume=resume)
    if not context.is_main:
        return None
    objective.load_state_dict(record.best_state)
    model = DDFNetModel(network.cpu())
    card = {
        "title": f"ddfnet {config.ndim}D, {config.output} output, {loss_s.mode} training, {pair_s.pairing} pairs",
        "data": data.card_entry(train_bank, val_bank, training.validation_pairs, config.working_size, pair_s),
        "model": config.as_dict(),
        "network_parameters": network.parameter_count,
        **training_card(training, loss_s, record, bank_seconds, device, context, key),
    }
    return model.save(output.weights, card, output.weights_precision)


#: ``train_ddfnet(config_path, *, progress=None, resume=True, steps=None, overrides=())``: train from a
#: configuration file (see the module docstring); rank 0 returns the model card of the saved weights
train_ddfnet = method_trainer(SECTIONS, _train)
