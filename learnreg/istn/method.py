"""``istn``'s options and declaration (see :mod:`learnreg.methods`); no torch here."""

from __future__ import annotations

from dataclasses import dataclass

from learnreg.errors import InputError
from learnreg.methods import Method, declare
from learnreg.options import LearnedOptions

#: ISTN variants (Lee et al.): STN alone (unsupervised, supervised) or with an ITN (explicit, implicit)
VARIANTS = ("stn-u", "stn-s", "istn-e", "istn-i")
#: the spatial transformer's transformation models
TRANSFORMATIONS = ("affine", "bspline")
#: what ISTN's test-time refinement optimises: ``auto`` (the whole STN in 2D, its output layer in 3D), the STN's
#: output layer, or the whole STN (the paper's)
REFINE_SCOPES = ("auto", "head", "stn")


@dataclass
class ISTNOptions(LearnedOptions):
    """Options of ``istn``.

    Attributes:
        weights: weights file (``.pt`` with its ``.card.json``); it fixes the transformation and variant.
            Empty: the shipped weights for the image's dimension, ``transformation`` and ``variant``.
        transformation: ``bspline`` or ``affine`` (shipped weights only); ``bspline`` by default, as it halves
            the held-out TRE where ``affine`` cannot follow a deformation (benchmarks/results/learned_diagnosis.md).
        variant: ``stn-u``, ``stn-s``, ``istn-e`` or ``istn-i`` (shipped weights only); ``stn-u`` by default, the
            best of them on held-out pairs (benchmarks/results/learned_diagnosis.md).
        refine_steps: ISTN's own test-time refinement (the paper's): Adam steps on its transformation's
            parameters against its representation loss, before ``refine`` (0: none).
        refine_learning_rate: Adam learning rate of ISTN's own refinement.
        refine_scope: what that refinement optimises: ``stn``, the whole STN (the paper's), or ``head``, only
            its output layer (its features computed once). ``auto`` (default): ``head`` in 3D, where it gives
            about the same held-out TRE in a fifth of the time, ``stn`` in 2D, where it costs under a
            second and ``head`` left more (benchmarks/results/heldout.md).
        refine_samples: on working grids with more voxels than this (3D), each step of that refinement measures
            its loss at this many voxels drawn at random, afresh every step (a fixed seed: the same inputs give the
            same result), as ``bspline`` does on its large levels; 0: every voxel.
    """

    weights: str = ""
    transformation: str = "bspline"
    variant: str = "stn-u"
    refine_steps: int = 50
    refine_learning_rate: float = 1e-3
    refine_scope: str = "auto"
    refine_samples: int = 32768

    def validate(self) -> None:
        super().validate()
        if self.transformation not in TRANSFORMATIONS:
            raise InputError(f"transformation={self.transformation!r} must be one of {', '.join(TRANSFORMATIONS)}")
        if self.variant not in VARIANTS:
            raise InputError(f"variant={self.variant!r} must be one of {', '.join(VARIANTS)}")
        if not 0 <= self.refine_steps <= 2000:
            raise InputError(f"refine_steps={self.refine_steps} must be between 0 (no refinement) and 2000")
        if not 0 < self.refine_learning_rate <= 1:
            raise InputError(f"refine_learning_rate={self.refine_learning_rate} must be in (0, 1]")
        if self.refine_samples < 0:
            raise InputError(f"refine_samples={self.refine_samples} must be 0 (every voxel) or a positive number of "
                             "voxels")
        if self.refine_scope not in REFINE_SCOPES:
            raise InputError(f"refine_scope={self.refine_scope!r} must be one of {', '.join(REFINE_SCOPES)}")


declare(Method("istn", "Image-and-spatial transformer network (trained), affine or B-spline, with test-time refinement",
               ISTNOptions, "learnreg.istn.registrar:ISTNRegistrar", "learnreg.istn.training:train_istn"))
