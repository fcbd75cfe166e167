"""Method options: typed dataclasses parsed from text (``-o key=value``, panel fields, presets), without torch.

Every method's options dataclass lives in a module that imports no torch, so that listing the methods and
checking options is instant (``learnreg methods``) and a mistake is reported before any heavy import. The
names of the choices shared by several methods (image losses, regularisers, optimisers, refinements) are here
too; the modules that implement them build their tables from these names.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Optional

import numpy as np

from learnreg.errors import InputError

#: image losses of the loss library (:mod:`learnreg.losses.image`)
IMAGE_LOSS_NAMES = ("mse", "ncc", "lncc")
#: field regularisers of the loss library (:mod:`learnreg.losses.regularisers`)
REGULARISER_NAMES = ("tv", "diffusion", "bending")
#: optimisers of the classical loop (:mod:`learnreg.classical.optimise`)
OPTIMISERS = ("auto", "lbfgs", "adam")
#: what follows a learned method's network pass (:mod:`learnreg.learned`)
REFINEMENTS = ("bspline", "none")
#: what a learned method builds on: the best of its passes, an affine registration and no deformation, or its pass
STARTS = ("best", "network")
#: what a learned method's network sees: the moving image as given only, or also after the affine start
PREALIGN = ("none", "both")
#: what a learned method's refinement starts from: that start, or that start and the affine start (keeping the better)
REFINE_FROM = ("start", "both")
#: a learned method's options for its network's pass alone, as the paper's method returns it (no refinement, no
#: other start): what the benchmarks and tests compare with the papers; read-only, extend it as ``{**ONE_PASS, ...}``
ONE_PASS = MappingProxyType({"refine": "none", "start": "network", "prealign": "none"})


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), name)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value) if np.iterable(value) else [value]
        return tuple(_coerce(v, args[0], name) for v in items if not (isinstance(v, str) and not v.strip()))
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if annotation in (int, float, str):
            return annotation(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InputError(f"option {name}={value!r} is not a valid {annotation.__name__}") from None
    return value


def options_from_pairs(pairs) -> dict:
    """``["iterations=50,30,10", "image_loss=ncc"]`` -> ``{"iterations": "50,30,10", ...}``; blank items are
    skipped, anything else without ``key=value`` is an :class:`InputError`."""
    options = {}
    for item in pairs or ():
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"option {item.strip()!r} must look like key=value (e.g. iterations=50,30,10)")
        options[key.strip()] = value.strip()
    return options


def parse_options(options_type: type, values: Optional[dict] = None):
    """Build an options dataclass from a dict of (possibly string) values, with clear errors."""
    if values is None:
        return options_type()
    if isinstance(values, options_type):
        return values
    hints = typing.get_type_hints(options_type)
    names = [f.name for f in dataclasses.fields(options_type)]
    kwargs = {}
    for key, value in values.items():
        key_norm = key.replace("-", "_")
        if key_norm not in names:
            raise InputError(f"unknown option {key!r} for this method; valid options: {', '.join(names)}")
        kwargs[key_norm] = _coerce(value, hints[key_norm], key)
    opts = options_type(**kwargs)
    validate = getattr(opts, "validate", None)
    if validate is not None:
        validate()
    return opts


def option_value_text(value) -> str:
    """A value as ``-o KEY=VALUE`` takes it: ``4,2,1`` for a tuple, ``true`` for True, empty for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(option_value_text(v) for v in value)
    return str(value)


def option_descriptions(options_type) -> dict:
    """Option name -> its description, from the ``name: text`` lines of the docstrings of ``options_type``
    and its bases (the ``Args``/``Attributes`` sections), reST markup removed."""
    found = {}
    for cls in reversed(options_type.__mro__):
        name, indent, lines = None, None, {}
        for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
            depth = len(line) - len(line.lstrip())
            match = re.match(r"^\s*(\w+): (.*)$", line)
            if match and depth > 0 and (indent is None or depth == indent):
                name, indent = match.group(1), depth
                lines[name] = [match.group(2)]
            elif name and line.strip() and depth > indent:
                lines[name].append(line.strip())
            else:
                name = None
        found.update({k: re.sub(r"``([^`]+)``", r"\1", " ".join(v)) for k, v in lines.items()})
    return found


@dataclass
class LearnedOptions:
    """Options every learned method shares (see :mod:`learnreg.learned`).

    Attributes:
        refine: ``bspline``: after the network's pass, the shared B-spline optimiser refines the field
            (instance optimisation, from the start that ``start`` chooses, composed with it); ``none``: the one
            pass only (the Fast preset).
        start: ``best``: the result builds on whichever of the network's pass, its pass after the affine
            registration (``prealign``), that affine registration and no deformation leaves the images most
            similar, and says so when it is not the network's pass; ``network``: always on the network's pass
            on the images as given (to study the network alone; the result still says when the pass made the
            images less similar).
        prealign: ``none``: the network sees the images as given (the papers'); ``both``: it also runs on the moving
            image aligned by the affine registration, and that pass, composed with the affine start, is one more
            start (one more network pass). For pairs further apart than the few degrees of affine motion the
            networks were trained on: on the bundled pairs CNNRegress's one pass went from 0.33 to 0.16 of the TRE
            before (brain2d) and from 0.72 to 0.55 (head3d); on the held-out benchmark it was mixed
            (benchmarks/results/heldout_prealign.md), so it is not the default.
        refine_levels: the refinement's pyramid shrink factors, coarse to fine (the control spacing is
            ``bspline``'s: the finest automatic, doubled per coarser level); empty: ``bspline``'s own (``4,2,1``).
            Measured on held-out pairs: ``2,1`` saves a tenth of the time; it lowered the TRE on the oblique
            MR volume of the held-out benchmark (0.69 against 0.98 mm from an affine start) but raised it on
            ``head3d`` (0.40 against 0.32 mm) and for CNNRegress on ``brain2d`` (0.44 against 0.18), so it is
            not the default.
        refine_iterations: the most Adam iterations per refinement level (a level also ends when its loss stops
            falling); empty: ``bspline``'s own; given with ``refine_levels``, one per level.
        refine_from: ``start``: refine the start chosen by ``start``; ``both`` (the Accurate preset): refine the
            affine start as well, when it was not chosen, and keep the refined result that leaves the images more
            similar (twice the refinement time: a pass more similar than the affine start can still refine to
            a worse result, e.g. CNNRegress on head3d 0.43 mm against 0.32 from the affine start).
    """

    refine: str = "bspline"
    start: str = "best"
    prealign: str = "none"
    refine_levels: tuple[float, ...] = ()
    refine_iterations: tuple[int, ...] = ()
    refine_from: str = "start"

    def validate(self) -> None:
        if self.refine not in REFINEMENTS:
            raise InputError(f"refine={self.refine!r} must be one of {', '.join(REFINEMENTS)} "
                             "(bspline: refine the network's field; none: one pass only)")
        if len(self.refine_levels) != len(self.refine_iterations):
            raise InputError(f"give one refine_iterations per refine_levels: refine_levels={self.refine_levels}, "
                             f"refine_iterations={self.refine_iterations} (e.g. refine_levels=2,1 "
                             "refine_iterations=100,50)")
        if any(f < 1 for f in self.refine_levels) or any(n < 0 for n in self.refine_iterations):
            raise InputError("refine_levels must be shrink factors >= 1 (1 = full resolution) and refine_iterations "
                             "counts >= 0")
        if self.refine_from not in REFINE_FROM:
            raise InputError(f"refine_from={self.refine_from!r} must be one of {', '.join(REFINE_FROM)} (start: refine "
                             "the chosen start; both: the affine start too, keeping the more similar result)")
        if self.prealign not in PREALIGN:
            raise InputError(f"prealign={self.prealign!r} must be one of {', '.join(PREALIGN)} (none: the network sees "
                             "the images as given; both: it also runs after the affine start)")
        if self.start not in STARTS:
            raise InputError(f"start={self.start!r} must be one of {', '.join(STARTS)} (best: the most similar of "
                             "the network's passes, an affine registration and no deformation; network: its pass)")
