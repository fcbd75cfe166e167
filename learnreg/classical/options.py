"""Options of the classical methods (``affine``, ``bspline``, ``ddf``): dataclasses without torch."""

from __future__ import annotations

from dataclasses import dataclass

from learnreg.errors import InputError
from learnreg.options import IMAGE_LOSS_NAMES, OPTIMISERS, REGULARISER_NAMES


@dataclass
class IterativeOptions:
    """Options every iterative method shares.

    Attributes:
        levels: pyramid shrink factors, coarse to fine (1 = full resolution).
        iterations: most iterations per level.
        learning_rate: Adam step size (per method: its parameters' units are documented there).
        optimiser: ``auto`` (L-BFGS on levels measured at every voxel, Adam on sampled ones: see
            :func:`~learnreg.classical.optimise.choose_optimiser`; the affine method's default), ``lbfgs`` or
            ``adam``.
        image_loss: ``mse``, ``ncc`` or ``lncc``.
        lncc_window_mm: window width of ``lncc`` in mm.
        normalisation: intensity normalisation of both images: ``percentile``, ``zscore`` or ``none``.
        samples: on large levels (``auto``: more than twice this many voxels; ``adam``: more than this),
            the image loss of each Adam iteration is measured at this many voxels drawn at random, afresh
            every iteration (``mse`` and ``ncc``); 0 = every voxel.
        seed: seed of those draws (the same inputs and seed give the same result).
        stop_tolerance: a level ends early when an L-BFGS iteration lowers the objective by less than this
            fraction of its starting value, or when Adam's mean image loss over 10 iterations falls by less
            than this fraction from the 10 before; 0 = always run every iteration.
    """

    levels: tuple[float, ...] = (4, 2, 1)
    iterations: tuple[int, ...] = (100, 100, 50)
    learning_rate: float = 0.1
    optimiser: str = "auto"
    image_loss: str = "mse"
    lncc_window_mm: float = 9.0
    normalisation: str = "percentile"
    samples: int = 0
    seed: int = 0
    stop_tolerance: float = 0.0

    def validate(self) -> None:
        if len(self.levels) != len(self.iterations) or not self.levels:
            raise InputError(f"give one iteration count per level: levels={self.levels}, iterations={self.iterations}")
        if any(f < 1 for f in self.levels) or any(n < 0 for n in self.iterations):
            raise InputError("levels must be shrink factors >= 1 and iterations >= 0")
        if self.learning_rate <= 0:
            raise InputError("learning_rate must be positive")
        if self.optimiser not in OPTIMISERS:
            raise InputError(f"unknown optimiser {self.optimiser!r}; use {', '.join(OPTIMISERS)}")
        if not 0 <= self.stop_tolerance < 1:
            raise InputError(f"stop_tolerance={self.stop_tolerance} must be a fraction in [0, 1) (0 = no early stop)")
        if self.samples < 0:
            raise InputError(f"samples={self.samples} must be 0 (every voxel) or a positive number of voxels")
        if self.image_loss not in IMAGE_LOSS_NAMES:
            raise InputError(f"unknown image_loss {self.image_loss!r}; use {', '.join(IMAGE_LOSS_NAMES)}")
        if self.normalisation not in ("percentile", "zscore", "none"):
            raise InputError("normalisation must be percentile, zscore or none")


@dataclass
class DeformableOptions(IterativeOptions):
    """Options of the deformable methods, on top of :class:`IterativeOptions`.

    Attributes:
        regulariser: ``bending``, ``diffusion`` or ``tv`` (isotropic total variation).
        regulariser_weight: weight of the regulariser against the image loss.
        initialise: ``affine`` runs the ``affine`` method first (with its own defaults) and deforms on top of
            it; ``none`` starts from the identity.
        optimiser: ``adam`` by default for deformable models: L-BFGS on their small levels (``auto``) is as
            accurate but no faster (benchmarks/results/classical_speed.md).
    """

    regulariser: str = "bending"
    regulariser_weight: float = 1.0
    initialise: str = "affine"
    optimiser: str = "adam"

    def validate(self) -> None:
        super().validate()
        if self.regulariser not in REGULARISER_NAMES:
            raise InputError(f"unknown regulariser {self.regulariser!r}; use {', '.join(REGULARISER_NAMES)}")
        if self.regulariser_weight < 0:
            raise InputError("regulariser_weight must be >= 0")
        if self.initialise not in ("affine", "none"):
            raise InputError("initialise must be affine or none")


@dataclass
class AffineOptions(IterativeOptions):
    """Affine defaults: two coarse levels suffice for 12 (2D: 6) parameters.

    ``learning_rate`` is the Adam step of the matrix entries (dimensionless) and of the translation in
    units of a tenth of the image extent.
    """

    levels: tuple[float, ...] = (4, 2)
    iterations: tuple[int, ...] = (150, 75)
    learning_rate: float = 0.005
    samples: int = 32768
    stop_tolerance: float = 0.001


@dataclass
class BSplineOptions(DeformableOptions):
    """B-spline options.

    Attributes:
        control_spacing_mm: control-point spacing per level, coarse to fine, in mm; empty = automatic:
            the finest is ``final_control_spacing_voxels`` voxels (at least 1/24 of the image extent)
            and each coarser level doubles it.
        final_control_spacing_voxels: finest automatic spacing, in full-resolution voxels.
        learning_rate: Adam step of the control-point displacements, in voxels of the current level.
    """

    control_spacing_mm: tuple[float, ...] = ()
    final_control_spacing_voxels: float = 8.0
    regulariser_weight: float = 0.5
    samples: int = 32768
    stop_tolerance: float = 0.001

    def validate(self) -> None:
        super().validate()
        if self.control_spacing_mm and len(self.control_spacing_mm) != len(self.levels):
            raise InputError("give one control_spacing_mm per level, or none for automatic spacing")
        if any(s <= 0 for s in self.control_spacing_mm) or self.final_control_spacing_voxels <= 0:
            raise InputError("control-point spacings must be positive")


@dataclass
class DDFOptions(DeformableOptions):
    """Dense-field options; ``learning_rate`` is the Adam step per voxel displacement, in level voxels."""

    regulariser: str = "diffusion"
    regulariser_weight: float = 0.03
    learning_rate: float = 0.2
