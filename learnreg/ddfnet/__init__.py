"""DeepReg's registration network (``ddfnet``): an encoder-decoder that predicts a dense displacement, a static
velocity field or an affine transformation from a fixed/moving pair."""
