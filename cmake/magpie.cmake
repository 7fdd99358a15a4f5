# magpie_precompile(TARGET KIND): TARGET compiles with the precompiled header cmake/pch/KIND.h (core, json,
# asio or test). The first target of a kind builds it and later ones reuse it (REUSE_FROM), so each kind is
# compiled once. g++ uses a precompiled header only when every macro defined while it was built is defined
# alike in the file using it, and no other defined macro is one the header looks at; so a kind's first
# target must be one that every later target links (magpie_base for core; magpie_http, magpie_net), or a
# test for test. -Winvalid-pch says when a file could not use it (it then compiles without: slower, not
# wrong). MAGPIE_PCH=OFF leaves them all out (for checking that every file includes what it uses).
function(magpie_precompile target kind)
  if(NOT MAGPIE_PCH)
    return()
  endif()
  get_property(host GLOBAL PROPERTY MAGPIE_PCH_HOST_${kind})
  if(host)
    target_precompile_headers(${target} REUSE_FROM ${host})
  else()
    target_precompile_headers(${target} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/pch/${kind}.h)
    set_property(GLOBAL PROPERTY MAGPIE_PCH_HOST_${kind} ${target})
  endif()
  target_compile_options(${target} PRIVATE -Winvalid-pch -Wno-error=invalid-pch)
endfunction()

# magpie_library(NAME [DEPS target...] [SOURCES extra.cpp...] [PCH kind])
# Defines the library magpie_NAME from every .cpp directly in the calling folder (plus SOURCES), with
# src/ on the include path, so a module adds a file without touching its CMakeLists.txt. PCH names its
# precompiled header (magpie_precompile; default core).
function(magpie_library name)
  cmake_parse_arguments(ARG "" "PCH" "DEPS;SOURCES" ${ARGN})
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
  if(NOT ARG_PCH)
    set(ARG_PCH core)
  endif()
  magpie_precompile(magpie_${name} ${ARG_PCH})
endfunction()

# Adds src/NAME when the folder exists, so modules can be laid down one at a time.
macro(magpie_module name)
  if(EXISTS ${PROJECT_SOURCE_DIR}/src/${name}/CMakeLists.txt)
    add_subdirectory(src/${name})
  endif()
endmacro()
