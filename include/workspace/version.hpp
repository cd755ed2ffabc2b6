// The library's version, and the inline namespace that carries it.
#pragma once

#define WORKSPACE_VERSION_MAJOR 0
#define WORKSPACE_VERSION_MINOR 1
#define WORKSPACE_VERSION_PATCH 0
#define WORKSPACE_VERSION_STRING "0.1.0"

// Everything lives in workspace::v0_1_0 (inline), as nlohmann_json does, so two copies of
// different versions in one program cannot silently break the one-definition rule.
#define WORKSPACE_ABI_TAG_CONCAT_(a, b, c) v##a##_##b##_##c
#define WORKSPACE_ABI_TAG_(a, b, c) WORKSPACE_ABI_TAG_CONCAT_(a, b, c)
#define WORKSPACE_ABI_TAG \
  WORKSPACE_ABI_TAG_(WORKSPACE_VERSION_MAJOR, WORKSPACE_VERSION_MINOR, WORKSPACE_VERSION_PATCH)

#define WORKSPACE_NAMESPACE_BEGIN \
  namespace workspace {           \
  inline namespace WORKSPACE_ABI_TAG {
#define WORKSPACE_NAMESPACE_END \
  }                             \
  }

WORKSPACE_NAMESPACE_BEGIN
struct Version {
  int major;
  int minor;
  int patch;
};
inline constexpr Version version{WORKSPACE_VERSION_MAJOR, WORKSPACE_VERSION_MINOR,
                                 WORKSPACE_VERSION_PATCH};
WORKSPACE_NAMESPACE_END
