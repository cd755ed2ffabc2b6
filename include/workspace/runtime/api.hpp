// runtime::BasicApi: the OpenHands runtime API, for callers that want it directly: start a
// runtime (an agent server in a pod), ask for a session's runtime, pause, resume and stop it.
// Every request carries X-API-Key (the ApiKeyAuth policy); the key never goes anywhere else.
//
//   workspace::runtime::Api api("https://runtime.example", key);
//   auto runtime = api.session("agent-server-1234");
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/policies.hpp>
#include <workspace/http/tls.hpp>
#include <workspace/http/url.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace runtime {

template <class Client = http::Client<http::TcpOrTls, http::ApiKeyAuth>>
class BasicApi {
 public:
  using client_type = Client;

  BasicApi(std::string url, const std::string& api_key, http::ClientOptions options = {})
      : client_(trimmed(std::move(url)), std::move(options)) {
    client_.template policy<http::ApiKeyAuth>().set_value(api_key);
  }

  Client& client() noexcept { return client_; }
  const std::string& endpoint() const noexcept { return client_.endpoint(); }

  // Each call is a coroutine (co_...); the blocking form runs it on the calling thread.
  Task<nlohmann::json> co_call(std::string method, std::string target, std::optional<nlohmann::json> body,
                               std::chrono::milliseconds timeout) {
    http::RequestOptions o;
    o.timeout = timeout;
    try {
      co_return co_await client_.co_request_json(std::move(method), std::move(target), std::move(body), std::move(o));
    } catch (const http::TransportError& e) {
      throw e.prefixed("runtime API");
    } catch (const Error& e) {
      throw workspace::detail::prefixed(e, "runtime API");
    }
  }
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body,
                      std::chrono::milliseconds timeout) {
    return workspace::detail::run_blocking([&] { return co_call(std::move(method), std::move(target), body, timeout); });
  }

  // POST /start with the documented body: the runtime, with its id, url and session key.
  Task<nlohmann::json> co_start(nlohmann::json body, std::chrono::milliseconds timeout) {
    return co_call("POST", "/start", std::move(body), timeout);
  }
  // GET /sessions/{id}: the session's runtime, or none when the API knows no such session.
  Task<std::optional<nlohmann::json>> co_session(std::string session_id, std::chrono::milliseconds timeout) {
    std::optional<nlohmann::json> found;
    try {
      found = co_await co_call("GET", http::make_target("/sessions/" + session_id), std::nullopt, timeout);
    } catch (const Error& e) {
      if (e.http_status() != 404) throw;
    }
    co_return found;
  }
  Task<nlohmann::json> co_pause(std::string runtime_id, std::chrono::milliseconds timeout) {
    return co_call("POST", "/pause", nlohmann::json{{"runtime_id", std::move(runtime_id)}}, timeout);
  }
  // POST /resume: the runtime's connection (its session key may be new).
  Task<nlohmann::json> co_resume(std::string runtime_id, std::chrono::milliseconds timeout) {
    return co_call("POST", "/resume", nlohmann::json{{"runtime_id", std::move(runtime_id)}}, timeout);
  }
  Task<nlohmann::json> co_stop(std::string runtime_id, std::chrono::milliseconds timeout) {
    return co_call("POST", "/stop", nlohmann::json{{"runtime_id", std::move(runtime_id)}}, timeout);
  }
  // Stops the runtime of a session, or the runtime of that id when no session has the name.
  Task<void> co_remove(std::string session_or_runtime_id, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::string runtime_id = session_or_runtime_id;
    const auto found = co_await co_session(session_or_runtime_id, timeout);
    if (found && found->contains("runtime_id") && (*found)["runtime_id"].is_string())
      runtime_id = (*found)["runtime_id"].template get<std::string>();
    co_await co_stop(std::move(runtime_id), timeout);
  }

  nlohmann::json start(const nlohmann::json& body, std::chrono::milliseconds timeout) {
    return workspace::detail::run_blocking([&] { return co_start(body, timeout); });
  }
  std::optional<nlohmann::json> session(const std::string& session_id, std::chrono::milliseconds timeout) {
    return workspace::detail::run_blocking([&] { return co_session(session_id, timeout); });
  }
  void pause(const std::string& runtime_id, std::chrono::milliseconds timeout) {
    workspace::detail::run_blocking([&] { return co_pause(runtime_id, timeout); });
  }
  nlohmann::json resume(const std::string& runtime_id, std::chrono::milliseconds timeout) {
    return workspace::detail::run_blocking([&] { return co_resume(runtime_id, timeout); });
  }
  void stop(const std::string& runtime_id, std::chrono::milliseconds timeout) {
    workspace::detail::run_blocking([&] { return co_stop(runtime_id, timeout); });
  }
  void remove(const std::string& session_or_runtime_id, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    workspace::detail::run_blocking([&] { return co_remove(session_or_runtime_id, timeout); });
  }

 private:
  static std::string trimmed(std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }

  Client client_;
};

using Api = BasicApi<>;

}  // namespace runtime
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
