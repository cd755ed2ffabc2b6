// Argument checks every workspace type applies the same way, so that a bad input is the same
// Error on every back end.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/version.hpp>

#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

inline std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  out += s;
  out += '\'';
  return out;
}

inline void validate_command(const std::string& command, const CommandOptions& options) {
  if (command.find('\0') != std::string::npos)
    throw Error(errc::invalid_argument, "execute_command: the command contains a NUL byte");
  if (options.timeout.count() <= 0)
    throw Error(errc::invalid_argument,
                "execute_command: timeout must be positive (use workspace::no_timeout for none)");
  if (options.cwd && options.cwd->find('\0') != std::string::npos)
    throw Error(errc::invalid_argument, "execute_command: cwd contains a NUL byte");
  for (const auto& [key, value] : options.env) {
    if (key.empty() || key.find_first_of(std::string_view("=\0", 2)) != std::string::npos)
      throw Error(errc::invalid_argument,
                  "execute_command: invalid environment variable name " + quote(key));
    if (value.find('\0') != std::string::npos)
      throw Error(errc::invalid_argument,
                  "execute_command: environment variable " + quote(key) + " contains a NUL byte");
  }
}

// Joins a workspace path onto working_dir unless it is absolute (POSIX rules: the workspace side
// is always a POSIX file system).
inline std::string resolve_workspace_path(std::string_view working_dir, std::string_view path) {
  if (!path.empty() && path.front() == '/') return std::string(path);
  std::string out(working_dir);
  if (path.empty()) return out;
  if (out.empty() || out.back() != '/') out += '/';
  out += path;
  return out;
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
