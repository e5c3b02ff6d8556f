# Debian packages built by CPack (docs/OPERATIONS.md, "Packages"): the deb preset
# (PACER_DEB_LAYOUT, install prefix /usr) and `cpack --preset deb` make
#   pacerd        the service: /usr/bin/pacerd, its systemd unit, /etc/pacerd/pacerd.toml (a
#                 conffile), the `pacerd` system user (postinst; removed on purge)
#   libpacer-dev  headers, static libraries and the CMake package (find_package(pacer))
# The maintainer scripts are in packaging/deb/.

# /usr/share/doc/<package>/copyright in Debian's machine-readable format, from LICENSE.
file(STRINGS ${PROJECT_SOURCE_DIR}/LICENSE license_lines)
set(copyright_holder "")
set(license_body "")
foreach(line IN LISTS license_lines)
  if(line MATCHES "^Copyright (\\(c\\) )?(.*)$" AND NOT copyright_holder)
    set(copyright_holder "${CMAKE_MATCH_2}")
  endif()
  if(line STREQUAL "")
    string(APPEND license_body " .\n")
  else()
    string(APPEND license_body " ${line}\n")
  endif()
endforeach()
if(NOT copyright_holder)
  message(FATAL_ERROR "LICENSE has no \"Copyright\" line for the Debian copyright file")
endif()
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/packaging/copyright @ONLY CONTENT
"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pacer

Files: *
Copyright: @copyright_holder@
License: MIT
@license_body@")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pacer)
set(CPACK_PACKAGE_VENDOR "The Pacer authors")
set(CPACK_PACKAGE_CONTACT "The Pacer authors <pacer@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL dev)
if(TARGET pacerd)
  list(APPEND CPACK_COMPONENTS_ALL pacerd)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_PACERD_PACKAGE_NAME pacerd)
set(CPACK_DEBIAN_PACERD_PACKAGE_SECTION net)
# Each package's description: its first line is the synopsis, the rest the extended description
# (an empty CPACK_PACKAGE_DESCRIPTION_SUMMARY keeps CPack from putting the project's first).
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "")
set(CPACK_DEBIAN_PACERD_DESCRIPTION "GCRA rate-limit service (Pacer)
pacerd decides rate limits over HTTP for any language and for nginx's
auth_request: policies in a TOML file (/etc/pacerd/pacerd.toml), the
in-process store or Redis / Redis Cluster / Sentinel. Runs as the system
user pacerd under the systemd unit pacerd.service.")
# Shared libraries from dpkg-shlibdeps; adduser for the postinst.
set(CPACK_DEBIAN_PACERD_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACERD_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACERD_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/deb/pacerd/conffiles
  ${PROJECT_SOURCE_DIR}/packaging/deb/pacerd/postinst
  ${PROJECT_SOURCE_DIR}/packaging/deb/pacerd/prerm
  ${PROJECT_SOURCE_DIR}/packaging/deb/pacerd/postrm)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpacer-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION "GCRA rate limiter for C++ services (development files)
Pacer's headers, static libraries and CMake package: find_package(pacer)
gives pacer::core, pacer::store, pacer::limiter, pacer::http,
pacer::redis and pacer::beast.")
# What the installed pacerConfig.cmake finds (cmake/pacerConfig.cmake.in), for the layers built.
set(dev_depends "libfmt-dev" "libspdlog-dev")
if(PACER_BUILD_HTTP)
  list(APPEND dev_depends "libssl-dev")
endif()
if(PACER_BUILD_BEAST OR PACER_BUILD_REDIS)
  list(APPEND dev_depends "libboost-dev (>= 1.74)" "libboost-system-dev (>= 1.74)")
endif()
if(PACER_BUILD_REDIS)
  list(APPEND dev_depends "libssl-dev" "libhiredis-dev" "pkgconf | pkg-config")
endif()
list(REMOVE_DUPLICATES dev_depends)
list(JOIN dev_depends ", " CPACK_DEBIAN_DEV_PACKAGE_DEPENDS)
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "cmake (>= 3.25)")

include(CPack)
