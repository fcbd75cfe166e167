"""ISTNRegister: Image-and-Spatial Transformer Networks (ISTN) as a 3D Slicer module.

After Slicer's scripted-module template: the module, its parameter node, Widget, Logic and Test classes.
The panel and the logic shared by the three LearnReg modules live in ``learnreg.slicer``; this file adds
ISTN's own controls (transformation model, variant, refinement steps and scope). The panel offers ISTN once its
weights are installed (Resources/Models/istn_*.pt), and the classical methods always.
"""

import os
import sys
from typing import Annotated

try:
    import learnreg  # noqa: F401  (beside this file in the extension's build and install trees)
except ImportError:  # a development checkout added through "Additional module paths"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import slicer
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from learnreg.slicer.module_logic import (RegistrationLogic, RegistrationSelfTest, describe_module,
                                          register_sample_data)
from learnreg.slicer.panel import RegistrationPanel
from learnreg.slicer.parameters import Prealign, RefineScope, RegistrationParameters, Transformation, Variant


class ISTNRegister(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describe_module(self.parent, "ISTNRegister",
                        "A learned image representation (ITN) focuses on the structures of interest, a spatial "
                        "transformer (affine or B-spline STN) aligns them, and test-time refinement tunes the result "
                        "for this pair.",
                        "Lee et al., Image-and-Spatial Transformer Networks for Structure-Guided Image Registration, "
                        "MICCAI 2019")
        slicer.app.connect("startupCompleted()", register_sample_data)


@parameterNodeWrapper
class ISTNRegisterParameterNode(RegistrationParameters):
    """The panel's parameters; the last five are ISTN's options (see ``learnreg methods -v``)."""

    transformation: Transformation = Transformation.bspline
    variant: Variant = Variant.stn_u
    refine_steps: Annotated[int, WithinRange(0, 2000)] = 50
    refine_scope: RefineScope = RefineScope.auto
    prealign: Prealign = Prealign.none


class ISTNRegisterLogic(RegistrationLogic, ScriptedLoadableModuleLogic):
    network_method = "istn"


class ISTNRegisterWidget(RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameter_node_class = ISTNRegisterParameterNode
    logic_class = ISTNRegisterLogic


class ISTNRegisterTest(RegistrationSelfTest, ScriptedLoadableModuleTest):
    logic_class = ISTNRegisterLogic
