"""Bridge between learnreg and a Slicer MRML scene."""
