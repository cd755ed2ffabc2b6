// agent::BasicApi: the OpenHands agent server's own API, as much as RemoteWorkspace needs, for
// callers that want it directly: /health, /server_info, /api/bash (start a command, search its
// events, the /sockets/bash-events websocket), /api/file (upload, ranged download) and /api/git.
// The session key goes as X-Session-API-Key through the client's SessionApiKeyAuth policy, so a
// new key (a runtime's, after a resume) reaches every request from then on, on any thread.
//
//   workspace::agent::Api api("http://127.0.0.1:8000", key);
//   auto info = api.server_info();
//
// Each call is a coroutine (co_...) on the caller's executor; the blocking form runs it on the
// calling thread.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/results.hpp>
#include <workspace/http/body.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/policies.hpp>
#include <workspace/http/tls.hpp>
#include <workspace/http/url.hpp>
#include <workspace/http/websocket.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace agent {

template <class Client = http::Client<http::TcpOrTls, http::SessionApiKeyAuth>>
class BasicApi {
  static_assert(requires(Client& c) { c.template policy<http::SessionApiKeyAuth>(); },
                "the agent server's client needs the SessionApiKeyAuth policy");

 public:
  using client_type = Client;
  using socket_type = http::WebSocket<typename Client::transport_type>;

  // `host`: the server's base URL, e.g. http://127.0.0.1:8000; an empty key sends none.
  BasicApi(const std::string& host, std::string session_api_key, http::ClientOptions options = {})
      : client_(host, options), socket_client_(host, std::move(options)) {
    auth().set_value(std::move(session_api_key));
  }

  Client& client() noexcept { return client_; }
  const std::string& endpoint() const noexcept { return client_.endpoint(); }

  // Replaces the session key for every later request (a runtime issues a new one on resume).
  void set_session_api_key(std::string key) { auth().set_value(std::move(key)); }
  std::string session_api_key() { return auth().value(); }

  // GET /health (no key needed): true when the server answers 2xx within five seconds.
  Task<bool> co_alive() {
    http::RequestOptions o;
    o.timeout = std::chrono::seconds(5);
    http::Request r{.method = "GET", .target = "/health"};
    bool ok = false;
    try {
      const auto response = co_await client_.co_request(std::move(r), std::move(o));
      ok = response.ok();
    } catch (const std::exception& e) {
      if (workspace::detail::is_aborted(e)) throw;  // a cancellation is not an answer
    }
    co_return ok;
  }
  bool alive() noexcept {
    try {
      return workspace::detail::run_blocking([&] { return co_alive(); });
    } catch (...) {
      return false;
    }
  }

  // GET /server_info: version, uptime, idle time and capabilities.
  nlohmann::json server_info() { return call("GET", "/server_info", std::nullopt, {}); }

  // POST /api/bash/start_bash_command: the command's id. `server_timeout` is whole seconds.
  Task<std::string> co_start_bash_command(std::string command, long long server_timeout, Deadline deadline = {}) {
    http::RequestOptions o;
    o.timeout = std::chrono::seconds(30);
    o.deadline = deadline;
    nlohmann::json body{{"command", std::move(command)}, {"timeout", server_timeout}};
    const auto started = co_await co_call("POST", "/api/bash/start_bash_command", std::move(body), std::move(o));
    if (!started.contains("id") || !started["id"].is_string())
      throw Error(errc::protocol_error, "agent server: start_bash_command answered no command id");
    co_return started["id"].template get<std::string>();
  }
  std::string start_bash_command(const std::string& command, long long server_timeout, Deadline deadline = {}) {
    return workspace::detail::run_blocking([&] { return co_start_bash_command(command, server_timeout, deadline); });
  }

  // GET /api/bash/bash_events/search with `query`: the page as the server sends it.
  Task<nlohmann::json> co_search_bash_events(http::QueryParams query, http::RequestOptions o = {}) {
    co_return co_await co_call("GET", http::make_target("/api/bash/bash_events/search", query), std::nullopt, std::move(o));
  }
  nlohmann::json search_bash_events(const http::QueryParams& query, const http::RequestOptions& o = {}) {
    return workspace::detail::run_blocking([&] { return co_search_bash_events(query, o); });
  }

  // The /sockets/bash-events websocket; events of every command the server runs arrive on it
  // once authenticate() has sent the key in its first frame (the server closes it with 4001 when
  // it refuses the key). The co_ form makes a socket of the awaiting executor; the blocking one a
  // socket for blocking calls from any thread.
  Task<socket_type> co_connect_events_socket(Deadline::time_point deadline) {
    // The server takes the key in the first frame (in a header it is deprecated there), so the
    // upgrade goes out on a client of its own, without the key policy.
    return socket_type::co_connect(socket_client_, "/sockets/bash-events", {}, deadline);
  }
  socket_type connect_events_socket(Deadline::time_point deadline) {
    return socket_type::connect(socket_client_, "/sockets/bash-events", {}, deadline);
  }
  std::string auth_frame() { return nlohmann::json{{"type", "auth"}, {"session_api_key", auth().value()}}.dump(); }
  Task<void> co_authenticate(socket_type& socket, Deadline::time_point deadline) {
    const std::string frame = auth_frame();
    co_await socket.co_send_text(frame, deadline);
  }
  void authenticate(socket_type& socket, Deadline::time_point deadline) { socket.send_text(auth_frame(), deadline); }

  // POST /api/file/upload?path=: `form` holds the file as its one part of `size` bytes. A server
  // that reports another size than was sent is an Error.
  Task<void> co_upload(std::string remote, http::Multipart form, std::uint64_t size, http::Progress progress = {}) {
    http::Request r{.method = "POST", .target = http::make_target("/api/file/upload", {{"path", remote}})};
    r.headers.set("Accept", "application/json");
    http::RequestOptions o;
    o.on_upload = std::move(progress);
    std::move(form).attach_to(r);
    const std::string what = "agent server: " + client_.describe(r);
    const http::Response response = co_await client_.co_request(std::move(r), std::move(o));
    http::check_status(response, what);
    const auto answer = http::detail::parse_json(response.body);
    if (answer.is_object() && answer.contains("file_size") && answer["file_size"].is_number_unsigned() &&
        answer["file_size"].template get<std::uint64_t>() != size)
      throw Error(errc::io_error, what + ": the server wrote " + answer["file_size"].dump() + " of " +
                                      std::to_string(size) + " bytes");
  }
  void upload(const std::string& remote, http::Multipart form, std::uint64_t size, http::Progress progress = {}) {
    workspace::detail::run_blocking([&] { return co_upload(remote, std::move(form), size, std::move(progress)); });
  }

  // GET /api/file/download?path=, the body to o.on_body; from byte `from` when given (a range:
  // Starlette serves a whole file until EOF even when it grew past the Content-Length it
  // announced, which breaks the connection; a range is bounded). Returns false when the range
  // starts at the file's end (416). A missing file is Error(not_found).
  Task<bool> co_download(std::string remote, http::RequestOptions o, std::optional<std::uint64_t> from = {}) {
    http::Request r{.method = "GET", .target = http::make_target("/api/file/download", {{"path", remote}})};
    if (from) r.headers.set("Range", "bytes=" + std::to_string(*from) + "-");
    const std::string what = "agent server: " + client_.describe(r);
    const http::Response response = co_await client_.co_request(std::move(r), std::move(o));
    if (from && response.status == 416) co_return false;
    if (response.status == 404)
      throw Error(errc::not_found, what + ": 404: no such file", 404, http::detail::server_message(response));
    http::check_status(response, what);
    co_return true;
  }
  bool download(const std::string& remote, const http::RequestOptions& o, std::optional<std::uint64_t> from = {}) {
    return workspace::detail::run_blocking([&] { return co_download(remote, o, from); });
  }

  // GET /api/git/changes?path=: the changes below `path`; empty when it is not a repository.
  std::vector<GitChange> git_changes(const std::string& path) {
    const auto list = call("GET", http::make_target("/api/git/changes", {{"path", path}}), std::nullopt, {});
    if (!list.is_array()) throw Error(errc::protocol_error, "agent server: /api/git/changes did not answer a list");
    std::vector<GitChange> changes;
    for (const auto& item : list) {
      GitChange change;
      const std::string status = item.value("status", std::string());
      if (status == "ADDED") change.status = GitChangeStatus::added;
      else if (status == "DELETED") change.status = GitChangeStatus::deleted;
      else if (status == "MOVED") change.status = GitChangeStatus::moved;
      else change.status = GitChangeStatus::updated;
      change.path = item.value("path", std::string());
      changes.push_back(std::move(change));
    }
    return changes;
  }

  // GET /api/git/diff?path=: the file now and at the base revision.
  GitDiff git_diff(const std::string& path) {
    const auto diff = call("GET", http::make_target("/api/git/diff", {{"path", path}}), std::nullopt, {});
    GitDiff out;
    if (diff.contains("modified") && diff["modified"].is_string()) out.modified = diff["modified"].template get<std::string>();
    if (diff.contains("original") && diff["original"].is_string()) out.original = diff["original"].template get<std::string>();
    return out;
  }

  // A JSON call; non-2xx throws with the server's detail (401: authentication_failed).
  Task<nlohmann::json> co_call(std::string method, std::string target, std::optional<nlohmann::json> body,
                               http::RequestOptions options) {
    try {
      co_return co_await client_.co_request_json(std::move(method), std::move(target), std::move(body), std::move(options));
    } catch (const http::TransportError& e) {
      throw e.prefixed("agent server");
    } catch (const Error& e) {
      throw workspace::detail::prefixed(e, "agent server");
    }
  }
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body,
                      const http::RequestOptions& options) {
    return workspace::detail::run_blocking(
        [&] { return co_call(std::move(method), std::move(target), body, options); });
  }

 private:
  http::SessionApiKeyAuth& auth() { return client_.template policy<http::SessionApiKeyAuth>(); }

  Client client_;
  http::Client<typename Client::transport_type> socket_client_;
};

using Api = BasicApi<>;

}  // namespace agent
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
