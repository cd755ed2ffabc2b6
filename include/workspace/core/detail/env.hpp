// The process environment, read the way every back end reads its own variables.
#pragma once

#include <workspace/version.hpp>

#include <cstdlib>
#include <string>

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

// The variable's value, or `fallback` when it is unset or empty.
inline std::string env_or(const char* name, std::string fallback = {}) {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : std::move(fallback);
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
