"""A bank of real images on a network's working grid, from which training pairs are drawn.

Images are read with :func:`learnreg.image.load_image` (NIfTI, NRRD, MHA, PNG ...). For a 2D bank, 3D
volumes are cut into slices along each of their axes (every ``slice_step_mm``, keeping slices whose
foreground covers at least ``min_foreground`` of the slice); for a 3D bank each volume is used whole and,
optionally, as a few random sub-volumes. Every entry is percentile-normalised and brought onto its own
working grid by the same functions inference uses, so training sees what inference will see. Label maps,
when given, become structure-of-interest maps cut and resampled with their images (ISTN's training). A
training bank can also hold images drawn from random label maps (:meth:`ImageBank.synthesized`).

With ``[data] bank_folder`` the banks built from files are stored there (:func:`stored_bank`) and reused by
later runs with the same images and settings, also where the image files, or SimpleITK, are not: a lent GPU
machine takes the folder instead of the images.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from learnreg.errors import InputError
from learnreg.image import Grid, Image, load_image, normalise
from learnreg.model_files import atomic_write, file_sha256
from learnreg.training.held_out import check_not_held_out
from learnreg.training.label_synthesis import DEFAULT_LABELS, label_map_image, random_label_map


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Files matched by ``patterns`` (globs allowed), sorted; :class:`InputError` when one matches nothing or
    matches a held-out evaluation image (:mod:`learnreg.training.held_out`)."""
    paths: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        found = [p for p in found if Path(p).is_file()]
        if not found:
            raise InputError(f"training data {pattern!r} matches no file; fix the path in the [data] section")
        for p in found:
            check_not_held_out(Path(p))
        paths.extend(Path(p) for p in found)
    return paths


def _slice_positions(image: Image, step_mm: float, min_foreground: float) -> list[tuple[int, int]]:
    """``(axis, index)`` of the slices to cut from a 3D volume: along each array axis ``(k, j, i)`` every
    ``step_mm``, keeping slices whose foreground covers at least ``min_foreground`` of the slice."""
    array = np.asarray(image.array, dtype=np.float32)  # (k, j, i)
    threshold = np.percentile(array, 5) + 0.1 * (np.percentile(array, 99) - np.percentile(array, 5))
    spacing_kji = list(reversed(image.grid.spacing))
    positions = []
    for axis in range(3):
        step = max(1, int(round(step_mm / spacing_kji[axis])))
        for index in range(0, array.shape[axis], step):
            if (np.take(array, index, axis=axis) > threshold).mean() >= min_foreground:
                positions.append((axis, index))
    return positions


def volume_slice(image: Image, axis: int, index: int, dtype=None) -> Image:
    """Slice ``index`` of a volume along array axis ``axis`` (0 = k) as a 2D image with identity geometry and
    the in-plane spacing; voxel type kept unless ``dtype`` is given."""
    plane = np.take(np.asarray(image.array, dtype=dtype), index, axis=axis)
    in_plane = [s for a, s in enumerate(reversed(image.grid.spacing)) if a != axis]  # (row, column)
    return Image(plane[None], Grid.make((plane.shape[1], plane.shape[0], 1), (in_plane[1], in_plane[0], 1.0)))


def _crop_boxes(shape, count: int, rng: np.random.Generator, smallest: float = 0.7) -> list[tuple[list, list]]:
    """``count`` random boxes ``(lo, hi)`` (array order) covering ``smallest`` to all of each axis."""
    boxes = []
    for _ in range(count):
        lo, hi = [], []
        for n in shape:
            length = max(8, int(round(n * rng.uniform(smallest, 1.0))))
            start = int(rng.integers(0, n - length + 1))
            lo.append(start)
            hi.append(start + length)
        boxes.append((lo, hi))
    return boxes


def _crop(image: Image, lo, hi) -> Image:
    sub = np.asarray(image.array)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    origin = image.grid.index_to_physical(np.array([lo[2], lo[1], lo[0]], dtype=float))
    return Image(sub, Grid(tuple(reversed(sub.shape)), image.grid.spacing, tuple(origin), image.grid.direction))


def _cutters(image: Image, ndim: int, slice_step_mm: float, min_foreground: float, crops: int,
             rng: np.random.Generator) -> list[Callable[[Image], Image]]:
    """The pieces one file gives a bank, as functions applied alike to the image and its structure maps."""
    if ndim == 2:
        if image.ndim == 2:
            return [lambda im: im]
        return [lambda im, a=a, i=i: volume_slice(im, a, i, np.float32) for a, i in _slice_positions(image, slice_step_mm,
                                                                                     min_foreground)]
    return [lambda im: im] + [lambda im, lo=lo, hi=hi: _crop(im, lo, hi)
                              for lo, hi in _crop_boxes(image.array.shape, crops, rng)]


def structure_arrays(values: np.ndarray, structure_labels: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """One binary array (0/1 floats) per structure of interest: the union of its label values in ``values``."""
    return [np.isin(values, list(group)).astype(np.float32) for group in structure_labels]


def structure_maps(labels: Image, structure_labels: Sequence[Sequence[int]]) -> list[Image]:
    """One binary map (0/1 floats) per structure of interest: the union of its label values."""
    return [Image(array, labels.grid) for array in structure_arrays(np.asarray(labels.array), structure_labels)]


@dataclass
class ImageBank:
    """Images ``(N, 1 + S, *[size] * ndim)`` on their working grids: channel 0 the intensities in [0, 1],
    then ``S`` structure-of-interest maps (soft, in [0, 1]) when the bank was built with label maps; with
    their names and the working grids' voxel spacing (mm), ``(N,)``."""

    images: torch.Tensor
    names: list[str]
    spacing_mm: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def structures(self) -> int:
        """Structure-of-interest channels per entry (0 without label maps)."""
        return self.images.shape[1] - 1

    @classmethod
    def build(cls, patterns: Sequence[str], ndim: int, working_grid: Callable[[Grid], Grid],
              to_working: Callable[[Image, Grid], torch.Tensor], *,
              slice_step_mm: float = 4.0, min_foreground: float = 0.25, crops_per_volume: int = 0,
              label_files: Sequence[str] = (), structure_labels: Sequence[Sequence[int]] = (),
              seed: int = 0) -> "ImageBank":
        """Read every file matched by ``patterns`` and bring its 2D slices or 3D volumes onto working grids.

        With ``label_files`` (one per matched image, in the same order, on the same grid) each entry also
        carries one map per group of label values in ``structure_labels``, cut and resampled alike.
        """
        rng = np.random.default_rng(seed)
        paths = expand_paths(patterns)
        label_paths = expand_paths(label_files) if label_files else []
        if label_files and len(label_paths) != len(paths):
            raise InputError(f"{len(label_paths)} label maps for {len(paths)} images; give one label map per image, "
                             "in the same order")
        if label_files and not structure_labels:
            raise InputError("label maps need structure_labels: the label values of each structure of interest")
        tensors, names, spacings = [], [], []
        for n_file, path in enumerate(paths):
            image = load_image(path)
            if ndim == 3 and image.ndim != 3:
                raise InputError(f"{path} is 2D; a 3D training bank needs volumes")
            maps = []
            if label_paths:
                labels = load_image(label_paths[n_file], role="label map")
                if labels.grid.size != image.grid.size:
                    raise InputError(f"label map {label_paths[n_file]} has size {labels.grid.size} but its image "
                                     f"{path} has {image.grid.size}; each label map must share its image's grid")
                labels = Image(labels.array, image.grid)
                maps = structure_maps(labels, structure_labels)
            for n, cut in enumerate(_cutters(image, ndim, slice_step_mm, min_foreground, crops_per_volume, rng)):
                entry = cut(image)
                grid = working_grid(entry.grid)
                channels = [to_working(normalise(entry), grid)[0]] + [to_working(cut(m), grid)[0] for m in maps]
                tensors.append(torch.cat(channels).float())
                names.append(f"{path.name}#{n}")
                spacings.append(grid.spacing[0])
        if not tensors:
            raise InputError(f"no usable images in {list(patterns)}; check the [data] section")
        return cls(torch.stack(tensors).half(), names, torch.tensor(spacings))

    @classmethod
    def synthesized(cls, count: int, ndim: int, size: int, spacing_mm: float, *, labels: int = DEFAULT_LABELS,
                    structure_labels: Sequence[Sequence[int]] = (), seed: int = 0) -> "ImageBank":
        """``count`` images drawn from random label maps (:mod:`learnreg.training.label_synthesis`) of
        ``size`` voxels per axis, said to have working voxels of ``spacing_mm``, with their structure maps."""
        rng = np.random.default_rng([seed, 20])
        tensors = []
        for _ in range(count):
            label_map = random_label_map((size,) * ndim, labels, rng)
            channels = [label_map_image(label_map, rng)] + structure_arrays(label_map, structure_labels)
            tensors.append(torch.from_numpy(np.stack(channels)))
        return cls(torch.stack(tensors).half(), [f"label-synthesis#{n}" for n in range(count)],
                   torch.full((count,), float(spacing_mm)))

    def save(self, path: Path, description: dict, sources: dict[str, str]) -> None:
        """Write the bank, gzip-compressed (a third of its size: the background is mostly zeros), whole or not at
        all, with what it was built from: ``description`` (the settings) and ``sources`` (file name -> SHA-256)."""
        content = {"images": self.images, "names": self.names, "spacing_mm": self.spacing_mm,
                   "description": json.dumps(description, sort_keys=True), "sources": sources}
        buffer = io.BytesIO()
        torch.save(content, buffer)
        atomic_write(path, lambda tmp: tmp.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=1, mtime=0)))

    @classmethod
    def load(cls, path: Path) -> tuple["ImageBank", dict[str, str]]:
        """A bank written by :meth:`save` (read without running code) and its ``sources``."""
        content = torch.load(io.BytesIO(gzip.decompress(path.read_bytes())), map_location="cpu", weights_only=True)
        return cls(content["images"], list(content["names"]), content["spacing_mm"]), dict(content["sources"])

    def __add__(self, other: "ImageBank") -> "ImageBank":
        """Both banks' entries in one bank (same channels and working size)."""
        if self.images.shape[1:] != other.images.shape[1:]:
            raise ValueError(f"banks of entries {tuple(self.images.shape[1:])} and {tuple(other.images.shape[1:])} "
                             "cannot be joined")
        return ImageBank(torch.cat([self.images, other.images]), self.names + other.names,
                         torch.cat([self.spacing_mm, other.spacing_mm]))


#: bumped when :meth:`ImageBank.build` changes what it makes from the same files and settings
BANK_VERSION = 1


def stored_bank(folder: Path, description: dict, files: Sequence[str], build: Callable[[], ImageBank]) -> ImageBank:
    """The bank ``build()`` makes, stored in ``folder`` under a name derived from ``description`` (the settings
    and file names it is built with).

    Where the ``files`` (globs allowed) are here, their SHA-256 must match the stored bank's sources or the bank
    is built and stored again; where none is (a GPU machine that took the folder instead), the stored bank is used
    as it is. Either way a stored bank's files were checked against the held-out images when it was built (the
    same content, by its hashes). :class:`InputError` when neither files nor bank are there.
    """
    key = hashlib.sha256(json.dumps({**description, "version": BANK_VERSION}, sort_keys=True).encode()).hexdigest()
    path = folder / f"bank-{key[:16]}.pt.gz"
    present = [Path(p) for pattern in files for p in sorted(glob.glob(pattern)) if Path(p).is_file()]
    if not present:
        if not path.is_file():
            raise InputError(f"neither the images {', '.join(Path(f).name for f in files)} nor a bank built from "
                             f"them ({path.name}) are in {folder}; run once where the images are, with the same "
                             "[data] settings, and bring the bank folder along")
        return ImageBank.load(path)[0]
    sources = {p.name: file_sha256(p) for p in present}
    if path.is_file():
        bank, stored_sources = ImageBank.load(path)
        if stored_sources == sources:
            return bank
    bank = build()
    bank.save(path, description, sources)
    return bank


@dataclass
class DataSettings:
    """The ``[data]`` section: training and validation image files (globs allowed; 3D volumes give slices for a
    2D model), the slice spacing and foreground threshold for slicing, random sub-volumes per 3D volume, and
    images drawn from random label maps added to the training bank (``synthetic_count`` of
    ``synthetic_labels`` labels; :mod:`learnreg.training.label_synthesis`; validation stays real), and
    ``bank_folder``, where the banks built from the files are stored for later runs (:func:`stored_bank`;
    empty: built every run)."""

    images: tuple[str, ...] = ()
    validation_images: tuple[str, ...] = ()
    slice_step_mm: float = 4.0
    min_foreground: float = 0.25
    crops_per_volume: int = 0
    synthetic_count: int = 0
    synthetic_labels: int = DEFAULT_LABELS
    bank_folder: str = ""

    def validate(self) -> None:
        if not self.images or not self.validation_images:
            raise InputError("both images and validation_images need at least one file")
        if self.synthetic_count < 0 or not 2 <= self.synthetic_labels <= 64:
            raise InputError("synthetic_count must be 0 or more and synthetic_labels between 2 and 64")

    def label_options(self, validation: bool) -> dict:
        """Extra :meth:`ImageBank.build` arguments for the training or validation bank (none here)."""
        return {}

    def build_banks(self, ndim: int, working_size: int) -> tuple[ImageBank, ImageBank]:
        """The training and the validation bank on working grids of ``working_size`` voxels per axis."""
        from learnreg.working import to_working, working_grid

        def bank(patterns, validation: bool) -> ImageBank:
            options = dict(slice_step_mm=self.slice_step_mm, min_foreground=self.min_foreground,
                           crops_per_volume=self.crops_per_volume, seed=int(validation), **self.label_options(validation))

            def build() -> ImageBank:
                return ImageBank.build(patterns, ndim, lambda g: working_grid(g, working_size), to_working, **options)

            if not self.bank_folder:
                return build()
            files = [*patterns, *options.get("label_files", ())]
            description = {"ndim": ndim, "working_size": working_size, **options,
                           "images": [Path(p).name for p in patterns],
                           "label_files": [Path(p).name for p in options.get("label_files", ())]}
            return stored_bank(Path(self.bank_folder), description, files, build)

        train = bank(self.images, False)
        if self.synthetic_count:
            train = train + ImageBank.synthesized(
                self.synthetic_count, ndim, working_size, float(train.spacing_mm.median()),
                labels=self.synthetic_labels, structure_labels=self.label_options(False).get("structure_labels", ()))
        return train, bank(self.validation_images, True)

    def card_entry(self, train_bank: ImageBank, val_bank: ImageBank, validation_pairs: int, working_size: int,
                   pairs) -> dict:
        """The model card's ``data`` entry: file names, bank sizes (training entries include the synthesized
        ones), the working size and the pair settings."""
        entry = {"training_images": [Path(p).name for p in self.images], "training_entries": len(train_bank),
                 "validation_images": [Path(p).name for p in self.validation_images],
                 "validation_entries": len(val_bank), "validation_pairs": validation_pairs,
                 "working_size": working_size, "pairs": dataclasses.asdict(pairs)}
        if self.synthetic_count:
            entry["label_synthesis"] = {"images": self.synthetic_count, "labels": self.synthetic_labels}
        return entry


@dataclass
class StructureDataSettings(DataSettings):
    """The ``[data]`` section: :class:`DataSettings` plus one label map per image
    (``label_images``, ``validation_label_images``; same order, same grid) and the label values of each
    structure of interest (``structure_labels``, e.g. ``[[1], [2, 3]]``: two structures, the second the
    union of labels 2 and 3)."""

    label_images: tuple[str, ...] = ()
    validation_label_images: tuple[str, ...] = ()
    structure_labels: tuple[tuple[int, ...], ...] = ()

    def validate(self) -> None:
        super().validate()
        if not self.label_images or not self.validation_label_images or not self.structure_labels:
            raise InputError("this training needs label_images, validation_label_images and structure_labels: "
                             "it is evaluated on structures of interest (and may train on them)")

    def label_options(self, validation: bool) -> dict:
        return {"label_files": self.validation_label_images if validation else self.label_images,
                "structure_labels": self.structure_labels}

    def card_entry(self, train_bank: ImageBank, val_bank: ImageBank, validation_pairs: int, working_size: int,
                   pairs) -> dict:
        """:meth:`DataSettings.card_entry` plus the label map names and the structures' label values."""
        return {**super().card_entry(train_bank, val_bank, validation_pairs, working_size, pairs),
                "training_label_images": [Path(p).name for p in self.label_images],
                "structure_labels": [list(g) for g in self.structure_labels]}
