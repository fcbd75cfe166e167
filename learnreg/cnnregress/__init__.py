"""CNNRegress: similarity-steered CNN regression of displacements at active points (Cao et al. 2017)."""
