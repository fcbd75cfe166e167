"""One loss library shared by classical and learned registration (the DeepReg tutorial's point)."""

from __future__ import annotations

from learnreg.errors import InputError
from learnreg.losses.image import IMAGE_LOSSES, MSE, NCC, LocalNCC
from learnreg.losses.label import LabelMSE, SoftDice, one_hot
from learnreg.losses.regularisers import REGULARISERS, BendingEnergy, Diffusion, TotalVariation

__all__ = [
    "MSE", "NCC", "LocalNCC", "SoftDice", "LabelMSE", "one_hot", "TotalVariation", "Diffusion",
    "BendingEnergy", "image_loss", "regulariser",
]


def image_loss(name: str, spacing=(1.0, 1.0, 1.0), **options):
    """An image loss by name (``mse``, ``ncc``, ``lncc``); ``lncc`` takes ``window_mm``."""
    if name not in IMAGE_LOSSES:
        raise InputError(f"unknown image loss {name!r}; choose one of {', '.join(IMAGE_LOSSES)}")
    if name == "lncc":
        return LocalNCC(spacing=spacing, **options)
    return IMAGE_LOSSES[name](**options)


def regulariser(name: str):
    """A field regulariser by name (``tv``, ``diffusion``, ``bending``)."""
    if name not in REGULARISERS:
        raise InputError(f"unknown regulariser {name!r}; choose one of {', '.join(REGULARISERS)}")
    return REGULARISERS[name]()
