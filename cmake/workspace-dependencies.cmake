# Finds the library's dependencies. Used by our own build and, installed, by consumers through
# workspace-config.cmake, so both resolve them the same way.
# Imported targets are visible per directory, so a find_package(workspace) in another directory
# must run this again: guard per directory only.
include_guard(DIRECTORY)

# Asio ships no CMake config of its own; package managers (Conan) generate one with the target
# asio::asio, while Debian's libasio-dev installs only headers.
if(NOT TARGET asio::asio)
  find_package(asio CONFIG QUIET)
endif()
if(NOT TARGET asio::asio)
  find_path(WORKSPACE_ASIO_INCLUDE_DIR asio.hpp)
  if(NOT WORKSPACE_ASIO_INCLUDE_DIR)
    message(FATAL_ERROR
      "workspace: standalone Asio (asio.hpp) was not found. Install it (Debian: libasio-dev) "
      "or point CMAKE_PREFIX_PATH at it.")
  endif()
  add_library(asio::asio INTERFACE IMPORTED)
  set_target_properties(asio::asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${WORKSPACE_ASIO_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE")
endif()

if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.11 CONFIG REQUIRED)
endif()

if(NOT TARGET Threads::Threads)
  find_package(Threads REQUIRED)
endif()

# TLS for the HTTP client (asio::ssl).
if(NOT TARGET OpenSSL::SSL)
  find_package(OpenSSL 1.1.1 REQUIRED)
endif()
