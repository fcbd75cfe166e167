"""learnreg: learning-based and classical deformable image registration in physical space.

Images are in LPS mm (:mod:`learnreg.image`), fields are pull displacements in mm on the fixed grid
(:mod:`learnreg.field`), every method is a registrar with one ``register()`` entry
(:mod:`learnreg.registration`), and the command line is ``learnreg``.
"""

__version__ = "0.1.0"
