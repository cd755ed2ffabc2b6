// runtime::BasicApi: the OpenHands runtime API, for callers that want it directly: start a
// runtime (an agent server in a pod), ask for a session's runtime, pause, resume and stop it.
// Every request carries X-API-Key (the ApiKeyAuth policy); the key never goes anywhere else.
//
//   workspace::runtime::Api api("https://runtime.example", key);
//   auto runtime = api.session("agent-server-1234");
#pragma once

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

  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body,
                      std::chrono::milliseconds timeout) {
    http::RequestOptions o;
    o.timeout = timeout;
    try {
      return client_.request_json(std::move(method), std::move(target), body, o);
    } catch (const http::TransportError& e) {
      throw e.prefixed("runtime API");
    } catch (const Error& e) {
      throw workspace::detail::prefixed(e, "runtime API");
    }
  }

  // POST /start with the documented body: the runtime, with its id, url and session key.
  nlohmann::json start(const nlohmann::json& body, std::chrono::milliseconds timeout) {
    return call("POST", "/start", body, timeout);
  }
  // GET /sessions/{id}: the session's runtime, or none when the API knows no such session.
  std::optional<nlohmann::json> session(const std::string& session_id, std::chrono::milliseconds timeout) {
    try {
      return call("GET", http::make_target("/sessions/" + session_id), std::nullopt, timeout);
    } catch (const Error& e) {
      if (e.http_status() == 404) return std::nullopt;
      throw;
    }
  }
  void pause(const std::string& runtime_id, std::chrono::milliseconds timeout) {
    call("POST", "/pause", nlohmann::json{{"runtime_id", runtime_id}}, timeout);
  }
  // POST /resume: the runtime's connection (its session key may be new).
  nlohmann::json resume(const std::string& runtime_id, std::chrono::milliseconds timeout) {
    return call("POST", "/resume", nlohmann::json{{"runtime_id", runtime_id}}, timeout);
  }
  void stop(const std::string& runtime_id, std::chrono::milliseconds timeout) {
    call("POST", "/stop", nlohmann::json{{"runtime_id", runtime_id}}, timeout);
  }

  // Stops the runtime of a session, or the runtime of that id when no session has the name.
  void remove(const std::string& session_or_runtime_id, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::string runtime_id = session_or_runtime_id;
    if (const auto found = session(session_or_runtime_id, timeout);
        found && found->contains("runtime_id") && (*found)["runtime_id"].is_string())
      runtime_id = (*found)["runtime_id"].template get<std::string>();
    stop(runtime_id, timeout);
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
WORKSPACE_NAMESPACE_END
