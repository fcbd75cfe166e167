"""CNNRegress: similarity-steered CNN regression of displacements as a Slicer module.

Module, Widget, Logic and self-test after Slicer's scripted module template. The panel and the logic
live in ``learnreg.slicer`` (shared by the three LearnReg modules); this file names the module and its
network. Until the CNN weights are installed the panel offers the classical methods.
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


class CNNRegress(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describe_module(
            self.parent, "CNNRegress",
            "A patch CNN fed with NCC similarity maps predicts displacements at active points; thin-plate "
            "splines make them a dense deformation.",
            "Cao et al., Deformable Image Registration Based on Similarity-Steered CNN Regression, "
            "MICCAI 2017")
        sample_data_on_startup(os.path.join(os.path.dirname(__file__), "Resources", "Icons", "CNNRegress.png"))


class CNNRegressWidget(RegistrationPanel, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.setup_panel(self.resourcePath("UI/CNNRegress.ui"), CNNRegressLogic())


class CNNRegressLogic(RegistrationLogic, ScriptedLoadableModuleLogic):
    network_method = "cnnregress"

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)


class CNNRegressTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_register_bundled_pair()

    def test_register_bundled_pair(self):
        self.delayDisplay("Registering the bundled brain2d pair")
        run_self_test(slicer.mrmlScene, CNNRegressLogic(), self.delayDisplay)
        self.delayDisplay("Test passed")
