"""``cnnregress``'s options and declaration (see :mod:`learnreg.methods`); no torch here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from learnreg.errors import InputError
from learnreg.methods import Method, declare
from learnreg.options import LearnedOptions


@dataclass
class CNNRegressOptions(LearnedOptions):
    """Options of ``cnnregress``.

    Attributes:
        weights: weights file (``.pt`` with its ``.card.json``); empty: the shipped weights for the images'
            dimension.
        density_percent: active points as a percentage of the working grid's voxels that the fixed image covers
            (paper: 0.9 % of the image's voxels); clamped,
            with a message, to what the thin-plate spline can use.
        passes: predict-interpolate-warp iterations, composed (paper: 2).
        tps_smoothing: the thin-plate spline's ``lambda`` (unit-box coordinates; 0: through every prediction
            exactly). Empty: the value chosen on the validation pairs and stored with the weights.
    """

    weights: str = ""
    density_percent: float = 0.9
    passes: int = 2
    tps_smoothing: Optional[float] = None

    def validate(self) -> None:
        super().validate()
        if not 0 < self.density_percent <= 50:
            raise InputError(f"density_percent={self.density_percent} must be a percentage of the voxels in (0, 50] "
                             "(default 0.9)")
        if not 1 <= self.passes <= 10:
            raise InputError(f"passes={self.passes} must be between 1 and 10 (default 2)")
        if self.tps_smoothing is not None and self.tps_smoothing < 0:
            raise InputError(f"tps_smoothing={self.tps_smoothing} must be >= 0 (0 interpolates exactly)")


declare(Method("cnnregress", "Similarity-steered CNN regression at active points with thin-plate splines (trained)",
               CNNRegressOptions, "learnreg.cnnregress.registrar:CNNRegressRegistrar", "learnreg.cnnregress.training:train_cnnregress"))
