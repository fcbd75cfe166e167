# Stand-in for the SlicerConfig.cmake of a Slicer build tree, for configuring, building and installing the
# LearnReg extension in tests (desktop Slicer cannot be built or installed on the test machines).
#
# It defines what an extension's CMakeLists.txt meets after find_package(Slicer): the real directory
# variables (Slicer's own CMake/SlicerDirectories.cmake, read from the reference files), the real
# scripted-module and Python-test macros (CMake/SlicerMacroBuildScriptedModule.cmake and
# CMake/SlicerMacroPythonTesting.cmake), and minimal stand-ins for what comes from CTK and the extension
# packaging (ctkMacroCompilePythonScript, the generic module tests, the extension description and CPack).
#
# Set LEARNREG_SLICER_REFERENCE to ../shared/slicer-reference/<tag> and LEARNREG_SLICER_VERSION to 5.8 or 5.10.

if(NOT EXISTS "${LEARNREG_SLICER_REFERENCE}/CMake/SlicerDirectories.cmake")
  message(FATAL_ERROR "Set LEARNREG_SLICER_REFERENCE to a folder holding Slicer's CMake reference files")
endif()
string(REPLACE "." ";" _learnreg_version "${LEARNREG_SLICER_VERSION}")
list(GET _learnreg_version 0 Slicer_VERSION_MAJOR)
list(GET _learnreg_version 1 Slicer_VERSION_MINOR)
set(Slicer_MAIN_PROJECT "SlicerApp")
set(SlicerApp_APPLICATION_NAME "Slicer")

# what SlicerDirectories.cmake expects from Slicer's superbuild
function(mark_as_superbuild)
endfunction()
include("${LEARNREG_SLICER_REFERENCE}/CMake/SlicerDirectories.cmake")

set(Slicer_USE_PYTHONQT ON)
set(Slicer_LAUNCHER_EXECUTABLE "${CMAKE_CURRENT_LIST_DIR}/SlicerLauncher-not-available")
set(Slicer_ExternalData_DATA_MANAGEMENT_TARGET "SlicerData")
set(Slicer_USE_FILE "${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake")
set(Slicer_EXTENSION_GENERATE_CONFIG "${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionGenerateConfig.cmake")
set(Slicer_EXTENSION_CPACK "${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionCPack.cmake")
set(Slicer_FOUND TRUE)
