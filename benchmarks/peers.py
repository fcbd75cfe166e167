"""Peer registration methods run beside learnreg's in the same benchmark run: SimpleITK B-spline and
Demons, and ANTs SyN (antspyx, in its own environment). Each takes learnreg images and returns a pull field
on the fixed grid, like a registrar."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import SimpleITK as sitk

from learnreg.field import DisplacementField, field_from_transform, load_field
from learnreg.image import Image, normalise_percentile, save_image
from learnreg.warp import resample_to_grid


def _to_sitk(image: Image):
    """Normalised float image; a single-slice image becomes a true 2D SimpleITK image."""
    out = image.with_array(normalise_percentile(image.array)).to_sitk()
    return out[:, :, 0] if image.ndim == 2 else out


def _field_on(fixed: Image, sitk_field) -> DisplacementField:
    """A SimpleITK field (2D or 3D) placed on the fixed grid it was computed on."""
    return DisplacementField(DisplacementField.from_sitk_image(sitk_field).vectors, fixed.grid)


def sitk_bspline(fixed: Image, moving: Image, mesh_mm: float = 24.0, iterations: int = 100):
    """SimpleITK B-spline: mean squares, LBFGSB, control mesh every ``mesh_mm``, image pyramid (shrink 4, 2, 1)."""
    f, m = _to_sitk(fixed), _to_sitk(moving)
    dim = f.GetDimension()
    mesh = [max(1, int(round(f.GetSize()[a] * f.GetSpacing()[a] / mesh_mm))) for a in range(dim)]
    initial = sitk.BSplineTransformInitializer(f, mesh)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations,
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=1000)
    reg.SetInitialTransform(initial, inPlace=True)
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    transform = reg.Execute(f, m)
    if fixed.ndim == 2:
        to_field = sitk.TransformToDisplacementFieldFilter()
        to_field.SetReferenceImage(f)
        to_field.SetOutputPixelType(sitk.sitkVectorFloat64)
        field = _field_on(fixed, to_field.Execute(transform))
    else:
        field = field_from_transform(transform, fixed.grid)
    return field, int(transform.GetNumberOfParameters())


def sitk_demons(fixed: Image, moving: Image, iterations: int = 100, sigma_voxels: float = 1.5):
    """SimpleITK fast symmetric-forces Demons, multi-resolution (shrink 4, 2, 1), on the fixed grid."""
    moving_on_fixed = resample_to_grid(moving, fixed.grid)
    f, m = _to_sitk(fixed), _to_sitk(moving_on_fixed)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(iterations)
    demons.SetStandardDeviations(sigma_voxels)
    field = None
    for shrink in (4, 2, 1):
        fs = sitk.Shrink(f, [shrink] * f.GetDimension()) if shrink > 1 else f
        ms = sitk.Shrink(m, [shrink] * m.GetDimension()) if shrink > 1 else m
        if field is None:
            init = sitk.Image(fs.GetSize(), sitk.sitkVectorFloat64, fs.GetDimension())
            init.CopyInformation(fs)
        else:
            init = sitk.Resample(field, fs, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        field = demons.Execute(fs, ms, init)
    return _field_on(fixed, field), int(fixed.grid.num_voxels * fixed.ndim)


#: the peers' own environment with antspyx (scripts/setup_peers.sh)
PEERS_PYTHON = Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"


def ants_available() -> bool:
    return PEERS_PYTHON.is_file()


def ants_syn(fixed: Image, moving: Image, threads: int = 2, with_affine: bool = False):
    """ANTs SyN (CC metric, 100/70/50 iterations; deformable only, or after an affine stage with
    ``with_affine``) through antspyx in the peers' environment (benchmarks/ants_worker.py); 3D images only.
    Returns the field (the stages composed), its parameter count and the registration's own wall time
    (without starting the process and importing ANTs)."""
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / name for name in ("fixed.nii.gz", "moving.nii.gz", "field.nii.gz")]
        for image, path in zip((fixed, moving), paths):
            save_image(image.with_array(normalise_percentile(image.array)), path)
        env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
        done = subprocess.run([str(PEERS_PYTHON), str(Path(__file__).with_name("ants_worker.py")), *map(str, paths),
                               "SyN" if with_affine else "SyNOnly"],
                              capture_output=True, text=True, env=env, check=True)
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        field = load_field(paths[2], reference=fixed.grid)
    return field, int(fixed.grid.num_voxels * fixed.ndim), {"seconds": seconds}


def elastix_available() -> bool:
    """elastix (itk-elastix) in the peers' environment."""
    if not PEERS_PYTHON.is_file():
        return False
    return subprocess.run([str(PEERS_PYTHON), "-c", "import itk; itk.ElastixRegistrationMethod"],
                          capture_output=True).returncode == 0


def elastix_bspline(fixed: Image, moving: Image, threads: int = 2, parameters: str = "default"):
    """elastix's affine + B-spline registration (``default`` or ``tuned`` parameter maps, see
    benchmarks/elastix_worker.py) in the peers' environment. Returns the field, its parameter count (unknown
    here: reported as 0) and the registration's own wall time."""
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / name for name in ("fixed.nii.gz", "moving.nii.gz", "field.nii.gz")]
        for image, path in zip((fixed, moving), paths):
            save_image(image.with_array(normalise_percentile(image.array)), path)
        env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
        # in the temporary folder: transformix writes deformationField.nii into the working directory
        done = subprocess.run([str(PEERS_PYTHON), str(Path(__file__).with_name("elastix_worker.py")),
                               *map(str, paths), parameters], capture_output=True, text=True, env=env, check=True,
                              cwd=folder)
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        field = load_field(paths[2], reference=fixed.grid)
    return field, 0, {"seconds": seconds}


PEERS = {"sitk_bspline": sitk_bspline, "sitk_demons": sitk_demons}
