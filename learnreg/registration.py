"""The registrar interface every method implements and its result (methods are declared in
:mod:`learnreg.methods`).

A registrar is built from typed options and has one entry point::

    result = create_registrar("bspline", {"iterations": (50, 50, 20)}).register(
        fixed, moving, device="auto", progress=callback, cancel=token)

``register`` validates the pair, checks memory, runs the method, and returns a
:class:`RegistrationResult` with the pull field on the fixed grid (LPS mm), the moving image warped
onto the fixed grid, per-step records (methods that work in steps), the number of parameters that
describe the transformation and wall times per stage.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np
import torch

from learnreg.device import check_memory, resolve_device
from learnreg.field import DisplacementField
from learnreg.image import Grid, Image, check_pair, normalise
from learnreg.methods import all_methods, find_method
from learnreg.options import parse_options
from learnreg.progress import CancelToken, Progress, ProgressCallback
from learnreg.warp import Warper


@dataclass
class StepRecord:
    """One step of a stepwise method (an R2N2 step, a pyramid level, ...).

    Attributes:
        index: step number, from 0.
        loss: image loss after the step.
        parameters: what the method chose in this step (named values, for reports and tables).
        displacement: the displacement this step added (pull direction, LPS mm on the fixed grid), so that
            the field after step ``n`` is the sum of the displacements of steps ``0..n``.
        centre: LPS position (mm) of a local deformation's centre, for methods that deform locally.
        extent_mm: radius (mm) of that local deformation.
        points: ``(N, 3)`` LPS positions (mm) where the step measured displacements (CNNRegress: its active points).
        point_displacements: ``(N, 3)`` the displacements measured there (LPS mm, pull direction).
    """

    index: int
    loss: float
    parameters: dict[str, Any] = field(default_factory=dict)
    displacement: Optional[DisplacementField] = None
    centre: Optional[tuple[float, float, float]] = None
    extent_mm: Optional[float] = None
    points: Optional[np.ndarray] = None
    point_displacements: Optional[np.ndarray] = None


@dataclass
class MethodOutput:
    """What a method's :meth:`Registrar.run` hands back to :meth:`Registrar.register`."""

    field: torch.Tensor  # (1, ndim, *spatial) in mm along the fixed grid axes, pull direction
    parameter_count: int
    steps: list[StepRecord] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)
    stage_times: dict[str, float] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    affine_lps: Optional[np.ndarray] = None  # (4, 4) fixed LPS point -> moving LPS point, for affine results
    notes: list[str] = field(default_factory=list)  # what the user should know about this result
    one_pass_field: Optional[torch.Tensor] = None  # a learned method's network pass, before any refinement
    start_losses: dict[str, Any] = field(default_factory=dict)  # learned methods: see learnreg.learned


@dataclass
class RegistrationResult:
    """The outcome of one registration.

    Attributes:
        method: registered method name.
        field: pull displacement field on the fixed grid (LPS mm).
        warped: the moving image (original intensities) resampled on the fixed grid through ``field``.
        parameter_count: number of parameters that describe the transformation.
        timings: wall time in seconds per stage (``preprocess``, method stages, ``warp``, ``total``).
        device: torch device the method ran on.
        steps: per-step records for stepwise methods (empty otherwise).
        loss_history: image loss per iteration for iterative methods.
        options: the options used, as a plain dict.
        images: images a method exposes besides the result, by name (ISTN: the representations its
            network computed of the fixed and moving images, on its working grid).
        affine_lps: for an affine result, the ``4 x 4`` matrix mapping a fixed LPS point (mm) to its moving
            point: the same map as ``field``, for a linear transform node.
        notes: what the user should know about this result (e.g. that a network's pass was set aside because
            it made the images less similar), one sentence each.
        one_pass: a learned method's field after its network's pass alone (LPS mm, pull), before the
            similarity check and refinement; None for classical methods.
        similarity: a learned method's image dissimilarity (``1 - NCC``) with no deformation (``identity``),
            an affine registration, the network's pass and the final field, and which start it ``chosen``.
    """

    method: str
    field: DisplacementField
    warped: Image
    parameter_count: int
    timings: dict[str, float]
    device: str
    steps: list[StepRecord] = dataclasses.field(default_factory=list)
    loss_history: list[float] = dataclasses.field(default_factory=list)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    images: dict[str, Image] = dataclasses.field(default_factory=dict)
    affine_lps: Optional[np.ndarray] = None
    notes: list[str] = dataclasses.field(default_factory=list)
    one_pass: Optional[DisplacementField] = None
    similarity: dict[str, Any] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------- registrar
class Registrar(ABC):
    """Base class of every registration method.

    Subclasses set ``name`` and ``Options`` (its options dataclass, declared with the method in
    :mod:`learnreg.methods`), and implement :meth:`run`
    (and :meth:`bytes_per_voxel` when their memory needs differ from the default).
    """

    name: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, options: Any = None) -> None:
        self.options = parse_options(self.Options, options)

    #: rough peak memory per fixed voxel, used to refuse volumes that cannot fit
    bytes_per_voxel: ClassVar[int] = 400

    @classmethod
    def ready(cls) -> bool:
        """Whether the method can run with its defaults here (a learned method: its weights are installed)."""
        return True

    def estimate_memory_bytes(self, fixed: Grid, moving: Grid) -> int:
        """Peak memory estimate (bytes) for registering images on these grids."""
        return self.bytes_per_voxel * fixed.num_voxels + 16 * moving.num_voxels

    def check_resources(self, fixed: Grid, moving: Grid, device: str = "auto") -> torch.device:
        """The device to run on; raises :class:`ResourceError` when it is missing or lacks the memory for
        images on these grids (needs only the images' headers: see :func:`learnreg.image.read_image_grid`)."""
        dev = resolve_device(device)
        check_memory(self.estimate_memory_bytes(fixed, moving), dev, f"registering with {self.name}", fixed.size)
        return dev

    @abstractmethod
    def run(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        """Register intensity-normalised images; return the field in the fixed grid's axis frame."""

    def register(self, fixed: Image, moving: Image, *, device: str = "auto",
                 progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> RegistrationResult:
        """Register ``moving`` to ``fixed``; see :class:`RegistrationResult`.

        Raises:
            InputError: the images cannot be registered (the message says why and what to do).
            ResourceError: the device lacks memory or is unavailable.
            RegistrationCancelled: ``cancel`` was set while running.
        """
        check_pair(fixed, moving)
        dev = self.check_resources(fixed.grid, moving.grid, device)
        reporter = Progress(progress, cancel)
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        normalisation = getattr(self.options, "normalisation", "percentile")
        fixed_n, moving_n = normalise(fixed, normalisation), normalise(moving, normalisation)
        timings["preprocess"] = time.perf_counter() - t_start
        reporter.report(0.0, f"{self.name}: starting on {dev.type}")

        t0 = time.perf_counter()
        output = self.run(fixed_n, moving_n, dev, reporter.span(0.0, 0.97))
        timings.update(output.stage_times)
        timings["register"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            warper = Warper(fixed.grid, moving.grid).to(dev)
            moving_t = torch.from_numpy(moving.spatial_array())[None, None].to(dev)
            warped = warper(moving_t, output.field.to(dev))[0, 0].cpu().numpy()
        if fixed.ndim == 2:
            warped = warped[None]
        result_field = DisplacementField.from_axis_tensor(output.field, fixed.grid)
        timings["warp"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        reporter.report(1.0, f"{self.name}: done in {timings['total']:.1f} s")
        return RegistrationResult(
            method=self.name,
            field=result_field,
            warped=Image(warped, fixed.grid),
            parameter_count=int(output.parameter_count),
            timings=timings,
            device=str(dev),
            steps=output.steps,
            loss_history=output.loss_history,
            options=dataclasses.asdict(self.options),
            images=output.images,
            affine_lps=output.affine_lps,
            notes=list(output.notes),
            one_pass=None if output.one_pass_field is None
            else DisplacementField.from_axis_tensor(output.one_pass_field, fixed.grid),
            similarity=dict(output.start_losses),
        )


# ----------------------------------------------------------------- methods
def available_methods() -> dict[str, type[Registrar]]:
    """Method name -> registrar class, for every built-in method (imports them all; the declarations alone,
    without torch: :func:`learnreg.methods.all_methods`)."""
    return {name: method.registrar_class() for name, method in all_methods().items()}


def warm_up() -> None:
    """Load what torch loads lazily on a registration's first optimiser step and warp (about 1 s on a CPU):
    one Adam step through ``grid_sample`` on a 4^3 volume. A Slicer panel calls this in the background when
    it opens, so that the first run reports its first iteration at once."""
    parameter = torch.zeros(1, 4, 4, 4, 3, requires_grad=True)
    optimiser = torch.optim.Adam([parameter], lr=0.1, amsgrad=True, fused=True)
    warped = torch.nn.functional.grid_sample(torch.ones(1, 1, 4, 4, 4), parameter, align_corners=True)
    warped.mean().backward()
    optimiser.step()


def create_registrar(name: str, options: Any = None) -> Registrar:
    """Instantiate a registrar by method name with options (dict of values or the Options dataclass)."""
    return find_method(name).registrar_class()(options)
