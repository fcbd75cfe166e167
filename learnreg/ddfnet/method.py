"""``ddfnet``'s options and declaration (see :mod:`learnreg.methods`); no torch here."""

from __future__ import annotations

from dataclasses import dataclass

from learnreg.errors import InputError
from learnreg.methods import Method, declare
from learnreg.options import LearnedOptions

#: what the network predicts (DeepReg's outputs): a dense displacement field, a static velocity field
#: (integrated by scaling and squaring, diffeomorphic) or an affine transformation (GlobalNet)
OUTPUTS = ("ddf", "svf", "affine")


@dataclass
class DDFNetOptions(LearnedOptions):
    """Options of ``ddfnet``.

    Attributes:
        weights: weights file (``.pt`` with its ``.card.json``); it fixes the output. Empty: the shipped
            weights for the image's dimension and ``output``.
        output: ``ddf``, ``svf`` or ``affine`` (shipped weights only).
    """

    weights: str = ""
    output: str = "svf"

    def validate(self) -> None:
        super().validate()
        if self.output not in OUTPUTS:
            raise InputError(f"output={self.output!r} must be one of {', '.join(OUTPUTS)}")


declare(Method("ddfnet", "DeepReg-style registration network (trained): dense displacement, velocity or affine output",
               DDFNetOptions, "learnreg.ddfnet.registrar:DDFNetRegistrar", "learnreg.ddfnet.training:train_ddfnet"))
