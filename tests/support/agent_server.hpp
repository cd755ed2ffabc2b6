// Test support: the real OpenHands agent server for the RemoteWorkspace tests. scripts/run-tests
// starts one on 127.0.0.1 (scripts/lib/agent-server.sh) and exports
//   AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY, AGENT_SERVER_WORKSPACE
// (a folder the server sees at the same path). A test without them fails: it never skips.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace workspace_test {

struct AgentServer {
  std::string url;
  std::string session_key;
  std::string workspace;  // shared folder, same path on both sides
};

inline std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

// The server from the environment, or an exception saying how to get one.
inline AgentServer agent_server() {
  AgentServer s{env_or_empty("AGENT_SERVER_URL"), env_or_empty("AGENT_SERVER_SESSION_KEY"),
                env_or_empty("AGENT_SERVER_WORKSPACE")};
  if (s.url.empty() || s.workspace.empty())
    throw std::runtime_error(
        "no agent server: AGENT_SERVER_URL and AGENT_SERVER_WORKSPACE are not set. scripts/run-tests "
        "starts one (scripts/lib/agent-server.sh: ensure_agent_server)");
  return s;
}

// A new empty folder inside the shared workspace, for one test.
inline std::string fresh_agent_dir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const auto server = agent_server();
  const std::filesystem::path dir = std::filesystem::path(server.workspace) /
                                    (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace workspace_test
