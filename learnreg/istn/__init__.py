"""ISTN, image-and-spatial transformer networks (Lee et al., MICCAI 2019), in 2D and 3D."""
