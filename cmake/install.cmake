# Installation: the shared library (with its soname), the public headers, a
# pkg-config file, CMake package files exporting vramswap::vramswap, and the CLI.
# Included at the end of the top-level CMakeLists.txt. The man page is installed
# by docs/CMakeLists.txt.
#
# Components, for packagers splitting the files:
#   runtime      libvramswap.so.<version> and its soname link
#   development  headers, libvramswap.so, vramswap.pc, CMake package files
#   cli          bin/vramswap (and the man page, see docs/)
include(CMakePackageConfigHelpers)

set(VS_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/vramswap"
    CACHE STRING "Where the CMake package files go, relative to the prefix")

install(TARGETS vramswap
  EXPORT vramswapTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT runtime
    NAMELINK_COMPONENT development)

# Public headers only: vramswap/backend.h is internal for now.
install(FILES ${PROJECT_SOURCE_DIR}/core/include/vramswap.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)
install(FILES ${PROJECT_SOURCE_DIR}/backends/sim/include/vramswap/sim.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vramswap COMPONENT development)

# pkg-config. The install directories may be absolute (a distribution passes
# -DCMAKE_INSTALL_LIBDIR=/usr/lib/...); the .pc file names them relative to
# ${prefix} when they lie under it, so that `pkg-config --define-variable=prefix=`
# and PKG_CONFIG_SYSROOT_DIR work. The prefix itself is written at install time
# (Note [Relocated pkg-config file]).
#
# Note [Relocated pkg-config file]
# `cmake --install build --prefix <elsewhere>` changes CMAKE_INSTALL_PREFIX after
# configure; a .pc written at configure time kept the old prefix, and consumers
# of the relocated install did not find vramswap.h. So configure writes a
# template with @VS_PC_PREFIX@ left in, and an install(CODE) step fills in the
# prefix the install actually uses (DESTDIR is not part of it, as it must not be).
# ci/test_install.sh checks a relocated install with a pkg-config consumer.
foreach(kind LIBDIR INCLUDEDIR)
  set(dir "${CMAKE_INSTALL_FULL_${kind}}")
  string(FIND "${dir}/" "${CMAKE_INSTALL_PREFIX}/" at)
  if(at EQUAL 0)
    string(LENGTH "${CMAKE_INSTALL_PREFIX}" len)
    string(SUBSTRING "${dir}" ${len} -1 rest)
    set(VS_PC_${kind} "\${prefix}${rest}")
  else()
    set(VS_PC_${kind} "${dir}")
  endif()
endforeach()
set(VS_PC_PREFIX "@VS_PC_PREFIX@")   # kept for the install step
configure_file(${PROJECT_SOURCE_DIR}/cmake/vramswap.pc.in ${PROJECT_BINARY_DIR}/vramswap.pc.in @ONLY)
install(CODE "set(VS_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/vramswap.pc.in\" \"${PROJECT_BINARY_DIR}/vramswap.pc\" @ONLY)"
  COMPONENT development)
install(FILES ${PROJECT_BINARY_DIR}/vramswap.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)

# CMake package: find_package(vramswap) gives the imported target vramswap::vramswap.
install(EXPORT vramswapTargets
  NAMESPACE vramswap::
  FILE vramswapTargets.cmake
  DESTINATION ${VS_INSTALL_CMAKEDIR}
  COMPONENT development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/vramswapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/vramswapConfig.cmake
  INSTALL_DESTINATION ${VS_INSTALL_CMAKEDIR})
# 0.x releases may change the API between minor versions.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(vs_compat SameMinorVersion)
else()
  set(vs_compat SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vramswapConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${vs_compat})
install(FILES ${PROJECT_BINARY_DIR}/vramswapConfig.cmake ${PROJECT_BINARY_DIR}/vramswapConfigVersion.cmake
  DESTINATION ${VS_INSTALL_CMAKEDIR} COMPONENT development)

if(TARGET vramswap_cli)
  install(TARGETS vramswap_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
endif()
