"""Images in physical space: the voxel grid (size, spacing, origin, direction) and its voxels.

Conventions used throughout learnreg:

* Physical coordinates are **LPS** millimetres (ITK, SimpleITK and ITK transform files); conversion to
  Slicer's RAS happens only at the Slicer boundary (:mod:`learnreg.slicer`).
* A grid maps a voxel index ``(i, j, k)`` to the physical point
  ``origin + direction @ (spacing * (i, j, k))``; ``direction`` is an orthonormal 3x3 matrix whose
  column ``a`` is the physical direction of index axis ``a``.
* Voxel arrays are NumPy arrays in ``(k, j, i)`` order, exactly as ``SimpleITK.GetArrayFromImage``
  and Slicer's ``arrayFromVolume`` return them.
* A 2D image is a single-slice volume (``size[2] == 1``), as Slicer holds it; it has ``ndim == 2`` and
  every operation works on its two in-plane axes.
* The *axis frame* of a grid measures displacements in mm along the grid's index axes
  (``u_axis = direction.T @ u_lps``). Fields and regularisers work in that frame, so spacing is
  accounted for and rotation-invariant quantities are unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learnreg.errors import InputError

#: File name endings that :func:`load_image` and :func:`save_image` accept.
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff")


@dataclass(frozen=True, eq=False)
class Grid:
    """A voxel grid in LPS physical space.

    Attributes:
        size: number of voxels along the index axes ``(i, j, k)``; ``k`` is 1 for a 2D image.
        spacing: voxel spacing in mm along ``(i, j, k)``; all positive.
        origin: LPS position in mm of voxel ``(0, 0, 0)``'s centre.
        direction: 3x3 orthonormal matrix, column ``a`` = LPS direction of index axis ``a``.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.size) != 3 or len(self.spacing) != 3 or len(self.origin) != 3 or len(self.direction) != 9:
            raise InputError("a grid needs 3 sizes, 3 spacings, an origin of 3 and a 3x3 direction")
        if any(int(n) < 1 for n in self.size):
            raise InputError(f"image size {tuple(self.size)} has an empty axis; every axis needs at least one voxel")
        if not all(math.isfinite(s) and s > 0 for s in self.spacing):
            raise InputError(
                f"voxel spacing {tuple(self.spacing)} is not positive; fix the image header (spacing in mm > 0)"
            )
        if not all(math.isfinite(v) for v in (*self.origin, *self.direction)):
            raise InputError("the image origin or direction holds NaN or Inf; fix the image header")
        d = self.direction_matrix
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise InputError(
                "the image direction matrix is not orthonormal (a sheared grid); resample the image onto an "
                "orthogonal grid first"
            )
        if self.size[2] > 1 and (self.size[0] == 1 or self.size[1] == 1):
            raise InputError(
                f"image size {tuple(self.size)} is a single slice along i or j; learnreg handles 2D images as "
                "single-slice volumes along k (the third axis): reorient the slice"
            )

    @classmethod
    def make(cls, size, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> "Grid":
        """Build a grid from sequences; ``direction`` defaults to the identity (axis-aligned LPS)."""
        if direction is None:
            direction = np.eye(3)
        direction = np.asarray(direction, dtype=float).reshape(3, 3)
        return cls(
            tuple(int(n) for n in size),
            tuple(float(s) for s in spacing),
            tuple(float(o) for o in origin),
            tuple(float(v) for v in direction.ravel()),
        )

    # ----------------------------------------------------------------- basic views
    @property
    def ndim(self) -> int:
        """2 for a single-slice image, else 3."""
        return 2 if self.size[2] == 1 else 3

    @property
    def shape(self) -> tuple[int, int, int]:
        """NumPy array shape ``(k, j, i)``."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Torch spatial shape: ``(k, j, i)`` in 3D, ``(j, i)`` in 2D."""
        return self.shape[3 - self.ndim:]

    @property
    def axis_spacing(self) -> tuple[float, ...]:
        """Spacing of the active axes in field-component order ``(i, j[, k])``."""
        return self.spacing[: self.ndim]

    @property
    def num_voxels(self) -> int:
        return int(np.prod(self.size))

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def index_to_physical_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping ``(i, j, k, 1)`` to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    @property
    def extent_mm(self) -> np.ndarray:
        """Distance in mm between the first and last voxel centres along ``(i, j, k)``."""
        return (np.asarray(self.size) - 1) * np.asarray(self.spacing)

    @property
    def centre(self) -> np.ndarray:
        """LPS position of the grid's centre (midway between first and last voxel centres)."""
        return self.index_to_physical((np.asarray(self.size, dtype=float) - 1) / 2)

    # ----------------------------------------------------------------- coordinates
    def index_to_physical(self, index) -> np.ndarray:
        """Continuous index ``(..., 3)`` in ``(i, j, k)`` order to LPS mm ``(..., 3)``."""
        index = np.asarray(index, dtype=float)
        m = self.index_to_physical_matrix
        return index @ m[:3, :3].T + m[:3, 3]

    def physical_to_index(self, points) -> np.ndarray:
        """LPS points ``(..., 3)`` in mm to continuous ``(i, j, k)`` indices."""
        points = np.asarray(points, dtype=float)
        m = self.index_to_physical_matrix
        return (points - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T

    def contains(self, points, margin_voxels: float = 0.5) -> np.ndarray:
        """Whether each LPS point lies inside the grid (within ``margin_voxels`` of the outer centres)."""
        idx = self.physical_to_index(points)
        upper = np.asarray(self.size) - 1 + margin_voxels
        return np.all((idx >= -margin_voxels - 1e-6) & (idx <= upper + 1e-6), axis=-1)

    def axis_coordinates(self) -> list[np.ndarray]:
        """Per active axis ``(i, j[, k])``: voxel positions in mm along that axis from the first voxel."""
        return [np.arange(self.size[a]) * self.spacing[a] for a in range(self.ndim)]

    def physical_points(self) -> np.ndarray:
        """LPS positions of all voxel centres, shape ``(k, j, i, 3)``."""
        k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in self.shape), indexing="ij")
        return self.index_to_physical(np.stack([i, j, k], axis=-1))

    # ----------------------------------------------------------------- derived grids
    def downsampled(self, factor: float) -> "Grid":
        """A coarser grid over the same field of view: first and last voxel centres stay in place.

        Axes of a single voxel stay single; every other axis keeps at least 4 voxels.
        """
        size, spacing = [], []
        for n, s in zip(self.size, self.spacing):
            if n == 1 or factor <= 1:
                size.append(n)
                spacing.append(s)
                continue
            m = max(min(n, 4), int(math.ceil((n - 1) / factor)) + 1)
            size.append(m)
            spacing.append(s * (n - 1) / (m - 1))
        return Grid(tuple(size), tuple(spacing), self.origin, self.direction)

    def same_as(self, other: "Grid", atol: float = 1e-4) -> bool:
        """Whether two grids are the same within ``atol`` (mm for origin and spacing)."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def describe(self) -> dict:
        """JSON-friendly summary (size, spacing in mm, origin in LPS mm, direction row-major)."""
        return {
            "size": list(self.size),
            "spacing_mm": [round(s, 6) for s in self.spacing],
            "origin_lps_mm": [round(o, 6) for o in self.origin],
            "direction": [round(d, 8) for d in self.direction],
        }


@dataclass(frozen=True, eq=False)
class Image:
    """Voxels on a physical grid. ``array`` has shape ``grid.shape`` = ``(k, j, i)``."""

    array: np.ndarray
    grid: Grid

    def __post_init__(self) -> None:
        if tuple(self.array.shape) != self.grid.shape:
            raise InputError(f"voxel array shape {self.array.shape} does not match the grid {self.grid.shape}")

    @property
    def ndim(self) -> int:
        return self.grid.ndim

    def with_array(self, array: np.ndarray) -> "Image":
        """The same grid with other voxels."""
        return Image(np.asarray(array), self.grid)

    def spatial_array(self) -> np.ndarray:
        """Voxels as float32 in torch spatial order: ``(k, j, i)`` in 3D, ``(j, i)`` in 2D."""
        a = np.asarray(self.array, dtype=np.float32)
        return a[0] if self.ndim == 2 else a

    # ----------------------------------------------------------------- SimpleITK
    @classmethod
    def from_sitk(cls, image) -> "Image":
        """Convert a scalar SimpleITK image (2D becomes a single-slice volume)."""
        import SimpleITK as sitk

        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"the image has {image.GetNumberOfComponentsPerPixel()} components per voxel; learnreg registers "
                "scalar (grey-value) images: convert colour or vector images to one channel first"
            )
        dim = image.GetDimension()
        if dim == 4 and image.GetSize()[3] == 1:
            image = image[:, :, :, 0]
            dim = 3
        if dim not in (2, 3):
            raise InputError(f"the image is {dim}D; learnreg registers 2D and 3D images")
        array = sitk.GetArrayFromImage(image)
        spacing = list(image.GetSpacing())
        origin = list(image.GetOrigin())
        direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)
        if dim == 2:
            array = array[None]
            d3 = np.eye(3)
            d3[:2, :2] = direction
            return cls(array, Grid.make((*image.GetSize(), 1), (*spacing, 1.0), (*origin, 0.0), d3))
        return cls(array, Grid.make(image.GetSize(), spacing, origin, direction))

    def to_sitk(self):
        """A 3D SimpleITK image with this image's voxels and geometry (2D stays a single-slice volume)."""
        import SimpleITK as sitk

        out = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        out.SetSpacing(self.grid.spacing)
        out.SetOrigin(self.grid.origin)
        out.SetDirection(self.grid.direction)
        return out


def image_suffix(path: Path) -> str:
    """The file's image suffix (``.nii.gz`` counts as one), lower case."""
    name = path.name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _check_image_path(path: Path, role: str) -> None:
    if path.is_dir():
        raise InputError(f"{role} {path} is a folder, not an image file; give the image file inside it")
    if not path.is_file():
        raise InputError(f"{role} file not found: {path}")
    if image_suffix(path) not in IMAGE_SUFFIXES:
        raise InputError(
            f"{role} file {path.name} is not an image format learnreg reads; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise InputError(f"{role} file {path} is empty (0 bytes); copy or export it again")


#: NIfTI datatype code -> bytes per voxel (the codes ITK reads)
_NIFTI_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8, 1792: 16,
                2304: 4}


def _nifti_payload(path: Path, role: str) -> tuple:
    """``(header bytes, total bytes)`` of a ``.nii`` or ``.nii.gz`` file, decompressed; a gzip stream that ends
    early or is corrupt is an :class:`InputError`."""
    import gzip
    import zlib

    if image_suffix(path) == ".nii":
        with open(path, "rb") as handle:
            return handle.read(540), path.stat().st_size
    total, head = 0, b""
    try:
        with gzip.open(path, "rb") as stream:
            while True:
                chunk = stream.read(1 << 22)
                if not chunk:
                    break
                if len(head) < 540:
                    head += chunk[: 540 - len(head)]
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{role} file {path} is truncated or corrupt ({str(exc).rstrip('.').lower()}); copy or "
                         "export it again") from None
    return head, total


def check_nifti_complete(path, role: str = "image") -> None:
    """Raise :class:`InputError` when a NIfTI file holds fewer voxel bytes than its header describes (ITK reads
    such a file without a word, filling the missing voxels with zeros) or its compression is broken."""
    import struct

    path = Path(path)
    head, total = _nifti_payload(path, role)
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(order + "8h", head[40:56])
            datatype = struct.unpack(order + "h", head[70:72])[0]
            offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:  # NIfTI-2
            datatype = struct.unpack(order + "h", head[12:14])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        raise InputError(f"{role} file {path} has no NIfTI header (it is shorter than one, or not NIfTI); "
                         "copy or export it again")
    count = int(np.prod([max(int(n), 1) for n in dims[1:1 + max(min(int(dims[0]), 7), 0)]], dtype=np.int64))
    expected = max(offset, 348) + count * _NIFTI_BYTES.get(int(datatype), 0)
    if total < expected:
        raise InputError(f"{role} file {path} is truncated: its header describes {expected:,} bytes but the file "
                         f"holds {total:,}; copy or export it again")


def read_image_grid(path, role: str = "image") -> Grid:
    """The geometry of an image file from its header alone (no voxels are read): what memory checks need
    before a large volume is loaded. Raises :class:`InputError` as :func:`load_image` does."""
    import SimpleITK as sitk

    path = Path(path)
    _check_image_path(path, role)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read {role} file {path}: {_itk_reason(exc)}") from None
    dim = reader.GetDimension()
    size, spacing, origin = list(reader.GetSize()), list(reader.GetSpacing()), list(reader.GetOrigin())
    direction = np.asarray(reader.GetDirection(), dtype=float).reshape(dim, dim)
    if dim == 4 and size[3] == 1:
        size, spacing, origin, direction = size[:3], spacing[:3], origin[:3], direction[:3, :3]
        dim = 3
    if dim not in (2, 3):
        raise InputError(f"{role} file {path.name}: the image is {dim}D; learnreg registers 2D and 3D images")
    try:
        if dim == 2:
            d3 = np.eye(3)
            d3[:2, :2] = direction
            return Grid.make((*size, 1), (*spacing, 1.0), (*origin, 0.0), d3)
        return Grid.make(size, spacing, origin, direction)
    except InputError as exc:
        raise InputError(f"{role} file {path.name}: {exc}") from None


def _itk_reason(exc: Exception) -> str:
    """The informative part of an ITK read error: the innermost reader message (NRRD's last line, say
    "expected 480000 bytes but received 239889"), with a hint when the data ended early."""
    import re

    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown") and not line.endswith("trouble")]
    detail = lines[-1] if lines else "unreadable"
    detail = re.sub(r"^\[\w+\] \w+: ", "", re.sub(r"ITK ERROR: \w+\(0x[0-9a-f]+\): ", "", detail))
    if "Unable to determine ImageIO reader" in detail:
        return "no image reader recognises it (it is not an image, or a corrupt one; copy or export it again)"
    if re.search(r"spacing|space vector", detail):
        detail += " (the header's voxel spacing or directions are zero or not numbers; fix the file's header)"
    elif re.search(r"expected|not read completely|fread got only|No such file|cannot be read", detail):
        detail += " (the file or its data file is missing, truncated or corrupt; copy or export it again)"
    return detail[:300]


def load_image(path, role: str = "image") -> Image:
    """Read a NIfTI, NRRD, MHA (or PNG/TIFF) image with its geometry, in LPS.

    Args:
        path: file to read.
        role: what the image is for ("fixed image", ...), used in error messages.

    Raises:
        InputError: the path is missing, a folder, empty, truncated or corrupt, or the image is not scalar
            or not 2D/3D.
    """
    import SimpleITK as sitk

    path = Path(path)
    _check_image_path(path, role)
    if image_suffix(path) in (".nii", ".nii.gz"):
        check_nifti_complete(path, role)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read {role} file {path}: {_itk_reason(exc)}") from None
    try:
        return Image.from_sitk(image)
    except InputError as exc:
        raise InputError(f"{role} file {path.name}: {exc}") from None


def save_image(image: Image, path) -> None:
    """Write an image with its geometry (NIfTI, NRRD or MHA, chosen by the file name)."""
    import SimpleITK as sitk

    path = Path(path)
    if image_suffix(path) not in IMAGE_SUFFIXES:
        raise InputError(f"cannot write {path.name}: use one of {', '.join(IMAGE_SUFFIXES)}")
    sitk.WriteImage(image.to_sitk(), str(path), useCompression=True)


def check_intensity_image(image: Image, role: str) -> None:
    """Raise :class:`InputError` for NaN/Inf voxels or a constant image."""
    a = np.asarray(image.array)
    if not np.issubdtype(a.dtype, np.number):
        raise InputError(f"{role} has non-numeric voxels ({a.dtype})")
    finite = np.isfinite(a)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(f"{role} has {bad} NaN or Inf voxels; replace them (e.g. with 0) before registering")
    if float(a.max()) == float(a.min()):
        raise InputError(f"{role} is constant (every voxel is {float(a.min()):g}); there is nothing to register")


def check_pair(fixed: Image, moving: Image) -> None:
    """Raise :class:`InputError` when two images cannot be registered to each other."""
    check_intensity_image(fixed, "fixed image")
    check_intensity_image(moving, "moving image")
    if fixed.ndim != moving.ndim:
        raise InputError(
            f"fixed image is {fixed.ndim}D but moving image is {moving.ndim}D; register images of the same "
            "dimensionality (a 2D image is a single-slice volume)"
        )
    if fixed.ndim == 2:
        corners = fixed.grid.index_to_physical(
            [[0, 0, 0], [fixed.grid.size[0] - 1, 0, 0], [0, fixed.grid.size[1] - 1, 0]]
        )
        k = moving.grid.physical_to_index(corners)[:, 2]
        if np.any(np.abs(k) > 0.5):
            raise InputError(
                "the fixed and moving 2D slices lie in different planes; give both the same slice plane "
                "(origin and direction) before registering"
            )


# ----------------------------------------------------------------- intensity normalisation
def normalise_zscore(array: np.ndarray, clamp: float | None = 2.0) -> np.ndarray:
    """Zero mean, unit standard deviation, then clamped to ``[-clamp, clamp]`` (R2N2's preprocessing)."""
    a = np.asarray(array, dtype=np.float32)
    std = float(a.std())
    out = (a - float(a.mean())) / (std if std > 0 else 1.0)
    return np.clip(out, -clamp, clamp) if clamp is not None else out


def normalise_percentile(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the ``[low, high]`` percentile range to ``[0, 1]`` and clip outside it."""
    a = np.asarray(array, dtype=np.float32)
    lo, hi = np.percentile(a, [low, high])
    if hi <= lo:
        lo, hi = float(a.min()), float(a.max())
    scale = (hi - lo) if hi > lo else 1.0
    return np.clip((a - lo) / scale, 0.0, 1.0).astype(np.float32)


def normalise(image: Image, method: str = "percentile") -> Image:
    """Intensity-normalised copy: ``"percentile"`` (to [0, 1]), ``"zscore"`` (clamped) or ``"none"``."""
    if method == "percentile":
        return image.with_array(normalise_percentile(image.array))
    if method == "zscore":
        return image.with_array(normalise_zscore(image.array))
    if method == "none":
        return image.with_array(np.asarray(image.array, dtype=np.float32))
    raise InputError(f"unknown intensity normalisation {method!r}; use percentile, zscore or none")
