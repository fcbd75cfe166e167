# Stand-in for Slicer's UseSlicer.cmake (see SlicerConfig.cmake here): Slicer's real macros, and minimal
# stand-ins for the CTK macro they call and the generic module tests.
include(CTest)
include(ExternalData)
include("${LEARNREG_SLICER_REFERENCE}/Extensions/CMake/SlicerExtensionDescriptionSpec.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/ctkMacroCompilePythonScript.cmake")
include("${LEARNREG_SLICER_REFERENCE}/CMake/SlicerMacroPythonTesting.cmake")
include("${LEARNREG_SLICER_REFERENCE}/CMake/SlicerMacroBuildScriptedModule.cmake")

# Slicer configures a generic test script per module (reload, self-test); none here
macro(SlicerMacroConfigureGenericPythonModuleTests MODULENAME OUTPUT_VAR)
  set(${OUTPUT_VAR})
endmacro()
