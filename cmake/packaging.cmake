# Debian packages with CPack: `cpack -G DEB` in a build tree configured with
# -DCMAKE_INSTALL_PREFIX=/usr (ci/test_deb.sh shows the whole sequence).
# Included at the end of the top-level CMakeLists.txt, after every install().
#
# Note [Debian packages]
# One package per install component (cmake/install.cmake):
#   libvramswap0      runtime      libvramswap.so.0*; the GPU driver libraries
#                                  (libcuda, libamdhip64, libze) are opened at run
#                                  time, never linked, so they are Suggests, not
#                                  Depends; libcapstone only when it is linked
#                                  shared (dpkg-shlibdeps finds it then)
#   libvramswap-dev   development  headers, libvramswap.so, vramswap.pc, CMake files
#   vramswap          cli          bin/vramswap (with `vramswap conformance`), man page
#   python3-vramswap  python       the Python package in /usr/lib/python3/dist-packages
# The runtime package's dependencies come from dpkg-shlibdeps; the others name
# libvramswap0 at exactly this version (the CLI and the bindings use the library's
# whole API, including symbols a later version may drop).
set(CPACK_PACKAGE_NAME vramswap)
set(CPACK_PACKAGE_VENDOR "vramswap")
set(VS_DEB_MAINTAINER "vramswap developers <maintainers@vramswap.org>" CACHE STRING
    "Maintainer field of the Debian packages")
set(CPACK_PACKAGE_CONTACT "${VS_DEB_MAINTAINER}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run PyTorch models larger than GPU memory")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://localhost/vramswap")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime development)
if(TARGET vramswap_cli)
  list(APPEND CPACK_COMPONENTS_ALL cli)
endif()
if(VS_INSTALL_PYTHON)
  list(APPEND CPACK_COMPONENTS_ALL python)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(vs_deb_version "${PROJECT_VERSION}-1")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libvramswap0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SUGGESTS "libcuda1, libamdhip64-5, libze1")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "run PyTorch models larger than GPU memory (library)
 vramswap keeps model weights in reserved GPU virtual address ranges, maps VRAM
 page by page on demand and evicts the least important pages under pressure.
 This package has the shared library with the CUDA, HIP, Level Zero and
 simulated backends that this build found headers for; the GPU drivers are
 loaded at run time.")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)   # DEBIAN/shlibs (only libvramswap0 has a library)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA "${CMAKE_CURRENT_LIST_DIR}/debian/triggers")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME libvramswap-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "libvramswap0 (= ${vs_deb_version})")
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION "run PyTorch models larger than GPU memory (development files)
 Headers (vramswap.h, vramswap/sim.h), the libvramswap.so link, a pkg-config
 file and CMake package files (find_package(vramswap)).")

set(CPACK_DEBIAN_CLI_PACKAGE_NAME vramswap)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_CLI_PACKAGE_SHLIBDEPS ON)
# dpkg-shlibdeps must see libvramswap.so.0 (staged for the runtime package) to
# read the CLI's other dependencies; libvramswap0 itself is named above.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS
  "${CMAKE_BINARY_DIR}/_CPack_Packages/Linux/DEB/vramswap-${PROJECT_VERSION}-Linux/runtime${CPACK_PACKAGING_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}")
set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "libvramswap0 (= ${vs_deb_version})")
set(CPACK_DEBIAN_CLI_DESCRIPTION "run PyTorch models larger than GPU memory (command-line tool)
 The vramswap tool: info (backends, devices, whether allocation interception
 is built in), demo, residency and the backend conformance suite
 (vramswap conformance).")

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-vramswap)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3:any, libvramswap0 (= ${vs_deb_version})")
set(CPACK_DEBIAN_PYTHON_PACKAGE_SUGGESTS "python3-torch")
set(CPACK_DEBIAN_PYTHON_DESCRIPTION "run PyTorch models larger than GPU memory (Python bindings)
 The vramswap Python package: ctypes bindings of libvramswap with a
 torch.cuda-like interface and model offloading for PyTorch.")

# Stripped binaries; compressed man page, copyright and changelog per package.
set(CPACK_STRIP_FILES ON)
configure_file(${CMAKE_CURRENT_LIST_DIR}/debian/changelog.in ${CMAKE_BINARY_DIR}/changelog.Debian @ONLY)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/debian/prebuild.cmake)
set(VS_DEB_PACKAGES runtime=libvramswap0 development=libvramswap-dev cli=vramswap python=python3-vramswap)
set(VS_DEB_SOURCE_DIR ${PROJECT_SOURCE_DIR})
set(VS_DEB_BINARY_DIR ${CMAKE_BINARY_DIR})
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_BINARY_DIR}/CPackVramswap.cmake)
file(WRITE ${CMAKE_BINARY_DIR}/CPackVramswap.cmake
  "set(VS_DEB_PACKAGES \"${VS_DEB_PACKAGES}\")\n"
  "set(VS_DEB_SOURCE_DIR \"${VS_DEB_SOURCE_DIR}\")\n"
  "set(VS_DEB_BINARY_DIR \"${VS_DEB_BINARY_DIR}\")\n")

include(CPack)
