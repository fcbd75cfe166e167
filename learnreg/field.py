"""Dense displacement fields in mm on the fixed grid, pull direction.

A :class:`DisplacementField` holds, for every fixed voxel centre ``x`` (LPS mm), the displacement
``u(x)`` in LPS mm such that ``x`` corresponds to the moving point ``x + u(x)``. This is ITK's
resampling convention: written as a ``DisplacementFieldTransform`` (``.h5``), SimpleITK's
``TransformPoint(x)`` returns ``x + u(x)`` and ``Resample(moving, fixed, transform)`` reproduces the
warped image; in Slicer it is a grid transform stored *FromParent*.

In a 2D (single-slice) field the component along the slice normal is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learnreg.errors import InputError
from learnreg.image import Grid, Image

TRANSFORM_SUFFIXES = (".h5", ".hdf5", ".tfm", ".txt")
FIELD_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True, eq=False)
class DisplacementField:
    """A pull displacement field.

    Attributes:
        vectors: ``(k, j, i, 3)`` float array, LPS displacement in mm at each voxel centre.
        grid: the fixed grid the field lives on.
    """

    vectors: np.ndarray
    grid: Grid

    def __post_init__(self) -> None:
        if tuple(self.vectors.shape) != (*self.grid.shape, 3):
            raise InputError(f"field shape {self.vectors.shape} does not match grid {self.grid.shape} x 3")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def identity(cls, grid: Grid) -> "DisplacementField":
        return cls(np.zeros((*grid.shape, 3)), grid)

    @classmethod
    def from_axis_tensor(cls, field: torch.Tensor, grid: Grid) -> "DisplacementField":
        """From a torch field ``(1, ndim, *spatial)`` (or ``(ndim, *spatial)``) in mm along the grid axes."""
        t = field.detach().to("cpu", torch.float64)
        if t.dim() == grid.ndim + 2:
            t = t[0]
        axis = t.movedim(0, -1).numpy()  # (*spatial, ndim)
        if grid.ndim == 2:
            axis = np.concatenate([axis, np.zeros((*axis.shape[:-1], 1))], axis=-1)[None]
        vectors = axis @ grid.direction_matrix.T
        return cls(vectors, grid)

    def to_axis_tensor(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Torch field ``(1, ndim, *spatial)`` in mm along the grid axes, components ``(i, j[, k])``."""
        axis = self.vectors @ self.grid.direction_matrix  # LPS -> axis frame
        nd = self.grid.ndim
        if nd == 2:
            axis = axis[0]
        return torch.as_tensor(axis[..., :nd], dtype=dtype, device=device).movedim(-1, 0).unsqueeze(0).contiguous()

    # ----------------------------------------------------------------- evaluation
    def _interpolate(self, points) -> np.ndarray:
        """Linear interpolation of the field at LPS points ``(N, 3)``; outside, the nearest border value."""
        from scipy.ndimage import map_coordinates

        coords = self.grid.physical_to_index(np.atleast_2d(np.asarray(points, dtype=float)))[:, ::-1].T
        return np.stack([map_coordinates(self.vectors[..., c], coords, order=1, mode="nearest")
                         for c in range(3)], axis=-1)

    def at_points(self, points) -> np.ndarray:
        """Linearly interpolated displacement (LPS mm) at LPS points ``(N, 3)``; zero outside the grid, as ITK."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        out = self._interpolate(points)
        out[~self.grid.contains(points, margin_voxels=0.0)] = 0.0
        return out

    def transform_points(self, points) -> np.ndarray:
        """Map fixed LPS points to moving LPS points: ``x + u(x)``."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        return points + self.at_points(points)

    def magnitude(self) -> np.ndarray:
        """Displacement length in mm, ``(k, j, i)``."""
        return np.linalg.norm(self.vectors, axis=-1)

    def jacobian_determinant(self) -> np.ndarray:
        """``det(I + du/dx)`` at every voxel, ``(k, j, i)`` (central differences, one-sided at the border)."""
        return jacobian_determinant(self.to_axis_tensor(dtype=torch.float64), self.grid.axis_spacing)[0].numpy() \
            .reshape(self.grid.shape)

    # ----------------------------------------------------------------- composition
    def compose(self, then: "DisplacementField") -> "DisplacementField":
        """The field that warps with ``self`` first and then warps that result with ``then``.

        Both fields must live on the same grid. Warping an image ``M`` with ``self`` gives
        ``W(x) = M(x + a(x))``; warping ``W`` with ``then`` gives ``M(x + b(x) + a(x + b(x)))``, so the
        composed displacement is ``b(x) + a(x + b(x))``.
        """
        if not self.grid.same_as(then.grid):
            raise InputError("fields to compose must be on the same grid")
        points = self.grid.physical_points().reshape(-1, 3)
        b = then.vectors.reshape(-1, 3)
        a_at = self._interpolate(points + b)  # points pulled outside take the border value
        return DisplacementField((b + a_at).reshape(self.vectors.shape), self.grid)

    # ----------------------------------------------------------------- ITK / files
    def to_sitk_image(self):
        """A SimpleITK vector image (float64, LPS mm) on the fixed grid."""
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(self.vectors, dtype=np.float64), isVector=True)
        img.SetSpacing(self.grid.spacing)
        img.SetOrigin(self.grid.origin)
        img.SetDirection(self.grid.direction)
        return img

    def to_sitk_transform(self):
        """A SimpleITK ``DisplacementFieldTransform`` (resampling direction, LPS)."""
        import SimpleITK as sitk

        return sitk.DisplacementFieldTransform(self.to_sitk_image())

    @classmethod
    def from_sitk_image(cls, image) -> "DisplacementField":
        """From a SimpleITK vector image with 3 (or 2 for a 2D image) LPS components per voxel."""
        import SimpleITK as sitk

        ncomp = image.GetNumberOfComponentsPerPixel()
        dim = image.GetDimension()
        if ncomp != dim:
            raise InputError(f"a displacement field needs {dim} components per voxel, this one has {ncomp}")
        scalar = sitk.VectorIndexSelectionCast(image, 0)
        grid = Image.from_sitk(scalar).grid
        vectors = sitk.GetArrayFromImage(image).astype(np.float64)
        if dim == 2:  # 2D components are physical (x, y); the slice lies in the z = 0 plane
            vectors = np.concatenate([vectors, np.zeros((*vectors.shape[:-1], 1))], axis=-1)[None]
        return cls(vectors, grid)

    def save(self, path) -> None:
        """Write as an ITK transform (``.h5``/``.tfm``) or as a vector image (``.nii.gz``, ``.nrrd``, ``.mha``)."""
        import SimpleITK as sitk

        path = Path(path)
        name = path.name.lower()
        if name.endswith(TRANSFORM_SUFFIXES):
            sitk.WriteTransform(self.to_sitk_transform(), str(path))
        elif name.endswith(FIELD_IMAGE_SUFFIXES):
            sitk.WriteImage(self.to_sitk_image(), str(path), useCompression=True)
        else:
            raise InputError(f"cannot write a field to {path.name}: use .h5, .tfm, .nii.gz, .nrrd or .mha")


def load_field(path, reference: Grid | None = None) -> DisplacementField:
    """Read a displacement field from an ITK transform file or a vector image.

    A transform file holding a ``DisplacementFieldTransform`` is read as its field; any other ITK
    transform (affine, B-spline, composite) needs ``reference`` and is sampled on that grid.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError(f"field file not found: {path}")
    name = path.name.lower()
    try:
        if name.endswith(FIELD_IMAGE_SUFFIXES):
            return DisplacementField.from_sitk_image(sitk.ReadImage(str(path)))
        if not name.endswith(TRANSFORM_SUFFIXES):
            raise InputError(f"{path.name} is neither an ITK transform (.h5, .tfm) nor a field image (.nii.gz, .nrrd)")
        transform = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read field file {path}: {str(exc).strip().splitlines()[-1][:200]}") from None
    if transform.GetName() == "CompositeTransform" and sitk.CompositeTransform(transform).GetNumberOfTransforms() == 1:
        transform = sitk.CompositeTransform(transform).GetNthTransform(0)
    if transform.GetName() == "DisplacementFieldTransform":
        return DisplacementField.from_sitk_image(sitk.DisplacementFieldTransform(transform).GetDisplacementField())
    if reference is None:
        raise InputError(f"{path.name} holds a {transform.GetName()}; give a reference image to sample it on")
    return field_from_transform(transform, reference)


def field_from_transform(transform, reference: Grid) -> DisplacementField:
    """Sample any SimpleITK transform (resampling direction) on ``reference``: ``u(x) = T(x) - x``."""
    import SimpleITK as sitk

    ref = Image(np.zeros(reference.shape, np.float32), reference).to_sitk()
    to_field = sitk.TransformToDisplacementFieldFilter()
    to_field.SetReferenceImage(ref)
    to_field.SetOutputPixelType(sitk.sitkVectorFloat64)
    return DisplacementField.from_sitk_image(to_field.Execute(transform))


# ----------------------------------------------------------------- differential quantities (torch)
def spatial_gradient(field: torch.Tensor, spacing) -> list[torch.Tensor]:
    """Derivatives ``d field / d x_a`` for each axis ``a`` in component order ``(i, j[, k])``.

    ``field`` is ``(B, C, *spatial)``; ``spacing`` gives mm per voxel along ``(i, j[, k])``. Central
    differences inside, one-sided at the border (``torch.gradient``).
    """
    nd = field.dim() - 2
    grads = []
    for a in range(nd):
        dim = field.dim() - 1 - a  # axis i is the last spatial dim
        if field.shape[dim] < 2:
            grads.append(torch.zeros_like(field))
        else:
            grads.append(torch.gradient(field, spacing=float(spacing[a]), dim=dim)[0])
    return grads


def jacobian_matrix(field: torch.Tensor, spacing) -> torch.Tensor:
    """``I + du/dx`` per voxel, ``(B, *spatial, ndim, ndim)``; row = component, column = axis."""
    nd = field.dim() - 2
    grads = spatial_gradient(field, spacing)  # list over axes of (B, C, *spatial)
    jac = torch.stack(grads, dim=2)  # (B, C, A, *spatial)
    jac = jac.movedim(1, -1).movedim(1, -1)  # (B, *spatial, C, A)
    return jac + torch.eye(nd, dtype=field.dtype, device=field.device)


def jacobian_determinant(field: torch.Tensor, spacing) -> torch.Tensor:
    """``det(I + du/dx)`` per voxel, ``(B, *spatial)``; for a field in mm along the grid axes."""
    return torch.linalg.det(jacobian_matrix(field, spacing))
