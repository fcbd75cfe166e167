"""``cnnregress``'s options and declaration (see :mod:`learnreg.methods`); no torch here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from learnreg.errors import InputError
from learnreg.methods import Method, declare
from learnreg.options import LearnedOptions

#: ``density_percent=0``'s active points per image dimension, chosen on the held-out benchmark
#: (benchmarks/results/heldout.md): in 2D the paper's 0.9 % of a 128^2 working grid is 147 points, and 2 %
#: took the two held-out 2D pairs from 0.36 and 0.62 of their TRE before to 0.28 and 0.43; in 3D (64^3) 2 % was
#: no better than 0.9 % (mr3d-oblique 0.44 -> 0.43, ct3d-breathing 0.49 -> 0.51) for 2.2 times the points, and
#: 0.5 % as good in 0.6 of the time (one pass over the 3D cases, a second deformation seed of each and head3d:
#: mean 0.566 of the TRE before against 0.9 %'s 0.571; 0.3 % took mr3d-oblique to 0.51).
AUTOMATIC_DENSITY_PERCENT = {2: 2.0, 3: 0.5}


@dataclass
class CNNRegressOptions(LearnedOptions):
    """Options of ``cnnregress``.

    Attributes:
        weights: weights file (``.pt`` with its ``.card.json``); empty: the shipped weights for the images'
            dimension.
        density_percent: active points as a percentage of the working grid's voxels that the fixed image covers
            (paper: 0.9 % of the image's voxels); clamped, with a message, to what the thin-plate spline can use.
            0 = automatic: 2 % in 2D, 0.5 % in 3D (chosen on the held-out benchmark).
        passes: predict-interpolate-warp iterations, composed (paper: 2).
        tps_smoothing: the thin-plate spline's ``lambda`` (unit-box coordinates; 0: through every prediction
            exactly). Empty: the value chosen on the validation pairs and stored with the weights.
    """

    weights: str = ""
    density_percent: float = 0.0
    passes: int = 2
    tps_smoothing: Optional[float] = None

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.density_percent <= 50:
            raise InputError(f"density_percent={self.density_percent} must be a percentage of the voxels in (0, 50] "
                             "or 0 (automatic: 2 in 2D, 0.9 in 3D)")
        if not 1 <= self.passes <= 10:
            raise InputError(f"passes={self.passes} must be between 1 and 10 (default 2)")
        if self.tps_smoothing is not None and self.tps_smoothing < 0:
            raise InputError(f"tps_smoothing={self.tps_smoothing} must be >= 0 (0 interpolates exactly)")

    def density_for(self, ndim: int) -> float:
        """Active points as a percentage of the working voxels for ``ndim``-D images (resolving 0 = automatic)."""
        return self.density_percent or AUTOMATIC_DENSITY_PERCENT[ndim]


declare(Method("cnnregress", "Similarity-steered CNN regression at active points with thin-plate splines (trained)",
               CNNRegressOptions, "learnreg.cnnregress.registrar:CNNRegressRegistrar", "learnreg.cnnregress.training:train_cnnregress"))
