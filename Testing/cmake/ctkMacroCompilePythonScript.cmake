# Minimal stand-in for CTK's ctkMacroCompilePythonScript (CMake/ctkMacroCompilePythonScript.cmake in CTK),
# with the behaviour Slicer's scripted modules rely on: each script and resource, given relative to the
# source folder, is copied at build time to the same relative path under DESTINATION_DIR (the build
# tree), and DESTINATION_DIR is installed into INSTALL_DIR (its contents, with NO_INSTALL_SUBDIR). The
# byte compilation CTK adds is left out.
macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR;GLOBAL_TARGET" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR"
    "SCRIPTS;RESOURCES" ${ARGN})
  if(NOT DEFINED MY_SOURCE_DIR)
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set(_learnreg_copied)
  foreach(_learnreg_file IN LISTS MY_SCRIPTS MY_RESOURCES)
    if(NOT EXISTS "${MY_SOURCE_DIR}/${_learnreg_file}" AND EXISTS "${MY_SOURCE_DIR}/${_learnreg_file}.py")
      set(_learnreg_file "${_learnreg_file}.py")
    endif()
    add_custom_command(
      OUTPUT "${MY_DESTINATION_DIR}/${_learnreg_file}"
      COMMAND ${CMAKE_COMMAND} -E copy "${MY_SOURCE_DIR}/${_learnreg_file}" "${MY_DESTINATION_DIR}/${_learnreg_file}"
      DEPENDS "${MY_SOURCE_DIR}/${_learnreg_file}")
    list(APPEND _learnreg_copied "${MY_DESTINATION_DIR}/${_learnreg_file}")
  endforeach()
  add_custom_target(Copy${MY_TARGET_NAME}PythonFiles ALL DEPENDS ${_learnreg_copied})
  set(_learnreg_install_from "${MY_DESTINATION_DIR}")
  if(MY_NO_INSTALL_SUBDIR)
    set(_learnreg_install_from "${MY_DESTINATION_DIR}/")
  endif()
  install(DIRECTORY "${_learnreg_install_from}" DESTINATION "${MY_INSTALL_DIR}" COMPONENT RuntimeLibraries
    USE_SOURCE_PERMISSIONS)
endmacro()
