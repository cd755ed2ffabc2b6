# Install rules: the headers, the exported target, a package config and a version file.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Header-only and architecture-independent, so the package lives under share/ (as nlohmann_json).
set(WORKSPACE_CONFIG_DIR "${CMAKE_INSTALL_DATADIR}/cmake/workspace")

install(TARGETS workspace workspace_headers
  EXPORT workspace-targets
  FILE_SET HEADERS
  FILE_SET gtest_headers)
# With separate compilation the package holds a static library, so it is no longer
# architecture-independent.
set(workspace_arch_independent ARCH_INDEPENDENT)
if(WORKSPACE_SEPARATE_COMPILATION)
  install(TARGETS workspace_asio EXPORT workspace-targets)
  set(workspace_arch_independent "")
endif()
install(EXPORT workspace-targets
  NAMESPACE workspace::
  DESTINATION "${WORKSPACE_CONFIG_DIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/workspace-config.cmake.in"
  "${PROJECT_BINARY_DIR}/workspace-config.cmake"
  INSTALL_DESTINATION "${WORKSPACE_CONFIG_DIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/workspace-config-version.cmake"
  COMPATIBILITY SameMinorVersion
  ${workspace_arch_independent})
install(FILES
  "${PROJECT_BINARY_DIR}/workspace-config.cmake"
  "${PROJECT_BINARY_DIR}/workspace-config-version.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/workspace-dependencies.cmake"
  DESTINATION "${WORKSPACE_CONFIG_DIR}")
