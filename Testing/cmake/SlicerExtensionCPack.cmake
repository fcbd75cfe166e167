# Stand-in for Slicer's extension packaging (SlicerExtensionCPack.cmake): packages nothing here.
