# Installs the libraries, headers and an exported CMake package:
#   find_package(pacer REQUIRED)  ->  pacer::core, pacer::store, pacer::limiter, pacer::http,
#   pacer::redis, pacer::beast
# Components (docs/OPERATIONS.md, "Packages"): `dev` is all of the above and needs no program
# built (cmake --install <build> --component dev); `pacerd`, `tools` (pacer-demo, pacer-bench)
# and `redis-module` are installed from the apps' directories, each only if it was built.
include(CMakePackageConfigHelpers)

get_property(pacer_targets GLOBAL PROPERTY PACER_TARGETS)
install(TARGETS ${pacer_targets} EXPORT pacer-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/pacer DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/include/pacer/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/pacer COMPONENT dev)
if(PACER_DEB_LAYOUT)
  # Debian keeps the license as /usr/share/doc/<package>/copyright (cmake/package.cmake).
  install(FILES ${PROJECT_BINARY_DIR}/packaging/copyright
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/libpacer-dev COMPONENT dev)
else()
  install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/pacer
    COMPONENT dev)
endif()
install(EXPORT pacer-targets NAMESPACE pacer:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pacer
  COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pacerConfig.cmake.in
  ${PROJECT_BINARY_DIR}/pacerConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pacer)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pacerConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pacerConfig.cmake ${PROJECT_BINARY_DIR}/pacerConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pacer COMPONENT dev)

if(PACER_DEB_LAYOUT)
  include(${PROJECT_SOURCE_DIR}/cmake/package.cmake)
endif()
