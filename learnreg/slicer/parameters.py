"""The parameters a LearnReg panel keeps in its scene's parameter node, declared for Slicer's
parameter-node wrapper (``slicer.parameterNodeWrapper``).

Each module file declares its parameter-node class at module level, as Slicer's scripted-module template
does: ``@parameterNodeWrapper class R2RegisterParameterNode(RegistrationParameters)`` adding the module's
own method controls with their ranges (``Annotated[int, WithinRange(0, 500)]``). The wrapper reads the
field types with ``typing.get_type_hints``, so this file must not use ``from __future__ import
annotations`` and imports the node classes at module level: annotations stay real classes.

Fixed lists (preset, device, the learned methods' pre-alignment, ISTN's transformation model, variant and
refinement scope) are enums, which the wrapper binds to
combo boxes itself; the method list depends on the weights installed, so its combo box is filled at run
time and synchronised with ``method`` by the panel (see :mod:`learnreg.slicer.panel`).
"""

import enum

from slicer import vtkMRMLGridTransformNode, vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode


class Choice(enum.Enum):
    """A fixed list shown in a combo box: Slicer's enum connector labels each item with ``label()``, here the
    member's value unless a subclass says otherwise."""

    def label(self) -> str:
        return self.value


class Preset(Choice):
    """Option presets (see :data:`learnreg.slicer.module_logic.PRESETS`); the value is the preset's name."""

    Default = "Default"
    Fast = "Fast"
    Accurate = "Accurate"
    R2N2PaperBaseline = "R2N2 paper baseline"


class Device(Choice):
    """Where the registration runs; the value is learnreg's device name."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self) -> str:
        return {"auto": "auto (GPU when there is one)", "cpu": "CPU", "cuda": "GPU (CUDA)"}[self.value]


class Transformation(Choice):
    """ISTN's transformation model."""

    affine = "affine"
    bspline = "bspline"

    def label(self) -> str:
        return {"affine": "affine", "bspline": "B-spline"}[self.value]


class Variant(Choice):
    """ISTN's training variant (Lee et al. 2019): which network the weights come from."""

    istn_i = "istn-i"
    istn_e = "istn-e"
    stn_s = "stn-s"
    stn_u = "stn-u"


class RefineScope(Choice):
    """What ISTN's test-time refinement optimises (its ``refine_scope`` option)."""

    auto = "auto"
    head = "head"
    stn = "stn"

    def label(self) -> str:
        return {"auto": "auto (3D: output layer; 2D: whole STN)", "head": "output layer",
                "stn": "whole STN (the paper's)"}[self.value]


class Prealign(Choice):
    """Whether a learned method's network also runs after an affine alignment (its ``prealign`` option)."""

    none = "none"
    both = "both"

    def label(self) -> str:
        return {"none": "off (the paper's pass)", "both": "also after an affine alignment"}[self.value]


class RegistrationParameters:
    """The fields every LearnReg panel has (a module's parameter-node class adds its method controls).

    ``method`` is bound to its combo box by the panel, not through ``SlicerParameterName``; every other
    field is bound by the wrapper to the ``.ui`` widget whose ``SlicerParameterName`` names it.
    """

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    method: str = ""
    preset: Preset = Preset.Default
    options: str = ""
    device: Device = Device.auto
    warpedVolume: vtkMRMLScalarVolumeNode
    outputTransform: vtkMRMLGridTransformNode
    fixedLandmarks: vtkMRMLMarkupsFiducialNode
    movingLandmarks: vtkMRMLMarkupsFiducialNode
    fixedLabels: vtkMRMLScalarVolumeNode
    movingLabels: vtkMRMLScalarVolumeNode


#: the fields of :class:`RegistrationParameters`; the others of a module's class are method options
COMMON_FIELDS = tuple(RegistrationParameters.__annotations__)


def method_option_values(parameters) -> dict:
    """A module's own method controls (the fields beyond :data:`COMMON_FIELDS`) as method options."""
    values = {}
    for name in type(parameters).allParameters:
        if name not in COMMON_FIELDS:
            value = getattr(parameters, name)
            values[name] = value.value if isinstance(value, enum.Enum) else value
    return values
