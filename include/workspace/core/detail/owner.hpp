// Who owns a container or sandbox this library made: labels naming the library, the owner
// process (pid and start time, so a reused pid is not mistaken for it) and its host, so that
// reap_orphans() of any later process can find what a dead one left behind.
#pragma once

#include <workspace/version.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include <unistd.h>

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

inline constexpr const char* managed_label = "org.workspace-cpp.managed";
inline constexpr const char* owner_pid_label = "org.workspace-cpp.owner-pid";
inline constexpr const char* owner_start_label = "org.workspace-cpp.owner-start";
inline constexpr const char* owner_host_label = "org.workspace-cpp.owner-host";

// A process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, it
// names a process even after the pid is reused.
inline std::string process_start_time(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return {};
  std::size_t field = 2;  // the field after ")" is the 3rd
  std::size_t at = close + 2;
  while (field < 21 && at < text.size()) {
    at = text.find(' ', at);
    if (at == std::string::npos) return {};
    ++at;
    ++field;
  }
  return text.substr(at, text.find(' ', at) - at);
}

inline std::string host_name() {
  char buffer[256] = {};
  ::gethostname(buffer, sizeof buffer - 1);
  return buffer;
}

// The labels that name this process as the owner of what it creates.
inline std::map<std::string, std::string> owner_labels() {
  const long pid = static_cast<long>(::getpid());
  return {{managed_label, "true"},
          {owner_pid_label, std::to_string(pid)},
          {owner_start_label, process_start_time(pid)},
          {owner_host_label, host_name()}};
}

// True when the process that labelled something as its own (pid and start time) still runs.
inline bool owner_alive(const std::string& pid_text, const std::string& start) {
  const long pid = std::atol(pid_text.c_str());
  return pid > 0 && !start.empty() && process_start_time(pid) == start;
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
