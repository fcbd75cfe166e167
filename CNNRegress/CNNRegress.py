"""CNNRegress: similarity-steered CNN regression of displacements as a 3D Slicer module.

After Slicer's scripted-module template: the module, its parameter node, Widget, Logic and Test classes.
The panel and the logic shared by the three LearnReg modules live in ``learnreg.slicer``; this file adds
CNNRegress's own controls (share of active points, passes). Until the CNN weights are installed the panel
offers the classical methods.
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
from learnreg.slicer.parameters import Prealign, RegistrationParameters


class CNNRegress(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describe_module(self.parent, "CNNRegress",
                        "A patch CNN fed with NCC similarity maps predicts displacements at active points; "
                        "thin-plate splines make them a dense deformation.",
                        "Cao et al., Deformable Image Registration Based on Similarity-Steered CNN Regression, "
                        "MICCAI 2017")
        slicer.app.connect("startupCompleted()", register_sample_data)


@parameterNodeWrapper
class CNNRegressParameterNode(RegistrationParameters):
    """The panel's parameters; ``density_percent``, ``passes`` and ``prealign`` are CNNRegress's options."""

    density_percent: Annotated[float, WithinRange(0.0, 50.0)] = 0.0
    passes: Annotated[int, WithinRange(1, 10)] = 2
    prealign: Prealign = Prealign.none


class CNNRegressLogic(RegistrationLogic, ScriptedLoadableModuleLogic):
    network_method = "cnnregress"


class CNNRegressWidget(RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameter_node_class = CNNRegressParameterNode
    logic_class = CNNRegressLogic


class CNNRegressTest(RegistrationSelfTest, ScriptedLoadableModuleTest):
    logic_class = CNNRegressLogic
