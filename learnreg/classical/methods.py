"""The classical methods' declarations (see :mod:`learnreg.methods`)."""

from learnreg.classical.options import AffineOptions, BSplineOptions, DDFOptions
from learnreg.methods import Method, declare

declare(Method("affine", "iterative intensity-based affine registration (12 parameters in 3D, 6 in 2D)",
               AffineOptions, "learnreg.classical.affine:AffineRegistrar"))
declare(Method("bspline", "multi-resolution cubic B-spline free-form deformation (classical baseline)",
               BSplineOptions, "learnreg.classical.bspline:BSplineRegistrar"))
declare(Method("ddf", "dense displacement-field optimisation with diffusion or bending regulariser",
               DDFOptions, "learnreg.classical.ddf:DDFRegistrar"))
