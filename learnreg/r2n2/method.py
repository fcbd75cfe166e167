"""``r2n2``'s options and declaration (see :mod:`learnreg.methods`); no torch here."""

from __future__ import annotations

from dataclasses import dataclass

from learnreg.errors import InputError
from learnreg.methods import Method, declare
from learnreg.options import LearnedOptions


@dataclass
class R2N2Options(LearnedOptions):
    """Options of ``r2n2``.

    Attributes:
        weights: weights file (``.pt`` with its ``.card.json``); empty = the shipped weights for the image's
            dimension (``Resources/Models/r2n2_2d.pt`` or ``r2n2_3d.pt``).
        steps: most steps (Gaussians); 0 = the sequence length the weights were trained with.
        tolerance: a step improves when it lowers the best image loss so far by at least this fraction of
            the initial loss (0: when it does not make it worse).
        patience: stop after this many steps in a row that do not improve; the result ends at the best step.
    """

    weights: str = ""
    steps: int = 0
    tolerance: float = 0.002
    patience: int = 3

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.steps <= 500:
            raise InputError(f"steps={self.steps} must be between 0 (the trained length) and 500")
        if not 0 <= self.tolerance < 1:
            raise InputError(f"tolerance={self.tolerance} must be at least 0 and below 1 (a fraction of the loss)")
        if not 1 <= self.patience <= 100:
            raise InputError(f"patience={self.patience} must be between 1 and 100 steps")


declare(Method("r2n2", "R2N2 recurrent registration network: one local Gaussian deformation per step (trained)",
               R2N2Options, "learnreg.r2n2.registrar:R2N2Registrar", "learnreg.r2n2.training:train_r2n2"))
