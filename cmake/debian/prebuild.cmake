# CPACK_PRE_BUILD_SCRIPTS step of cmake/packaging.cmake (Note [Debian packages]):
# runs on the staged files of every package before dpkg-deb packs them, and
# gives each what Debian policy (lintian) asks for: the man page compressed
# (gzip -9n), /usr/share/doc/<package>/copyright and changelog.Debian.gz.
# Variables: CPACK_TEMPORARY_INSTALL_DIRECTORY (the staging root, one folder
# per component), VS_DEB_PACKAGES (component=package pairs), VS_DEB_SOURCE_DIR.
find_program(VS_GZIP gzip REQUIRED)
foreach(pair IN LISTS VS_DEB_PACKAGES)
  string(REPLACE "=" ";" pair "${pair}")
  list(GET pair 0 component)
  list(GET pair 1 package)
  set(root "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/${component}")
  if(NOT IS_DIRECTORY "${root}")
    continue()
  endif()
  file(GLOB_RECURSE mans "${root}/*/share/man/man[1-9]/*.[1-9]")
  foreach(m IN LISTS mans)
    execute_process(COMMAND "${VS_GZIP}" -9nf "${m}" COMMAND_ERROR_IS_FATAL ANY)
  endforeach()
  set(doc "${root}${CPACK_PACKAGING_INSTALL_PREFIX}/share/doc/${package}")
  file(MAKE_DIRECTORY "${doc}")
  file(COPY_FILE "${VS_DEB_SOURCE_DIR}/cmake/debian/copyright" "${doc}/copyright")
  file(COPY_FILE "${VS_DEB_BINARY_DIR}/changelog.Debian" "${doc}/changelog.Debian")
  execute_process(COMMAND "${VS_GZIP}" -9nf "${doc}/changelog.Debian" COMMAND_ERROR_IS_FATAL ANY)
  file(CHMOD "${doc}/copyright" "${doc}/changelog.Debian.gz"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
