"""R2N2, the recurrent registration neural network (Sandkühler et al., NeurIPS 2019), in 2D and 3D."""
