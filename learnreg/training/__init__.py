"""Training learnreg networks: configuration files, image banks, synthetic pairs and the shared training loop."""
