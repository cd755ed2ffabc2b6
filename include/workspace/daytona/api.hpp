// Daytona's two APIs, as much of them as DaytonaWorkspace needs, for callers that want them
// directly: daytona::BasicApi (the REST API: sandboxes) and daytona::BasicToolbox (the toolbox
// behind a sandbox's toolboxProxyUrl: sessions, processes, files). Every request carries
// `Authorization: Bearer` (the BearerAuth policy) and `X-Daytona-Source: sdk-cpp`.
//
// TransitionWait is the policy that waits out a sandbox's state transitions on the toolbox: it
// answers 502 (empty), 503 or 400 "...Is the Sandbox started?" while a sandbox changes state, and
// the API 409 while a transition runs.
//
// Each call is a coroutine (co_...) on the caller's executor; the blocking form runs it on the
// calling thread.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/detail/env.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/body.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/policies.hpp>
#include <workspace/http/tls.hpp>
#include <workspace/http/url.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace daytona {

// The key, the API's URL and the target, from the caller or else the environment
// (DAYTONA_API_KEY; DAYTONA_API_URL, else DAYTONA_SERVER_URL, else https://app.daytona.io/api;
// DAYTONA_TARGET).
struct Credentials {
  std::string api_key{};
  std::string api_url{};
  std::string target{};

  Credentials with_environment() const {
    Credentials c = *this;
    if (c.api_key.empty()) c.api_key = workspace::detail::env_or("DAYTONA_API_KEY");
    if (c.api_url.empty())
      c.api_url = workspace::detail::env_or(
          "DAYTONA_API_URL", workspace::detail::env_or("DAYTONA_SERVER_URL", "https://app.daytona.io/api"));
    while (!c.api_url.empty() && c.api_url.back() == '/') c.api_url.pop_back();
    if (c.target.empty()) c.target = workspace::detail::env_or("DAYTONA_TARGET");
    return c;
  }
};

// A status that means "the sandbox is changing state": worth waiting out.
inline bool transitional(int status, std::string_view message) noexcept {
  if (status == 502 || status == 503 || status == 409) return true;
  return status == 400 && message.find("Is the Sandbox started") != std::string_view::npos;
}
inline bool transitional(const Error& e) noexcept { return transitional(e.http_status(), e.what()); }

// Retries a toolbox request the sandbox's transition answered, within `budget` of its first
// attempt, when repeating it cannot repeat a side effect: it is idempotent, or the answer shows
// it never reached the sandbox (a proxy's empty 502, "Is the Sandbox started?"). Between
// attempts the `between` hook runs (DaytonaWorkspace asks the API there whether the sandbox failed
// or stopped, and starts a stopped one); it ends the waiting by throwing.
class TransitionWait {
 public:
  TransitionWait() = default;
  explicit TransitionWait(std::chrono::milliseconds budget) : budget_(budget) {}

  void on_transition(std::function<void()> between) { *between_ = std::move(between); }

  void prepare(http::Request&) const noexcept {}

  http::Decision decide(const http::Request& request, const http::Outcome& outcome) const {
    if (!outcome.response || outcome.response->ok()) return http::Decision::done();
    const auto& response = *outcome.response;
    const std::string message = http::detail::server_message(response);
    if (!transitional(response.status, message)) return http::Decision::done();
    if (*between_) (*between_)();  // a sandbox in error ends here, with its reason
    const bool not_reached = (response.status == 502 && response.body.empty()) ||
                             message.find("Is the Sandbox started") != std::string::npos;
    if (!(request.is_idempotent() || not_reached) || request.source) return http::Decision::done();
    const auto pause = std::min(std::chrono::milliseconds(200 * (1 << std::min(outcome.attempt - 1, 4))),
                                std::chrono::milliseconds(2000));
    if (std::chrono::steady_clock::now() + pause >= outcome.first_attempt + budget_) return http::Decision::done();
    return http::Decision::retry(pause);
  }

 private:
  std::chrono::milliseconds budget_{std::chrono::seconds(60)};
  std::shared_ptr<std::function<void()>> between_ = std::make_shared<std::function<void()>>();
};

namespace detail {
// One header on every request, besides the credential.
inline http::HeaderAuth source_header() { return http::HeaderAuth("X-Daytona-Source", "sdk-cpp"); }

// A JSON call (or a text answer, as a JSON string: logs); non-2xx throws with the server's words.
template <class Client>
Task<nlohmann::json> json_call(Client& client, std::string method, std::string target,
                               std::optional<nlohmann::json> body, http::RequestOptions options, bool idempotent) {
  http::Request r{.method = std::move(method), .target = std::move(target)};
  r.headers.set("Accept", "application/json");
  if (body) {
    r.headers.set("Content-Type", "application/json");
    r.body = body->dump();
  }
  r.idempotent = idempotent;
  const std::string where = "daytona: " + client.describe(r);
  const http::Response response = co_await client.co_request(std::move(r), std::move(options));
  http::check_status(response, where);
  if (response.body.empty()) co_return nullptr;
  auto parsed = http::detail::parse_json(response.body);
  if (parsed.is_discarded()) co_return response.body;
  co_return parsed;
}
}  // namespace detail

// The REST API: sandboxes.
template <class Client = http::Client<http::TcpOrTls, http::BearerAuth, http::HeaderAuth>>
class BasicApi {
 public:
  using client_type = Client;

  BasicApi(const Credentials& credentials, http::ClientOptions options = {})
      : client_(credentials.api_url, std::move(options), http::BearerAuth(credentials.api_key), detail::source_header()) {}

  Client& client() noexcept { return client_; }
  const std::string& endpoint() const noexcept { return client_.endpoint(); }

  Task<nlohmann::json> co_call(std::string method, std::string target, std::optional<nlohmann::json> body = std::nullopt,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    http::RequestOptions o;
    o.timeout = timeout;
    return detail::json_call(client_, std::move(method), std::move(target), std::move(body), std::move(o), false);
  }
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body = std::nullopt,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    return workspace::detail::run_blocking([&] { return co_call(std::move(method), std::move(target), body, timeout); });
  }

  // POST /sandbox: the sandbox as created.
  Task<nlohmann::json> co_create(nlohmann::json body, std::chrono::milliseconds timeout) {
    return co_call("POST", "/sandbox", std::move(body), timeout);
  }
  Task<nlohmann::json> co_get(const std::string& id_or_name) { return co_call("GET", http::make_target("/sandbox/" + id_or_name)); }
  Task<nlohmann::json> co_start(const std::string& id, std::chrono::milliseconds timeout) {
    return co_call("POST", http::make_target("/sandbox/" + id + "/start"), std::nullopt, timeout);
  }
  Task<nlohmann::json> co_stop(const std::string& id) { return co_call("POST", http::make_target("/sandbox/" + id + "/stop")); }
  Task<nlohmann::json> co_remove(const std::string& id) { return co_call("DELETE", http::make_target("/sandbox/" + id)); }
  Task<std::string> co_toolbox_proxy_url(std::string id) {
    const auto answer = co_await co_call("GET", http::make_target("/sandbox/" + id + "/toolbox-proxy-url"));
    co_return answer.value("url", std::string());
  }

  nlohmann::json create(const nlohmann::json& body, std::chrono::milliseconds timeout) {
    return workspace::detail::run_blocking([&] { return co_create(body, timeout); });
  }
  nlohmann::json get(const std::string& id_or_name) {
    return workspace::detail::run_blocking([&] { return co_get(id_or_name); });
  }
  void start(const std::string& id, std::chrono::milliseconds timeout) {
    workspace::detail::run_blocking([&] { return co_start(id, timeout); });
  }
  void stop(const std::string& id) { workspace::detail::run_blocking([&] { return co_stop(id); }); }
  void remove(const std::string& id) { workspace::detail::run_blocking([&] { return co_remove(id); }); }
  std::string toolbox_proxy_url(const std::string& id) {
    return workspace::detail::run_blocking([&] { return co_toolbox_proxy_url(id); });
  }

  // Every sandbox carrying `labels`, from either shape of the list ({items, nextCursor} since
  // v0.180, a plain array before), following cursors.
  Task<std::vector<nlohmann::json>> co_list(nlohmann::json labels) {
    std::vector<nlohmann::json> out;
    std::string cursor;
    for (int pages = 0; pages < 100; ++pages) {
      http::QueryParams q{{"labels", labels.dump()}};
      if (!cursor.empty()) q.emplace_back("cursor", cursor);
      const auto page = co_await co_call("GET", http::make_target("/sandbox", q));
      const auto& items = page.is_array() ? page : (page.contains("items") ? page["items"] : nlohmann::json::array());
      for (const auto& item : items) out.push_back(item);
      if (!page.is_object() || !page.contains("nextCursor") || !page["nextCursor"].is_string()) break;
      cursor = page["nextCursor"].template get<std::string>();
      if (cursor.empty()) break;
    }
    co_return out;
  }
  std::vector<nlohmann::json> list(const nlohmann::json& labels) {
    return workspace::detail::run_blocking([&] { return co_list(labels); });
  }

 private:
  Client client_;
};

// The toolbox of one sandbox, at its toolboxProxyUrl + "/" + id.
template <class Client = http::Client<http::TcpOrTls, http::BearerAuth, http::HeaderAuth, TransitionWait>>
class BasicToolbox {
 public:
  using client_type = Client;

  BasicToolbox(const std::string& url, const std::string& api_key, http::ClientOptions options,
               std::chrono::milliseconds transition_budget)
      : client_(url, std::move(options), http::BearerAuth(api_key), detail::source_header(),
                TransitionWait(transition_budget)) {}

  Client& client() noexcept { return client_; }
  TransitionWait& transitions() noexcept { return client_.template policy<TransitionWait>(); }

  // A JSON call (or a text answer, as a JSON string); idempotency decides what TransitionWait
  // may repeat.
  Task<nlohmann::json> co_call(std::string method, std::string target, std::optional<nlohmann::json> body,
                               bool idempotent, http::RequestOptions options = {}) {
    if (!options.timeout) options.timeout = std::chrono::seconds(60);
    return detail::json_call(client_, std::move(method), std::move(target), std::move(body), std::move(options),
                             idempotent);
  }
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body,
                      bool idempotent, const http::RequestOptions& options = {}) {
    return workspace::detail::run_blocking(
        [&] { return co_call(std::move(method), std::move(target), body, idempotent, options); });
  }

  Task<std::string> co_work_dir() {
    const auto answer = co_await co_call("GET", "/work-dir", std::nullopt, true);
    co_return answer.value("dir", std::string("/"));
  }
  std::string work_dir() { return workspace::detail::run_blocking([&] { return co_work_dir(); }); }

  // Sessions: one long-lived shell each; commands run in them asynchronously.
  Task<void> co_create_session(std::string id, Deadline deadline = {}) {
    nlohmann::json body{{"sessionId", std::move(id)}};
    http::RequestOptions o = with(deadline);
    co_await co_call("POST", "/process/session", std::move(body), false, std::move(o));
  }
  Task<std::string> co_session_exec(std::string session, std::string command, Deadline deadline = {}) {
    nlohmann::json body{{"command", std::move(command)}, {"runAsync", true}};
    http::RequestOptions o = with(deadline);
    const auto exec =
        co_await co_call("POST", http::make_target("/process/session/" + session + "/exec"), std::move(body), false, std::move(o));
    const std::string id = exec.is_object() ? exec.value("cmdId", std::string()) : std::string();
    if (id.empty()) throw Error(errc::protocol_error, "daytona: the session command has no cmdId");
    co_return id;
  }
  // The command's exit code once it has one.
  Task<std::optional<int>> co_session_command_exit(std::string session, std::string command, Deadline deadline = {}) {
    http::RequestOptions o = with(deadline);
    const auto status = co_await co_call("GET", http::make_target("/process/session/" + session + "/command/" + command),
                                         std::nullopt, true, std::move(o));
    if (status.is_object() && status.contains("exitCode") && status["exitCode"].is_number_integer())
      co_return status["exitCode"].template get<int>();
    co_return std::nullopt;
  }
  // The command's output so far (text, or {"output": ...} for newer SDK versions).
  Task<std::string> co_session_command_logs(std::string session, std::string command, Deadline deadline = {}) {
    http::RequestOptions o = with(deadline);
    const auto logs = co_await co_call("GET", http::make_target("/process/session/" + session + "/command/" + command + "/logs"),
                                       std::nullopt, true, std::move(o));
    if (logs.is_string()) co_return logs.template get<std::string>();
    if (logs.is_object() && logs.contains("output") && logs["output"].is_string())
      co_return logs["output"].template get<std::string>();
    co_return std::string();
  }
  Task<void> co_delete_session(std::string id) {
    co_await co_call("DELETE", http::make_target("/process/session/" + id), std::nullopt, true);
  }

  // POST /process/execute: a command run to its end (the toolbox merges its output).
  Task<nlohmann::json> co_execute(std::string command, int timeout_seconds) {
    nlohmann::json body{{"command", std::move(command)}, {"timeout", timeout_seconds}};
    return co_call("POST", "/process/execute", std::move(body), false);
  }

  // GET /files/download?path=, the body to o.on_body.
  Task<void> co_download(std::string remote, http::RequestOptions o) {
    http::Request r{.method = "GET", .target = http::make_target("/files/download", {{"path", remote}})};
    const std::string where = "daytona: " + client_.describe(r);
    const http::Response response = co_await client_.co_request(std::move(r), std::move(o));
    http::check_status(response, where);
  }

  // POST /files/bulk-upload with `form` (files[i].path and files[i].file parts).
  Task<void> co_upload(http::Multipart form, http::Progress progress = {}) {
    http::Request r{.method = "POST", .target = "/files/bulk-upload"};
    r.headers.set("Accept", "application/json");
    http::RequestOptions o;
    o.on_upload = std::move(progress);
    std::move(form).attach_to(r);
    const std::string where = "daytona: " + client_.describe(r);
    const http::Response response = co_await client_.co_request(std::move(r), std::move(o));
    http::check_status(response, where);
  }

  // The blocking forms.
  void create_session(const std::string& id, Deadline deadline = {}) {
    workspace::detail::run_blocking([&] { return co_create_session(id, deadline); });
  }
  std::string session_exec(const std::string& session, const std::string& command, Deadline deadline = {}) {
    return workspace::detail::run_blocking([&] { return co_session_exec(session, command, deadline); });
  }
  std::optional<int> session_command_exit(const std::string& session, const std::string& command, Deadline deadline = {}) {
    return workspace::detail::run_blocking([&] { return co_session_command_exit(session, command, deadline); });
  }
  std::string session_command_logs(const std::string& session, const std::string& command, Deadline deadline = {}) {
    return workspace::detail::run_blocking([&] { return co_session_command_logs(session, command, deadline); });
  }
  void delete_session(const std::string& id) { workspace::detail::run_blocking([&] { return co_delete_session(id); }); }
  nlohmann::json execute(const std::string& command, int timeout_seconds) {
    return workspace::detail::run_blocking([&] { return co_execute(command, timeout_seconds); });
  }
  void download(const std::string& remote, const http::RequestOptions& o) {
    workspace::detail::run_blocking([&] { return co_download(remote, o); });
  }
  void upload(http::Multipart form, http::Progress progress = {}) {
    workspace::detail::run_blocking([&] { return co_upload(std::move(form), std::move(progress)); });
  }

 private:
  static http::RequestOptions with(Deadline deadline) {
    http::RequestOptions o;
    o.deadline = deadline;
    return o;
  }

  Client client_;
};

using Api = BasicApi<>;
using Toolbox = BasicToolbox<>;

}  // namespace daytona
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
