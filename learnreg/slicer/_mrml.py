"""Import of Slicer's MRML library, inside Slicer or from the ``slicer-core`` wheel, with a clear error."""

from learnreg.errors import InputError

try:
    import slicer  # (inside Slicer: the application's; outside: slicer-core)
    import vtk

    if not hasattr(slicer, "vtkMRMLScene"):
        raise ImportError("slicer has no vtkMRMLScene")
except ImportError as exc:  # pragma: no cover - exercised only where slicer-core is absent
    raise InputError(
        "Slicer's MRML library is not available: run inside 3D Slicer, or install it with "
        "'pip install slicer-core' (or 'pip install learnreg[scene]')") from exc

if not hasattr(slicer, "app"):
    # Outside the application VTK prints its informational messages (slicer-core 5.11 reports every file it
    # zips into a .mrb) on standard output; send them to standard error with its warnings, which the command
    # line keeps in its log (learnreg.logs), so that standard output holds only learnreg's own lines.
    vtk.vtkOutputWindow.GetInstance().SetDisplayModeToAlwaysStdErr()
