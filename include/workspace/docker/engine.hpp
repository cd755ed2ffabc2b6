// The Docker Engine API, as much of it as DockerWorkspace needs: version negotiation, images
// (inspect, pull, build), containers, exec and archives. Every path is versioned; every error
// carries the daemon's own message.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/detail/env.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/any_transport.hpp>
#include <workspace/http/body.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/url.hpp>
#include <workspace/tar.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace docker {

struct EngineOptions {
  // unix:///path, tcp://host:port, or empty for DOCKER_HOST (default unix:///var/run/docker.sock).
  std::string host{};
  // "1.41" to pin a version; empty for DOCKER_API_VERSION or negotiation through /_ping.
  std::string api_version{};
  // TLS for tcp:// hosts: DOCKER_CERT_PATH's ca.pem, cert.pem and key.pem; verification as
  // DOCKER_TLS_VERIFY says. Unset: read from the environment.
  std::optional<std::string> cert_path{};
  std::optional<bool> tls_verify{};
  http::ClientOptions http{};
};

// Progress lines of a pull or a build, as the daemon words them.
using ProgressCallback = std::function<void(std::string_view line)>;

namespace detail {
using workspace::detail::env_or;

// DOCKER_HOST as the HTTP client's address, with the TLS settings it implies.
inline std::string client_address(const EngineOptions& options, http::ClientOptions& http_options) {
  std::string host = options.host.empty() ? env_or("DOCKER_HOST", "unix:///var/run/docker.sock") : options.host;
  if (host.rfind("unix://", 0) == 0) return host;
  if (host.rfind("tcp://", 0) != 0 && host.rfind("http://", 0) != 0 && host.rfind("https://", 0) != 0)
    throw Error(errc::invalid_argument, "docker: unsupported DOCKER_HOST " + host + " (unix:// or tcp://)");
  const std::string cert_path = options.cert_path ? *options.cert_path : env_or("DOCKER_CERT_PATH", "");
  const bool verify = options.tls_verify ? *options.tls_verify : !env_or("DOCKER_TLS_VERIFY", "").empty();
  const bool tls = host.rfind("https://", 0) == 0 || verify || !cert_path.empty();
  if (host.rfind("tcp://", 0) == 0) host = (tls ? "https://" : "http://") + host.substr(6);
  if (tls && !cert_path.empty()) {
    if (http_options.tls.ca_file.empty()) http_options.tls.ca_file = cert_path + "/ca.pem";
    if (http_options.tls.client_cert_file.empty()) http_options.tls.client_cert_file = cert_path + "/cert.pem";
    if (http_options.tls.client_key_file.empty()) http_options.tls.client_key_file = cert_path + "/key.pem";
    http_options.tls.verify_peer = verify;
  }
  return host;
}

// "name[:tag]" or "name@digest" as the fromImage and tag of a pull; without a tag, "latest"
// (never all tags).
inline std::pair<std::string, std::string> split_reference(const std::string& reference) {
  if (reference.find('@') != std::string::npos) return {reference, ""};
  const auto slash = reference.rfind('/');
  const auto colon = reference.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    return {reference.substr(0, colon), reference.substr(colon + 1)};
  return {reference, "latest"};
}

// Newline-delimited JSON progress (pull, build): lines to the callback; an "error" is thrown.
class JsonLines {
 public:
  JsonLines(std::string what, ProgressCallback progress) : what_(std::move(what)), progress_(std::move(progress)) {}

  bool feed(std::string_view data) {
    buffer_.append(data);
    std::size_t start = 0;
    for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n', start)) {
      line(std::string_view(buffer_).substr(start, nl - start));
      start = nl + 1;
    }
    buffer_.erase(0, start);
    return true;
  }
  void finish() {
    if (!buffer_.empty()) line(buffer_);
    buffer_.clear();
  }
  const std::string& image_id() const noexcept { return image_id_; }

 private:
  void line(std::string_view text) {
    if (text.find_first_not_of(" \r\t") == std::string_view::npos) return;
    const auto j = http::detail::parse_json(text);
    if (j.is_discarded()) return;
    if (j.contains("error") || j.contains("errorDetail")) {
      std::string message = j.value("error", std::string());
      if (message.empty() && j["errorDetail"].is_object()) message = j["errorDetail"].value("message", std::string());
      throw Error(errc::bad_state, what_ + ": " + message, 200, message);
    }
    if (j.contains("aux") && j["aux"].is_object() && j["aux"].contains("ID")) image_id_ = j["aux"]["ID"].get<std::string>();
    if (!progress_) return;
    std::string out;
    if (j.contains("stream") && j["stream"].is_string()) out = j["stream"].get<std::string>();
    else if (j.contains("status") && j["status"].is_string()) {
      out = j["status"].get<std::string>();
      if (j.contains("progress") && j["progress"].is_string()) out += " " + j["progress"].get<std::string>();
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    if (!out.empty()) progress_(out);
  }

  std::string what_;
  ProgressCallback progress_;
  std::string buffer_;
  std::string image_id_;
};
}  // namespace detail

template <class Client = http::Client<http::AnyTransport>>
class BasicEngine {
 public:
  using client_type = Client;
  // Our oldest and newest API versions; the daemon's maximum caps the newest.
  static constexpr std::string_view min_api_version = "1.24";
  static constexpr std::string_view max_api_version = "1.47";

  explicit BasicEngine(EngineOptions options = {})
      : client_(make_client(options)), pinned_(options.api_version.empty() ? detail::env_or("DOCKER_API_VERSION", "") : options.api_version) {}

  Client& client() noexcept { return client_; }
  const std::string& endpoint() const noexcept { return client_.endpoint(); }

  // Each call is a coroutine (co_*), run by the blocking form on the calling thread; the
  // client's connections are shared by every call in flight, one call per connection at a time.

  // The version every path is prefixed with, negotiated once with /_ping (concurrent first calls
  // may each ask; they agree).
  Task<std::string> co_api_version() {
    {
      std::lock_guard lock(version_mutex_);
      if (!version_.empty()) co_return version_;
      if (!pinned_.empty()) co_return version_ = pinned_;
      // Another engine of this process already asked this daemon (many workspaces at once).
      if (auto known = negotiated().find(endpoint()); known != negotiated().end()) co_return version_ = known->second;
    }
    // (No co_await inside an aggregate's initializer, nor a temporary aggregate as a coroutine's
    // argument: GCC 12 destroys such members twice.)
    http::Request ping{.method = "GET", .target = "/_ping"};
    const auto r = co_await client_.co_request(std::move(ping));
    http::check_status(r, "GET /_ping on " + endpoint());
    std::string server = r.headers.get("Api-Version");
    if (server.empty()) server = "1.24";
    if (older(server, std::string(min_api_version)))
      throw Error(errc::unsupported, "docker: the daemon at " + endpoint() + " speaks API " + server +
                                         ", older than " + std::string(min_api_version));
    std::lock_guard lock(version_mutex_);
    version_ = older(server, std::string(max_api_version)) ? server : std::string(max_api_version);
    negotiated()[endpoint()] = version_;
    co_return version_;
  }
  std::string api_version() {
    return blocking([&] { return co_api_version(); });
  }

  // "/v1.41/containers/json" and the like.
  Task<std::string> co_path(std::string p, http::QueryParams query = {}) {
    const std::string version = co_await co_api_version();
    co_return "/v" + version + http::make_target(p, query);
  }
  std::string path(std::string_view p, const http::QueryParams& query = {}) {
    return "/v" + api_version() + http::make_target(p, query);
  }

  // A JSON call; `what` names the operation for messages. Non-2xx throws with the daemon's text.
  Task<nlohmann::json> co_call(std::string method, std::string target, std::optional<nlohmann::json> body = std::nullopt,
                               http::RequestOptions options = {}) {
    try {
      co_return co_await client_.co_request_json(std::move(method), std::move(target), std::move(body), std::move(options));
    } catch (const http::TransportError& e) {
      throw e.prefixed("docker");  // keeps its progress for the callers that look (uploads)
    } catch (const Error& e) {
      if (e.code() == asio::error::operation_aborted) throw;
      throw workspace::detail::prefixed(e, "docker");
    }
  }
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body = std::nullopt,
                      const http::RequestOptions& options = {}) {
    return blocking([&] { return co_call(std::move(method), std::move(target), body, options); });
  }

  // --- images
  // The image's description (its Config holds the default User), or nothing when it is missing.
  Task<std::optional<nlohmann::json>> co_image_inspect(std::string reference) {
    std::string request_target = co_await co_path("/images/" + reference + "/json");
    http::Request request{.method = "GET", .target = std::move(request_target)};
    const auto r = co_await client_.co_request(std::move(request));
    if (r.status == 404) co_return std::nullopt;
    http::check_status(r, "docker: inspect image " + reference);
    auto parsed = http::detail::parse_json(r.body);
    if (parsed.is_discarded()) throw Error(errc::protocol_error, "docker: inspect image " + reference + ": not JSON");
    co_return parsed;
  }
  Task<bool> co_image_exists(std::string reference) {
    std::string request_target = co_await co_path("/images/" + reference + "/json");
    http::Request request{.method = "GET", .target = std::move(request_target)};
    const auto r = co_await client_.co_request(std::move(request));
    if (r.status == 404) co_return false;
    http::check_status(r, "docker: inspect image " + reference);
    co_return true;
  }
  bool image_exists(const std::string& reference) {
    return blocking([&] { return co_image_exists(reference); });
  }

  Task<void> co_pull(std::string reference, ProgressCallback progress = {}) {
    const auto [image, tag] = detail::split_reference(reference);
    http::QueryParams q{{"fromImage", image}};
    if (!tag.empty()) q.emplace_back("tag", tag);
    detail::JsonLines lines("docker: pull " + reference, std::move(progress));
    http::RequestOptions o;
    o.on_body = [&](std::string_view d) { return lines.feed(d); };
    std::string r_target = co_await co_path("/images/create", std::move(q));
    http::Request r{.method = "POST", .target = std::move(r_target)};
    auto response = co_await client_.co_request(std::move(r), std::move(o));
    if (!response.ok()) throw_status(response, "docker: pull " + reference);
    lines.finish();
  }
  void pull(const std::string& reference, const ProgressCallback& progress = {}) {
    blocking([&] { return co_pull(reference, progress); });
  }

  // Builds an image from a tar'd context (its size known); returns the image id.
  std::string build(http::BodySource context, std::uint64_t size, const std::string& tag,
                    const std::string& dockerfile = "Dockerfile", const ProgressCallback& progress = {},
                    const std::string& network_mode = "none") {
    http::QueryParams q{{"t", tag}, {"dockerfile", dockerfile}, {"rm", "1"}, {"forcerm", "1"},
                        {"networkmode", network_mode}};
    detail::JsonLines lines("docker: build " + tag, progress);
    http::RequestOptions o;
    o.on_body = [&](std::string_view d) { return lines.feed(d); };
    o.idle_timeout = std::chrono::minutes(10);  // a RUN step may be quiet for long
    http::Request r{.method = "POST", .target = path("/build", q)};
    r.headers.set("Content-Type", "application/x-tar");
    r.source = std::move(context);
    r.source_size = size;
    auto response = client_.request(std::move(r), o);
    if (!response.ok()) throw_status(response, "docker: build " + tag);
    lines.finish();
    return lines.image_id();
  }

  // Builds from a folder (the build context; its Dockerfile is `dockerfile` inside it).
  std::string build_folder(const std::string& folder, const std::string& tag,
                           const std::string& dockerfile = "Dockerfile", const ProgressCallback& progress = {}) {
    namespace fs = std::filesystem;
    tar::Writer writer;
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) throw Error(errc::not_found, "docker: build context " + folder + " is not a folder");
    for (auto it = fs::recursive_directory_iterator(folder); it != fs::recursive_directory_iterator(); ++it) {
      const std::string rel = fs::relative(it->path(), folder).generic_string();
      if (it->is_symlink()) writer.add_symlink(rel, fs::read_symlink(it->path()).string());
      else if (it->is_directory()) writer.add_directory(rel);
      else if (it->is_regular_file()) writer.add_file(rel, it->path().string());
    }
    const auto size = writer.size();
    return build(std::move(writer).source(), size, tag, dockerfile, progress);
  }

  // Builds from Dockerfile text alone (an empty context: FROM, RUN, ENV... but no COPY).
  std::string build_dockerfile(const std::string& text, const std::string& tag, const ProgressCallback& progress = {}) {
    tar::Writer writer;
    writer.add_bytes("Dockerfile", text);
    const auto size = writer.size();
    return build(std::move(writer).source(), size, tag, "Dockerfile", progress);
  }

  // --- containers
  Task<std::string> co_create_container(nlohmann::json config, std::string name = {}, std::string platform = {}) {
    http::QueryParams q;
    if (!name.empty()) q.emplace_back("name", name);
    if (!platform.empty()) q.emplace_back("platform", platform);
    const auto created = co_await co_call("POST", co_await co_path("/containers/create", std::move(q)), std::move(config));
    co_return created["Id"].template get<std::string>();
  }
  Task<void> co_start(std::string id) { co_await co_call("POST", co_await co_path("/containers/" + id + "/start")); }
  Task<void> co_pause(std::string id) { co_await co_call("POST", co_await co_path("/containers/" + id + "/pause")); }
  Task<void> co_unpause(std::string id) { co_await co_call("POST", co_await co_path("/containers/" + id + "/unpause")); }
  // Stops the container: its init gets SIGTERM, then SIGKILL after `seconds`.
  Task<void> co_stop(std::string id, int seconds = 10) {
    http::QueryParams q{{"t", std::to_string(seconds)}};
    co_await co_call("POST", co_await co_path("/containers/" + id + "/stop", std::move(q)));
  }
  Task<nlohmann::json> co_inspect(std::string id) { return co_call_at("GET", "/containers/" + id + "/json"); }
  // Removes a container, killing it first; a container already gone is not an error.
  Task<void> co_remove(std::string id) {
    http::QueryParams q{{"force", "true"}, {"v", "true"}};
    const auto target = co_await co_path("/containers/" + id, std::move(q));
    http::Request request{.method = "DELETE", .target = target};
    const auto r = co_await client_.co_request(std::move(request));
    if (r.status == 404) co_return;
    if (!r.ok()) throw_status(r, "docker: remove container " + id);
  }
  Task<nlohmann::json> co_list_containers(nlohmann::json filters) {
    http::QueryParams q{{"all", "true"}, {"filters", filters.dump()}};
    co_return co_await co_call("GET", co_await co_path("/containers/json", std::move(q)));
  }

  std::string create_container(const nlohmann::json& config, const std::string& name = {},
                               const std::string& platform = {}) {
    return blocking([&] { return co_create_container(config, name, platform); });
  }
  void start(const std::string& id) { blocking([&] { return co_start(id); }); }
  void pause(const std::string& id) { blocking([&] { return co_pause(id); }); }
  void unpause(const std::string& id) { blocking([&] { return co_unpause(id); }); }
  void stop(const std::string& id, int seconds = 10) { blocking([&] { return co_stop(id, seconds); }); }
  nlohmann::json inspect(const std::string& id) { return blocking([&] { return co_inspect(id); }); }
  void remove(const std::string& id) { blocking([&] { return co_remove(id); }); }
  nlohmann::json list_containers(const nlohmann::json& filters) {
    return blocking([&] { return co_list_containers(filters); });
  }

  // --- exec
  // Every exec call ends by `deadline` (a command's), besides the client's own timeouts.
  Task<std::string> co_exec_create(std::string container, nlohmann::json config, Deadline deadline = {}) {
    const auto created =
        co_await co_call("POST", co_await co_path("/containers/" + container + "/exec"), std::move(config), within(deadline));
    co_return created["Id"].template get<std::string>();
  }
  // The exec's output stream: its co_ calls only (blocking: exec_start).
  Task<http::UpgradedConnection<typename Client::transport_type>> co_exec_start(std::string exec_id, Deadline deadline = {}) {
    auto upgraded = co_await client_.co_upgrade(start_request(co_await co_path("/exec/" + exec_id + "/start")), within(deadline));
    if (!upgraded.upgraded()) throw_status(upgraded.response(), "docker: start exec " + exec_id);
    co_return upgraded;
  }
  Task<nlohmann::json> co_exec_inspect(std::string exec_id, Deadline deadline = {}) {
    co_return co_await co_call("GET", co_await co_path("/exec/" + exec_id + "/json"), std::nullopt, within(deadline));
  }

  std::string exec_create(const std::string& container, const nlohmann::json& config, Deadline deadline = {}) {
    return blocking([&] { return co_exec_create(container, config, deadline); });
  }
  http::UpgradedConnection<typename Client::transport_type> exec_start(const std::string& exec_id, Deadline deadline = {}) {
    auto upgraded = client_.upgrade(start_request(path("/exec/" + exec_id + "/start")), within(deadline));
    if (!upgraded.upgraded()) throw_status(upgraded.response(), "docker: start exec " + exec_id);
    return upgraded;
  }
  nlohmann::json exec_inspect(const std::string& exec_id, Deadline deadline = {}) {
    return blocking([&] { return co_exec_inspect(exec_id, deadline); });
  }

  // --- archives
  Task<http::Response> co_put_archive(std::string container, std::string directory, http::BodySource tar,
                                      std::uint64_t size, http::RequestOptions options = {}) {
    http::QueryParams q{{"path", directory}, {"noOverwriteDirNonDir", "true"}};
    std::string r_target = co_await co_path("/containers/" + container + "/archive", std::move(q));
    http::Request r{.method = "PUT", .target = std::move(r_target)};
    r.headers.set("Content-Type", "application/x-tar");
    r.source = std::move(tar);
    r.source_size = size;
    co_return co_await client_.co_request(std::move(r), std::move(options));
  }
  // Whether `path` exists in the container (HEAD of its archive: the daemon stats it).
  Task<bool> co_path_exists(std::string container, std::string file) {
    http::QueryParams q{{"path", file}};
    std::string request_target = co_await co_path("/containers/" + container + "/archive", std::move(q));
    http::Request request{.method = "HEAD", .target = std::move(request_target)};
    const auto r = co_await client_.co_request(std::move(request));
    if (r.status == 404) co_return false;
    if (!r.ok()) throw_status(r, "docker: stat " + file + " in container " + container.substr(0, 12));
    co_return true;
  }
  Task<http::Response> co_get_archive(std::string container, std::string file, http::RequestOptions options = {}) {
    http::QueryParams q{{"path", file}};
    std::string r_target = co_await co_path("/containers/" + container + "/archive", std::move(q));
    http::Request r{.method = "GET", .target = std::move(r_target)};
    r.headers.set("Accept-Encoding", "identity");
    co_return co_await client_.co_request(std::move(r), std::move(options));
  }

  http::Response put_archive(const std::string& container, const std::string& directory, http::BodySource tar,
                             std::uint64_t size, const http::RequestOptions& options = {}) {
    return blocking([&] { return co_put_archive(container, directory, std::move(tar), size, options); });
  }
  bool path_exists(const std::string& container, const std::string& file) {
    return blocking([&] { return co_path_exists(container, file); });
  }
  http::Response get_archive(const std::string& container, const std::string& file, const http::RequestOptions& options = {}) {
    return blocking([&] { return co_get_archive(container, file, options); });
  }

  [[noreturn]] static void throw_status(const http::Response& r, const std::string& what) {
    http::check_status(r, what);
    throw Error(errc::http_error, what + ": unexpected status " + std::to_string(r.status), r.status, {});
  }

 private:
  template <class Make>
  static auto blocking(Make&& make) {
    return workspace::detail::run_blocking(std::forward<Make>(make));
  }

  Task<nlohmann::json> co_call_at(std::string method, std::string p) {
    co_return co_await co_call(std::move(method), co_await co_path(std::move(p)));
  }

  static http::Request start_request(std::string target) {
    http::Request r{.method = "POST", .target = std::move(target), .body = R"({"Detach":false,"Tty":false})"};
    r.headers.set("Content-Type", "application/json");
    return r;
  }

  static http::RequestOptions within(Deadline deadline) {
    http::RequestOptions o;
    o.deadline = deadline;
    return o;
  }

  static Client make_client(const EngineOptions& options) {
    http::ClientOptions http_options = options.http;
    const std::string address = detail::client_address(options, http_options);
    return Client(address, http_options);
  }

  // "1.41" < "1.9"? Compares dotted versions numerically.
  static bool older(const std::string& a, const std::string& b) {
    const auto parts = [](const std::string& v) {
      const auto dot = v.find('.');
      return std::pair<int, int>(std::atoi(v.substr(0, dot).c_str()),
                                 dot == std::string::npos ? 0 : std::atoi(v.substr(dot + 1).c_str()));
    };
    return parts(a) < parts(b);
  }

  Client client_;
  std::string pinned_;
  // The versions negotiated by this process, by endpoint (guarded by version_mutex_ too: it is
  // static, so the lock must be).
  static std::map<std::string, std::string>& negotiated() {
    static std::map<std::string, std::string> versions;
    return versions;
  }
  static inline std::mutex version_mutex_;
  std::string version_;
};

using Engine = BasicEngine<>;

}  // namespace docker
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
