"""Trained weights on disk: a ``.pt`` file loaded without running code, checked against its model card.

A model is two files side by side:

- ``<name>.pt``: a dict of tensors and plain values written by ``torch.save`` and read back with
  ``torch.load(..., weights_only=True)`` (no pickled code is ever executed);
- ``<name>.card.json``: the machine-readable model card. It holds ``format_version``, the weights'
  ``sha256``, the method, and the training record (data, steps, wall time, hardware, metrics), from which
  the human-readable ``<name>.md`` is written.

:func:`load_model_file` refuses a missing file, a hash that differs from the card (a corrupt or replaced
file) and a format version this release cannot read, each with a message naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import torch

from learnreg.errors import InputError

#: the weights-file layout this release writes and reads
FORMAT_VERSION = 1
#: how a weights file may store its floating-point tensors (``load_state_dict`` casts them back to the
#: network's float32 parameters)
STORAGE_PRECISIONS = {"float32": torch.float32, "float16": torch.float16}
#: network configuration fields that set the working grid's size alone: weights may be fine-tuned where only these
#: differ and every parameter keeps its shape (a network trained on a coarser grid, fine-tuned on a finer one)
RESOLUTION_FIELDS = ("working_size",)
#: where the shipped models live
MODELS_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"


def card_path(weights_path: Path) -> Path:
    """``foo.pt`` -> ``foo.card.json``."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.stem + ".card.json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write) -> None:
    """Create ``path`` whole or not at all: ``write(tmp)`` fills a temporary file beside it, which then
    replaces ``path``; on any failure the temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model_file(path, payload: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
    """Write the weights and their card (each atomically); returns the card as written.

    ``payload`` must hold only tensors and plain values (what ``weights_only`` loading accepts); ``card``
    gains ``format_version``, ``weights_file`` and ``sha256``.
    """
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save({"format_version": FORMAT_VERSION, **payload}, tmp))
    card = {**card, "format_version": FORMAT_VERSION, "weights_file": path.name, "sha256": file_sha256(path)}
    atomic_write(card_path(path), lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"))
    return card


def read_card(path) -> dict[str, Any]:
    """The model card of weights file ``path``; :class:`InputError` when it is missing or unreadable."""
    card_file = card_path(Path(path))
    if not card_file.is_file():
        raise InputError(f"model card {card_file} is missing; every weights file needs its .card.json next to it "
                         "(reinstall LearnReg, or retrain with 'learnreg train')")
    try:
        return json.loads(card_file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"model card {card_file} cannot be read ({exc}); reinstall LearnReg or retrain") from None


def load_model_file(path, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(payload, card)`` of a weights file after checking it against its card.

    Raises:
        InputError: the file or card is missing, the hash differs from the card's, the format version is not
            :data:`FORMAT_VERSION`, or the weights belong to another method.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist; pass an existing .pt file (shipped ones are in "
                         f"{MODELS_DIR}) or train one with 'learnreg train {method} --config FILE'")
    card = read_card(path)
    if card.get("format_version") != FORMAT_VERSION:
        raise InputError(f"weights file {path} has format version {card.get('format_version')!r}; this LearnReg "
                         f"reads version {FORMAT_VERSION}: retrain it with this release or use a matching LearnReg")
    if card.get("method") != method:
        raise InputError(f"weights file {path} is a {card.get('method')!r} model, not {method!r}; "
                         "choose weights trained for this method")
    actual = file_sha256(path)
    if actual != card.get("sha256"):
        raise InputError(f"weights file {path} is corrupt or was replaced: its SHA-256 {actual[:12]}... differs from "
                         f"the model card's {str(card.get('sha256'))[:12]}...; reinstall it or retrain")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        raise InputError(f"weights file {path} cannot be read safely ({type(exc).__name__}); reinstall or retrain "
                         "it") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise InputError(f"weights file {path} does not hold format version {FORMAT_VERSION} weights; retrain it")
    return payload, card


class StoredConfig:
    """Mixin for a network's configuration dataclass: plain values for the weights file and back (tuples are
    stored as lists, since ``weights_only`` loading reads plain types only)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class SavedNetwork(ABC):
    """A trained network with what inference needs to know about its training, stored as a checked weights file.

    Subclasses set :attr:`method`, put their extra plain values in :meth:`settings` and rebuild themselves
    in :meth:`from_payload`; the payload holds the method, the network's configuration (``config.as_dict()``),
    those settings and the ``state_dict``.
    """

    method: ClassVar[str]

    def __init__(self, network: torch.nn.Module, card: dict | None = None) -> None:
        self.network = network
        self.card = card or {}

    def settings(self) -> dict[str, Any]:
        """Plain values stored beside the configuration (none by default)."""
        return {}

    def payload(self, precision: str = "float32") -> dict[str, Any]:
        """What goes into the weights file (tensors and plain values only), floating-point tensors in
        ``precision`` (a key of :data:`STORAGE_PRECISIONS`)."""
        dtype = STORAGE_PRECISIONS[precision]
        return {"method": self.method, "network": self.network.config.as_dict(), **self.settings(),
                "state_dict": {k: v.detach().cpu().to(dtype) if v.is_floating_point() else v.detach().cpu()
                               for k, v in self.network.state_dict().items()}}

    def save(self, path, card: dict, precision: str = "float32") -> dict:
        """Write weights (floating-point tensors stored in ``precision``) and model card; returns the card."""
        return save_model_file(path, self.payload(precision),
                               {"method": self.method, **card, "weights_precision": precision})

    @classmethod
    @abstractmethod
    def from_payload(cls, payload: dict, card: dict | None = None) -> "SavedNetwork":
        """Rebuild the model from a payload written by :meth:`payload`."""

    @classmethod
    def load(cls, path) -> "SavedNetwork":
        """Load checked weights (see :func:`load_model_file`)."""
        payload, card = load_model_file(path, cls.method)
        return cls.from_payload(payload, card)

    @classmethod
    def copy_into(cls, path, network: torch.nn.Module) -> None:
        """Start ``network`` from the checked weights at ``path`` (fine-tuning): an :class:`InputError` when
        they are not this method's or their network is configured differently. Only the working grid's size
        (:data:`RESOLUTION_FIELDS`) may differ, where every parameter keeps its shape: fine-tuning a network on a
        finer grid than it was trained on."""
        saved = cls.load(path).network
        if saved.config != network.config:
            mine = network.config.as_dict()
            differ = sorted(k for k, v in saved.config.as_dict().items() if mine.get(k) != v)
            shapes = {k: v.shape for k, v in network.state_dict().items()}
            same_shapes = shapes == {k: v.shape for k, v in saved.state_dict().items()}
            if not same_shapes or set(differ) - set(RESOLUTION_FIELDS):
                raise InputError(f"weights {path} were trained with another network ({', '.join(differ)} differ "
                                 "from this configuration's [model]); set [model] as in their model card, or train "
                                 "from scratch (leave initial_weights_path empty)")
        network.load_state_dict(saved.state_dict())

    @classmethod
    def cached(cls, path) -> "SavedNetwork":
        """:meth:`load`, once per file version and process (registrars call this for every registration)."""
        path = Path(path)
        key = (cls.method, str(path), path.stat().st_mtime if path.is_file() else 0.0)
        if key not in _LOADED:
            _LOADED[key] = cls.load(path)
        return _LOADED[key]


    @property
    def ndim(self) -> int:
        return self.network.config.ndim

    @classmethod
    def for_images(cls, path, ndim: int) -> "SavedNetwork":
        """:meth:`cached`, refusing weights trained for images of another dimension."""
        model = cls.cached(path)
        if model.ndim != ndim:
            raise InputError(f"weights {path} are for {model.ndim}D images but the images are {ndim}D; choose "
                             f"{model.ndim}D images or {ndim}D weights (leave 'weights' empty for the shipped ones)")
        return model

    @classmethod
    def chosen(cls, weights: str, shipped: Path, ndim: int, what: str, fix: str) -> "SavedNetwork":
        """What a registrar runs: the weights file it was given (``weights``, a path) or else the ``shipped``
        weights for its images' dimension (:meth:`for_images`). No shipped file is an :class:`InputError`
        naming ``what`` was looked for and the ``fix``."""
        if weights:
            return cls.for_images(Path(weights), ndim)
        if not shipped.is_file():
            raise InputError(f"no shipped {ndim}D {what} ({shipped.name}); {fix}")
        return cls.for_images(shipped, ndim)


_LOADED: dict[tuple, SavedNetwork] = {}
