# magpie_library(NAME [DEPS target...] [SOURCES extra.cpp...])
# Defines the library magpie_NAME from every .cpp directly in the calling folder (plus SOURCES), with
# src/ on the include path, so a module adds a file without touching its CMakeLists.txt.
function(magpie_library name)
  cmake_parse_arguments(ARG "" "" "DEPS;SOURCES" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  if(NOT sources AND NOT ARG_SOURCES)
    # A module whose first .cpp is not written yet: headers only for now.
    add_library(magpie_${name} INTERFACE)
    target_include_directories(magpie_${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(magpie_${name} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(magpie_${name} ${sources} ${ARG_SOURCES})
  target_include_directories(magpie_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(magpie_${name} PUBLIC ${ARG_DEPS})
endfunction()

# Adds src/NAME when the folder exists, so modules can be laid down one at a time.
macro(magpie_module name)
  if(EXISTS ${PROJECT_SOURCE_DIR}/src/${name}/CMakeLists.txt)
    add_subdirectory(src/${name})
  endif()
endmacro()
