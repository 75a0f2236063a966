# Optional parts of the build and how they are switched (included by the top
# CMakeLists.txt before any directory is added).
#
# Note [Optional parts]: a plain `cmake -S . -B build` must succeed on any Linux
# with a C compiler and CMake. Every optional part is a tristate ON, OFF or AUTO:
#   AUTO  builds the part when what it needs is found; otherwise the part is left
#         out and configure prints ONE line, "vramswap: <part> left out: <what is
#         missing> (Debian/Ubuntu: apt install <package>)";
#   ON    fails configure, naming what is missing and the package;
#   OFF   leaves the part out without looking.
# The parts: the test suites (Criterion), the CUDA, HIP and Level Zero backends
# (their headers; the driver libraries are opened at run time), the hook engine
# (Capstone) and the Python tests (pytest). ci/test.sh's `bare` tier configures
# with every search path hidden and checks that a working sim-only build results.

# vs_tristate_enabled(<var> <found> <out> [<part> <missing> <packages>])
#   <var>    name of the ON/OFF/AUTO cache variable
#   <found>  name of a variable, or a value, true when the dependencies are there
#   <out>    set to TRUE or FALSE in the caller's scope
#   <part>, <missing>, <packages>: the wording of the configure line
function(vs_tristate_enabled var found out)
  set(part "${ARGV3}")
  set(missing "${ARGV4}")
  set(packages "${ARGV5}")
  if("${part}" STREQUAL "")
    set(part "${var}")
  endif()
  if(${found})
    set(ok TRUE)
  else()
    set(ok FALSE)
  endif()
  string(TOUPPER "${${var}}" mode)
  if(mode STREQUAL "ON" OR mode STREQUAL "TRUE" OR mode STREQUAL "YES" OR mode STREQUAL "1")
    if(NOT ok)
      message(FATAL_ERROR "vramswap: ${var}=ON but ${part} cannot be built: ${missing} not found"
                          " (Debian/Ubuntu: apt install ${packages})")
    endif()
    set(${out} TRUE PARENT_SCOPE)
  elseif(mode STREQUAL "OFF" OR mode STREQUAL "FALSE" OR mode STREQUAL "NO" OR mode STREQUAL "0")
    set(${out} FALSE PARENT_SCOPE)
  elseif(mode STREQUAL "AUTO")
    if(NOT ok)
      message(STATUS "vramswap: ${part} left out: ${missing} not found"
                     " (Debian/Ubuntu: apt install ${packages}; ${var}=ON to require it)")
    endif()
    set(${out} ${ok} PARENT_SCOPE)
  else()
    message(FATAL_ERROR "vramswap: ${var} is '${${var}}'; use ON, OFF or AUTO")
  endif()
endfunction()

# The test suites need Criterion (pkg-config `criterion`, or its header and
# library found directly when pkg-config is absent). VS_BUILD_TESTS becomes a
# plain TRUE/FALSE variable for the directories below.
if(NOT "${VS_BUILD_TESTS}" MATCHES "^([Oo][Ff][Ff]|FALSE|0|NO)$")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(CRITERION QUIET IMPORTED_TARGET criterion)
  endif()
  if(NOT TARGET PkgConfig::CRITERION)
    find_path(VS_CRITERION_INCLUDE_DIR criterion/criterion.h)
    find_library(VS_CRITERION_LIBRARY criterion)
    if(VS_CRITERION_INCLUDE_DIR AND VS_CRITERION_LIBRARY)
      add_library(PkgConfig::CRITERION INTERFACE IMPORTED)
      set_target_properties(PkgConfig::CRITERION PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${VS_CRITERION_INCLUDE_DIR}"
        INTERFACE_LINK_LIBRARIES "${VS_CRITERION_LIBRARY}")
    endif()
  endif()
endif()
if(TARGET PkgConfig::CRITERION)
  set(vs_criterion_found TRUE)
else()
  set(vs_criterion_found FALSE)
endif()
vs_tristate_enabled(VS_BUILD_TESTS vs_criterion_found vs_tests_enabled
  "the test suites (ctest)" "Criterion (criterion/criterion.h, libcriterion)" "libcriterion-dev")
set(VS_BUILD_TESTS ${vs_tests_enabled})  # shadows the cache entry below this point
