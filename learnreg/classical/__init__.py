"""Classical iterative registration: ``affine``, ``bspline`` and ``ddf``, sharing the loss library
(declared in :mod:`learnreg.classical.methods`)."""
