"""R2Register: the Recurrent Registration Neural Network (R2N2) as a Slicer module.

Module, Widget, Logic and self-test after Slicer's scripted module template. The panel and the logic
live in ``learnreg.slicer`` (shared by the three LearnReg modules); this file names the module and its
network. Until the R2N2 weights are installed the panel offers the classical methods.
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

try:
    import learnreg  # noqa: F401  (installed beside the module by the extension)
except ImportError:  # a development checkout added through "Additional module paths"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from learnreg.slicer.module_logic import RegistrationLogic, run_self_test  # noqa: E402
from learnreg.slicer.panel import RegistrationPanel, describe_module, sample_data_on_startup  # noqa: E402


class R2Register(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describe_module(
            self.parent, "R2Register",
            "A recurrent (GRU) network adds one local Gaussian deformation per step until the images align: "
            "compact, fast, and you can watch it work step by step.",
            "Sandkühler et al., Recurrent Registration Neural Networks for Deformable Image Registration, "
            "NeurIPS 2019")
        sample_data_on_startup(os.path.join(os.path.dirname(__file__), "Resources", "Icons", "R2Register.png"))


class R2RegisterWidget(RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.setup_panel(self.resourcePath("UI/R2Register.ui"), R2RegisterLogic())


class R2RegisterLogic(RegistrationLogic, ScriptedLoadableModuleLogic):
    network_method = "r2n2"

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)


class R2RegisterTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_register_bundled_pair()

    def test_register_bundled_pair(self):
        self.delayDisplay("Registering the bundled brain2d pair")
        run_self_test(slicer.mrmlScene, R2RegisterLogic(), self.delayDisplay)
        self.delayDisplay("Test passed")
