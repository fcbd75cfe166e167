"""CNNRegress: similarity-steered CNN regression of displacements as a 3D Slicer module.

Slicer's module loader finds the module, Widget, Logic and Test classes (CNNRegress, CNNRegressWidget,
CNNRegressLogic, CNNRegressTest) here; ``learnreg.slicer.panel.define_module`` builds them after the scripted
module template, with the panel and logic shared by the three LearnReg modules. Until the CNN weights
are installed the panel offers the classical methods.
"""

import os
import sys

try:
    import learnreg  # noqa: F401  (installed beside the module by the extension)
except ImportError:  # a development checkout added through "Additional module paths"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from learnreg.slicer.panel import define_module  # noqa: E402

SUMMARY = (
    "A patch CNN fed with NCC similarity maps predicts displacements at active points; thin-plate splines make "
    "them a dense deformation.")
PAPER = (
    "Cao et al., Deformable Image Registration Based on Similarity-Steered CNN Regression, MICCAI 2017")

globals().update(define_module("CNNRegress", "cnnregress", SUMMARY, PAPER, __file__))
