"""What every learned method does after its network's pass: check that the pass helped, and refine it.

A :class:`LearnedRegistrar` implements :meth:`~LearnedRegistrar.predict` (the network's one pass, the
paper's method). :meth:`~LearnedRegistrar.run` then

1. **never lets a pass make things silently worse**: it measures the image similarity (global normalised
   cross-correlation, ``1 - NCC``, on the fixed grid, where the warped moving image overlaps it) with no
   deformation, with the classical ``affine`` method's result, with the network's field and (``prealign=both``)
   with the network's pass on the moving image aligned by that affine result, composed with it
   (``affine+network``: the networks saw affine motions of a few degrees in training, real pairs may differ by
   more); when a network's pass is not the best, the result says so (a note in the report, the command line
   and the panel) and carries on from the best start;
2. **refines** (instance optimisation, ``refine=bspline``, see
   :class:`~learnreg.options.LearnedOptions`): the shared multi-resolution B-spline optimiser, on
   the same loss library as every classical method (``bspline``'s pyramid unless ``refine_levels`` says
   otherwise), starts from that field and deforms on top of it
   (cancellable, with progress): its B-spline displacement ``b`` is composed with a network's ``u``,
   ``u(x) + b(x + u(x))``, so a folding-free start stays folding-free wherever ``b`` is (their Jacobians
   multiply; added, they did not: 0.12 % of a held-out pair's pixels folded), and added to the affine start, as
   ``bspline`` adds it to its affine stage (which it then equals); ``refine=none`` keeps the one pass.
   With ``refine_from=both`` (the Accurate preset) it refines the affine start too, when that was not the start,
   and keeps whichever refined result leaves the images more similar, saying so when it is the affine one: a
   pass that is more similar than the affine start may still refine to a worse result than it.

Every field is a pull displacement in mm along the fixed grid's axes.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from pathlib import Path
from typing import Optional

import torch

from learnreg.classical.affine import AffineRegistrar
from learnreg.classical.bspline import BSplineRegistrar
from learnreg.classical.iterative import steps_from_snapshots
from learnreg.classical.optimise import on_base
from learnreg.field import DisplacementField
from learnreg.image import Grid, Image
from learnreg.losses.image import NCC
from learnreg.progress import Progress
from learnreg.registration import MethodOutput, Registrar, StepRecord
from learnreg.transformations import AffineTransformation, FixedField
from learnreg.warp import Warper, resample_to_grid

#: the start made of the network's pass on the moving image aligned by the affine start, composed with it
AFTER_AFFINE = "affine+network"
#: the starts a learned result may build on, in the order preferred on a tie
CANDIDATE_STARTS = ("network", AFTER_AFFINE, "affine", "identity")


def similarity_losses(fixed: Image, moving: Image, fields: dict[str, torch.Tensor],
                      device: torch.device) -> dict[str, float]:
    """``1 - NCC`` between ``fixed`` and ``moving`` warped by each field, where the warped image overlaps it."""
    warper = Warper(fixed.grid, moving.grid).to(device)
    fixed_t = torch.from_numpy(fixed.spatial_array())[None, None].to(device)
    moving_t = torch.from_numpy(moving.spatial_array())[None, None].to(device)
    loss = NCC()
    with torch.no_grad():
        return {name: float(loss(fixed_t, *warper(moving_t, field.to(device), return_mask=True)))
                for name, field in fields.items()}


def _renumbered(steps: list[StepRecord], first: int, stage: Optional[str] = None) -> list[StepRecord]:
    for offset, step in enumerate(steps):
        step.index = first + offset
        if stage is not None:
            step.parameters = {**step.parameters, "stage": stage}
    return steps


class LearnedRegistrar(Registrar):
    """A trained network's method: :meth:`predict` is its one pass; :meth:`run` adds the similarity check and
    the refinement (see the module docstring)."""

    @abstractmethod
    def shipped_weights(self, ndim: int) -> Path:
        """The shipped weights file (``Resources/Models``) that this registrar's options select for ``ndim``-D
        images (used unless the options name a weights file; it may not exist)."""

    @classmethod
    def ready(cls) -> bool:
        """Whether the method can run with its default options here: their shipped weights exist (2D or 3D)."""
        defaults = cls()
        return any(defaults.shipped_weights(ndim).is_file() for ndim in (2, 3))

    def pass_memory_bytes(self, fixed: Grid, moving: Grid) -> int:
        """Peak memory estimate (bytes) of the network's pass on images on these grids."""
        return super().estimate_memory_bytes(fixed, moving)

    def estimate_memory_bytes(self, fixed: Grid, moving: Grid) -> int:
        """The pass's estimate or, with ``refine`` on, the refinement's when larger: ``bspline``'s, plus the starts
        (three fields) and the composition's stencil (40 bytes a voxel) on the fixed grid."""
        if self.options.refine == "none":
            return self.pass_memory_bytes(fixed, moving)
        starts_and_stencil = (3 * 4 * fixed.ndim + 40) * fixed.num_voxels
        refinement = BSplineRegistrar().estimate_memory_bytes(fixed, moving) + starts_and_stencil
        return max(self.pass_memory_bytes(fixed, moving), refinement)

    @abstractmethod
    def predict(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        """The network's one pass on intensity-normalised images (as :meth:`Registrar.run`)."""

    def run(self, fixed: Image, moving: Image, device: torch.device, progress: Progress) -> MethodOutput:
        refine = self.options.refine != "none"
        prealign = self.options.prealign == "both"
        end = 0.5 if refine else 1.0  # the passes and the start check take progress up to here
        pass_end = end * (0.5 if prealign else 0.9)
        one_pass = self.predict(fixed, moving, device, progress.span(0.0, pass_end))
        t0 = time.perf_counter()
        affine_model, _, _ = AffineRegistrar().fit_levels(fixed, moving, device,
                                                          progress.span(pass_end, pass_end + 0.1 * end))
        with torch.no_grad():
            affine_model.set_grid(fixed.grid)
            starts = {"network": one_pass.field, "affine": affine_model(),
                      "identity": torch.zeros_like(one_pass.field)}
        stage_times = {**one_pass.stage_times, "start_check": time.perf_counter() - t0}
        if prealign:
            t0 = time.perf_counter()
            after_affine, starts[AFTER_AFFINE] = self._pass_after_affine(fixed, moving, starts["affine"], device,
                                                                         progress.span(pass_end + 0.1 * end, end))
            stage_times["pass_after_affine"] = time.perf_counter() - t0
        losses = similarity_losses(fixed, moving, starts, device)
        candidates = [name for name in CANDIDATE_STARTS if name in starts]

        def most_similar(names: list[str]) -> str:  # ties go to the earlier of CANDIDATE_STARTS
            return min(names, key=lambda name: (losses[name], CANDIDATE_STARTS.index(name)))

        best = most_similar(candidates)
        chosen = best if self.options.start == "best" else "network"
        notes = list(one_pass.notes)
        passes = [name for name in candidates if name in ("network", AFTER_AFFINE)]
        best_pass = most_similar(passes)
        if best_pass == AFTER_AFFINE and chosen in ("network", AFTER_AFFINE):
            consequence = ("the result builds on it" if chosen == AFTER_AFFINE
                           else "kept the pass on the images as given, as asked (start=network)")
            notes.append(f"{self.name}'s pass after an affine registration left the images more similar than its pass "
                         f"on the images as given (1 - NCC {losses[AFTER_AFFINE]:.4f} against {losses['network']:.4f}); "
                         f"{consequence}")
            progress.report(end, f"{self.name}: {notes[-1]}")
        if best not in passes:
            other = "no deformation" if best == "identity" else "an affine registration"
            if chosen == "network":
                consequence = "kept as asked (start=network)"
            else:
                consequence = f"refined from {other} instead" if refine else f"the result is {other} instead"
            notes.append(f"{self.name}'s one pass made the images less similar than {other} (1 - NCC "
                         f"{losses[best_pass]:.4f} against {losses[best]:.4f}); {consequence}")
            progress.report(end, f"{self.name}: {notes[-1]}")
        chosen_pass = after_affine if chosen == AFTER_AFFINE else one_pass

        def start_steps(name: str) -> tuple[list[StepRecord], int]:
            """The steps and parameter count that a result built on start ``name`` begins with."""
            if name == "network":
                return list(one_pass.steps), one_pass.parameter_count
            if name == AFTER_AFFINE:
                # the affine start where the network's pass points, then the pass's own steps: they add up to the field
                affine_part = starts[AFTER_AFFINE] - after_affine.field
                return [StepRecord(0, losses["affine"], {"stage": "affine start, after the network's pass"},
                                   DisplacementField.from_axis_tensor(affine_part, fixed.grid))] + \
                    _renumbered(list(after_affine.steps), 1), affine_model.parameter_count + after_affine.parameter_count
            if name == "affine":
                return [StepRecord(0, losses["affine"], {"stage": "affine start"},
                                   DisplacementField.from_axis_tensor(starts["affine"], fixed.grid))], \
                    affine_model.parameter_count
            return [], 0

        if not refine:
            steps, parameter_count = start_steps(chosen)
            field, history = starts[chosen], list(chosen_pass.loss_history)
            losses["final"] = losses[chosen]
        else:
            t0 = time.perf_counter()
            # refine_from=both also refines the affine start (when not chosen) and keeps the more similar result
            names = [chosen] + (["affine"] if self.options.refine_from == "both" and chosen != "affine" else [])
            refined = {name: self._refine(fixed, moving, starts[name], affine_model if name == "affine" else None,
                                          losses[name], device,
                                          progress.span(0.5 + 0.5 * i / len(names), 0.5 + 0.5 * (i + 1) / len(names)))
                       for i, name in enumerate(names)}
            finals = similarity_losses(fixed, moving, {name: r[0] for name, r in refined.items()}, device)
            kept = min(names, key=lambda name: (finals[name], names.index(name)))
            if kept != chosen:
                notes.append(f"refined from an affine registration as well (refine_from=both): that result is more "
                             f"similar (1 - NCC {finals[kept]:.4f} against {finals[chosen]:.4f}) and is kept")
                progress.report(1.0, f"{self.name}: {notes[-1]}")
                chosen = kept
            field, refined_steps, refine_history, refine_parameters = refined[chosen]
            steps, parameter_count = start_steps(chosen)
            steps += _renumbered(refined_steps, len(steps), "refinement")
            history = list(chosen_pass.loss_history) + refine_history
            parameter_count += refine_parameters
            losses["final"] = finals[chosen]
            stage_times["bspline_refinement"] = time.perf_counter() - t0
        return MethodOutput(field=field.detach(), parameter_count=parameter_count, steps=steps, loss_history=history,
                            stage_times=stage_times, images=one_pass.images,
                            affine_lps=one_pass.affine_lps if chosen == "network" and not refine else None,
                            notes=notes, one_pass_field=one_pass.field, start_losses={**losses, "chosen": chosen})

    def _pass_after_affine(self, fixed: Image, moving: Image, affine: torch.Tensor, device: torch.device,
                           progress: Progress) -> tuple[MethodOutput, torch.Tensor]:
        """The network's pass on ``moving`` aligned by ``affine`` (resampled on the fixed grid), and its field
        composed with the affine start, ``u(x) + a(x + u(x))`` (the pass's ``u`` deforms the aligned image, which
        ``a`` warped)."""
        aligned = resample_to_grid(moving, fixed.grid, affine, device=device)
        after = self.predict(fixed, aligned, device, progress)
        with torch.no_grad():
            composed = on_base(after.field, affine, Warper(fixed.grid, fixed.grid).to(device))
        return after, composed

    def _refine(self, fixed: Image, moving: Image, start: torch.Tensor, affine: Optional[AffineTransformation],
                start_loss: float, device: torch.device,
                progress: Progress) -> tuple[torch.Tensor, list[StepRecord], list[float], int]:
        """The shared B-spline optimiser on top of ``start`` (see the module docstring): the refined field, one step
        per level, the loss history and the B-spline's parameter count. ``affine``: the start is this affine
        registration's field, which the B-spline is added to, as ``bspline`` deforms on its affine stage (an affine
        map folds nowhere, and the sum costs no composition per iteration)."""
        pyramid = {"levels": self.options.refine_levels,
                   "iterations": self.options.refine_iterations} if self.options.refine_levels else {}
        refiner = BSplineRegistrar({"initialise": "none", **pyramid})
        base = affine if affine is not None else FixedField(start, fixed.grid, composed=True).to(device)
        model, history, snapshots = refiner.fit_levels(fixed, moving, device, progress, base)
        steps = steps_from_snapshots([{"stage": "start", "loss": start_loss, "field": start}] + snapshots, fixed)[1:]
        with torch.no_grad():
            model.set_grid(fixed.grid)
            field = on_base(start, model(), None if affine is not None else Warper(fixed.grid, fixed.grid).to(device))
        return field, steps, history, model.parameter_count
