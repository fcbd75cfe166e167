"""R2Register: the Recurrent Registration Neural Network (R2N2) as a 3D Slicer module.

After Slicer's scripted-module template: the module, its parameter node, Widget, Logic and Test classes.
The panel and the logic shared by the three LearnReg modules live in ``learnreg.slicer``; this file adds
R2N2's own controls (most steps, stopping tolerance). Until the R2N2 weights are installed the panel
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


class R2Register(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describe_module(self.parent, "R2Register",
                        "A recurrent (GRU) network adds one local Gaussian deformation per step until the images "
                        "align: compact, fast, and you can watch it work step by step.",
                        "Sandkühler et al., Recurrent Registration Neural Networks for Deformable Image "
                        "Registration, NeurIPS 2019")
        slicer.app.connect("startupCompleted()", register_sample_data)


@parameterNodeWrapper
class R2RegisterParameterNode(RegistrationParameters):
    """The panel's parameters; ``steps``, ``tolerance`` and ``prealign`` are R2N2's options (see ``learnreg methods -v``)."""

    steps: Annotated[int, WithinRange(0, 500)] = 0
    tolerance: Annotated[float, WithinRange(0.0, 0.5)] = 0.002
    prealign: Prealign = Prealign.none


class R2RegisterLogic(RegistrationLogic, ScriptedLoadableModuleLogic):
    network_method = "r2n2"


class R2RegisterWidget(RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameter_node_class = R2RegisterParameterNode
    logic_class = R2RegisterLogic


class R2RegisterTest(RegistrationSelfTest, ScriptedLoadableModuleTest):
    logic_class = R2RegisterLogic
