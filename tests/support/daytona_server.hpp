// Test support: the Daytona test server (tests/servers/daytona/server.py) for the DaytonaWorkspace
// tests. scripts/run-tests starts it on 127.0.0.1 (scripts/lib/daytona-server.sh) and exports
//   DAYTONA_TEST_API_URL          http://127.0.0.1:PORT/api
//   DAYTONA_TEST_API_KEY          the valid API key
//   DAYTONA_TEST_EXPIRED_API_KEY  a key the server treats as expired
// A test without them fails: it never skips.
//
// Every sandbox the suite creates carries the label `test.workspace/run` = the pid of the
// process that runs the test executables (CTest), so the cleanup test can tell this run's
// sandboxes from anybody else's. The helpers talk to the server with the library's HTTP client,
// as a second client of the service would.
#pragma once

#include <workspace/daytona.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

namespace workspace_test {

struct DaytonaServer {
  std::string api_url;      // http://127.0.0.1:PORT/api
  std::string api_key;
  std::string expired_key;  // may be empty when the server was started without one

  // The server's root, where /_test/... lives: the API URL without its trailing /api.
  std::string base_url() const {
    std::string base = api_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    constexpr std::string_view api = "/api";
    if (base.size() >= api.size() && base.compare(base.size() - api.size(), api.size(), api) == 0)
      base.resize(base.size() - api.size());
    return base;
  }
};

inline std::string daytona_env(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

// The server from the environment, or an exception saying how to get one.
inline DaytonaServer daytona_server() {
  DaytonaServer s{daytona_env("DAYTONA_TEST_API_URL"), daytona_env("DAYTONA_TEST_API_KEY"),
                  daytona_env("DAYTONA_TEST_EXPIRED_API_KEY")};
  if (s.api_url.empty() || s.api_key.empty())
    throw std::runtime_error(
        "no Daytona test server: DAYTONA_TEST_API_URL and DAYTONA_TEST_API_KEY are not set. scripts/run-tests "
        "starts one (scripts/lib/daytona-server.sh: ensure_daytona_server)");
  return s;
}

// The label on every sandbox of this run, and its value: the pid of the test runner (CTest, the
// parent of every test process).
inline constexpr const char* daytona_run_label = "test.workspace/run";
inline std::string daytona_run_id() { return std::to_string(::getppid()); }

// A label value unique to one test in this run, to find its sandboxes through the API.
inline std::string daytona_case_id(const std::string& name) {
  static std::atomic<int> counter{0};
  return name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}
inline constexpr const char* daytona_case_label = "test.workspace/case";

// Options for a new sandbox on the test server: the small snapshot, this run's label, and
// `labels` (fault switches such as test.daytona/slow-start=3).
inline workspace::DaytonaWorkspaceOptions daytona_options(std::map<std::string, std::string> labels = {}) {
  const auto server = daytona_server();
  workspace::DaytonaWorkspaceOptions o;
  o.api_url = server.api_url;
  o.api_key = server.api_key;
  o.snapshot = "daytona-small";
  o.labels = std::move(labels);
  o.labels[daytona_run_label] = daytona_run_id();
  return o;
}

namespace daytona_detail {
inline workspace::http::Client<workspace::http::TcpOrTls>& client(const std::string& url) {
  thread_local std::map<std::string, workspace::http::Client<workspace::http::TcpOrTls>> clients;
  auto it = clients.find(url);
  if (it == clients.end()) it = clients.emplace(url, workspace::http::Client<workspace::http::TcpOrTls>(url)).first;
  return it->second;
}

inline workspace::http::Headers bearer(const std::string& key) {
  workspace::http::Headers h;
  h.set("Authorization", "Bearer " + key);
  return h;
}
}  // namespace daytona_detail

// A call to the REST API (target relative to /api) with the valid key.
inline nlohmann::json daytona_api(const std::string& method, const std::string& target,
                                  const std::optional<nlohmann::json>& body = std::nullopt) {
  const auto server = daytona_server();
  return daytona_detail::client(server.api_url)
      .request_json(method, target, body, {}, daytona_detail::bearer(server.api_key));
}

// The sandbox's state as the API reports it; "gone" once it answers 404.
inline std::string daytona_sandbox_state(const std::string& id) {
  try {
    return daytona_api("GET", workspace::http::make_target("/sandbox/" + id)).value("state", std::string("?"));
  } catch (const workspace::Error& e) {
    if (e.http_status() == 404) return "gone";
    throw;
  }
}

// Sandboxes carrying every label of `labels` (either shape of the list answer), destroyed ones
// excluded by the server.
inline nlohmann::json daytona_sandboxes_with(const nlohmann::json& labels) {
  const auto page = daytona_api("GET", workspace::http::make_target("/sandbox", {{"labels", labels.dump()}}));
  if (page.is_array()) return page;
  return page.contains("items") ? page["items"] : nlohmann::json::array();
}

// Polls `done` every 100 ms until it holds or `timeout` passes; returns its last value.
template <class Predicate>
bool daytona_eventually(Predicate done, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The test endpoints (on the server's root, valid key).
inline nlohmann::json daytona_test_stats() {
  const auto server = daytona_server();
  return daytona_detail::client(server.base_url())
      .request_json("GET", "/_test/stats", std::nullopt, {}, daytona_detail::bearer(server.api_key));
}

inline void daytona_test_reset() {
  const auto server = daytona_server();
  workspace::http::Request r{.method = "POST", .target = "/_test/reset"};
  r.headers = daytona_detail::bearer(server.api_key);
  auto response = daytona_detail::client(server.base_url()).request(std::move(r));
  workspace::http::check_status(response, "POST /_test/reset");
}

}  // namespace workspace_test
