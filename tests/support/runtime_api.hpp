// Test support: the runtime API test server (tests/servers/runtime_api, started by scripts/run-tests,
// which exports RUNTIME_API_URL and RUNTIME_API_KEY) and what the APIRemoteWorkspace tests share:
// options for a runtime, direct calls to the API, and the contract suite's shared runtime.
#pragma once

#include <workspace/runtime.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace workspace_test {
using namespace workspace;

struct RuntimeApi {
  std::string url;
  std::string key;
};

inline RuntimeApi runtime_api() {
  const char* url = std::getenv("RUNTIME_API_URL");
  const char* key = std::getenv("RUNTIME_API_KEY");
  if (!url || !*url || !key || !*key)
    throw std::runtime_error("no runtime API test server: RUNTIME_API_URL and RUNTIME_API_KEY are not set. "
                             "scripts/run-tests starts one (scripts/lib/runtime-api.sh)");
  return {url, key};
}

// A host folder the runtime's agent server sees at the same path (the test server bind-mounts
// RUNTIME_TEST_WORKSPACE_DIR into the agent server's file system).
inline std::string shared_folder(const std::string& name) {
  const char* base = std::getenv("TMPDIR");
  const std::filesystem::path dir =
      std::filesystem::path(base && *base ? base : "/tmp") / ("workspace-runtime-test-" + std::to_string(::getppid())) / name;
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline APIRemoteWorkspaceOptions options(const std::string& session, const std::string& folder) {
  const auto api = runtime_api();
  APIRemoteWorkspaceOptions o;
  o.runtime_api_url = api.url;
  o.runtime_api_key = api.key;
  o.server_image = "ghcr.io/openhands/agent-server:test";
  o.attach_to = session + "-" + std::to_string(::getpid());
  if (session.rfind("contract-", 0) == 0) o.attach_to = session;
  o.environment = {{"RUNTIME_TEST_WORKSPACE_DIR", folder}};
  o.working_dir = folder;
  o.startup_wait_timeout = std::chrono::seconds(240);
  return o;
}

// Talks to the runtime API directly, as a second client would.
inline http::Client<http::TcpOrTls> api_client() { return http::Client<http::TcpOrTls>(runtime_api().url); }

inline nlohmann::json api_call(const std::string& method, const std::string& target,
                        const std::optional<nlohmann::json>& body = std::nullopt) {
  auto client = api_client();
  http::Request r{.method = method, .target = target};
  r.headers.set("X-API-Key", runtime_api().key);
  if (body) {
    r.headers.set("Content-Type", "application/json");
    r.body = body->dump();
  }
  auto response = client.request(std::move(r));
  http::check_status(response, method + " " + target);
  return nlohmann::json::parse(response.body);
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The runtime the contract suite shares: started by the first make(), attached to by the
// others (each in its own folder). CTest runs every test in its own process, so the session is
// named after CTest's pid (the parent of them all), and a cleanup test that CTest runs after
// the others (a fixture, see tests/CMakeLists.txt) stops it.
inline std::string contract_session() { return "contract-" + std::to_string(::getppid()); }

}  // namespace workspace_test
