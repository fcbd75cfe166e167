"""Classical iterative registration: ``affine``, ``bspline`` and ``ddf``, sharing the loss library."""

from learnreg.classical.affine import AffineOptions, AffineRegistrar
from learnreg.classical.bspline import BSplineOptions, BSplineRegistrar
from learnreg.classical.ddf import DDFOptions, DDFRegistrar

__all__ = ["AffineOptions", "AffineRegistrar", "BSplineOptions", "BSplineRegistrar", "DDFOptions", "DDFRegistrar"]
