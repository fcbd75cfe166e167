"""ISTNRegister: Image-and-Spatial Transformer Networks (ISTN) as a 3D Slicer module.

Slicer's module loader finds the module, Widget, Logic and Test classes (ISTNRegister, ISTNRegisterWidget,
ISTNRegisterLogic, ISTNRegisterTest) here; ``learnreg.slicer.panel.define_module`` builds them after the scripted
module template, with the panel and logic shared by the three LearnReg modules. The panel offers ISTN once
its weights are installed (Resources/Models/istn_*.pt), and the classical methods always.
"""

import os
import sys

try:
    import learnreg  # noqa: F401  (installed beside the module by the extension)
except ImportError:  # a development checkout added through "Additional module paths"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from learnreg.slicer.panel import define_module  # noqa: E402

SUMMARY = (
    "A learned image representation (ITN) focuses on the structures of interest, a spatial transformer (affine "
    "or B-spline STN) aligns them, and test-time refinement tunes the result for this pair.")
PAPER = (
    "Lee et al., Image-and-Spatial Transformer Networks for Structure-Guided Image Registration, MICCAI 2019")

# the self-test's bundled pair is deformed smoothly: the B-spline model (with refinement) is the one to check
globals().update(define_module("ISTNRegister", "istn", SUMMARY, PAPER, __file__,
                               self_test_options={"transformation": "bspline"}))
