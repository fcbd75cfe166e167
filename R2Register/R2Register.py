"""R2Register: the Recurrent Registration Neural Network (R2N2) as a 3D Slicer module.

Slicer's module loader finds the module, Widget, Logic and Test classes (R2Register, R2RegisterWidget,
R2RegisterLogic, R2RegisterTest) here; ``learnreg.slicer.panel.define_module`` builds them after the scripted
module template, with the panel and logic shared by the three LearnReg modules. Until the R2N2 weights
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
    "A recurrent (GRU) network adds one local Gaussian deformation per step until the images align: compact, "
    "fast, and you can watch it work step by step.")
PAPER = (
    "Sandkühler et al., Recurrent Registration Neural Networks for Deformable Image Registration, NeurIPS 2019")

globals().update(define_module("R2Register", "r2n2", SUMMARY, PAPER, __file__))
