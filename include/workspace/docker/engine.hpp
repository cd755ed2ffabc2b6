// The Docker Engine API, as much of it as DockerWorkspace needs: version negotiation, images
// (inspect, pull, build), containers, exec and archives. Every path is versioned; every error
// carries the daemon's own message.
#pragma once

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
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
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

  // The version every path is prefixed with, negotiated once with /_ping.
  std::string api_version() {
    std::lock_guard lock(version_mutex_);
    if (!version_.empty()) return version_;
    if (!pinned_.empty()) return version_ = pinned_;
    const auto r = client_.get("/_ping");
    http::check_status(r, "GET /_ping on " + endpoint());
    std::string server = r.headers.get("Api-Version");
    if (server.empty()) server = "1.24";
    if (older(server, std::string(min_api_version)))
      throw Error(errc::unsupported, "docker: the daemon at " + endpoint() + " speaks API " + server +
                                         ", older than " + std::string(min_api_version));
    version_ = older(server, std::string(max_api_version)) ? server : std::string(max_api_version);
    return version_;
  }

  // "/v1.41/containers/json" and the like.
  std::string path(std::string_view p, const http::QueryParams& query = {}) {
    return "/v" + api_version() + http::make_target(p, query);
  }

  // A JSON call; `what` names the operation for messages. Non-2xx throws with the daemon's text.
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body = std::nullopt,
                      const http::RequestOptions& options = {}) {
    try {
      return client_.request_json(std::move(method), std::move(target), body, options);
    } catch (const http::TransportError& e) {
      throw e.prefixed("docker");  // keeps its progress for the callers that look (uploads)
    } catch (const Error& e) {
      throw workspace::detail::prefixed(e, "docker");
    }
  }

  // --- images
  bool image_exists(const std::string& reference) {
    const auto r = client_.get(path("/images/" + reference + "/json"));
    if (r.status == 404) return false;
    http::check_status(r, "docker: inspect image " + reference);
    return true;
  }

  void pull(const std::string& reference, const ProgressCallback& progress = {}) {
    const auto [image, tag] = detail::split_reference(reference);
    http::QueryParams q{{"fromImage", image}};
    if (!tag.empty()) q.emplace_back("tag", tag);
    detail::JsonLines lines("docker: pull " + reference, progress);
    http::RequestOptions o;
    o.on_body = [&](std::string_view d) { return lines.feed(d); };
    std::string error_body;
    http::Request r{.method = "POST", .target = path("/images/create", q)};
    auto response = client_.request(std::move(r), o);
    if (!response.ok()) throw_status(response, "docker: pull " + reference);
    lines.finish();
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
  std::string create_container(const nlohmann::json& config, const std::string& name = {},
                               const std::string& platform = {}) {
    http::QueryParams q;
    if (!name.empty()) q.emplace_back("name", name);
    if (!platform.empty()) q.emplace_back("platform", platform);
    return call("POST", path("/containers/create", q), config)["Id"].template get<std::string>();
  }
  void start(const std::string& id) { call("POST", path("/containers/" + id + "/start")); }
  void pause(const std::string& id) { call("POST", path("/containers/" + id + "/pause")); }
  // Stops the container: its init gets SIGTERM, then SIGKILL after `seconds`.
  void stop(const std::string& id, int seconds = 10) {
    call("POST", path("/containers/" + id + "/stop", {{"t", std::to_string(seconds)}}));
  }
  void unpause(const std::string& id) { call("POST", path("/containers/" + id + "/unpause")); }
  nlohmann::json inspect(const std::string& id) { return call("GET", path("/containers/" + id + "/json")); }
  // Removes a container, killing it first; a container already gone is not an error.
  void remove(const std::string& id) {
    const auto r = client_.del(path("/containers/" + id, {{"force", "true"}, {"v", "true"}}));
    if (r.status == 404) return;
    if (!r.ok()) throw_status(r, "docker: remove container " + id);
  }
  nlohmann::json list_containers(const nlohmann::json& filters) {
    return call("GET", path("/containers/json", {{"all", "true"}, {"filters", filters.dump()}}));
  }

  // --- exec
  // Every exec call ends by `deadline` (a command's), besides the client's own timeouts.
  std::string exec_create(const std::string& container, const nlohmann::json& config, Deadline deadline = {}) {
    return call("POST", path("/containers/" + container + "/exec"), config, within(deadline))["Id"].template get<std::string>();
  }
  http::UpgradedConnection<typename Client::transport_type> exec_start(const std::string& exec_id, Deadline deadline = {}) {
    http::Request r{.method = "POST", .target = path("/exec/" + exec_id + "/start"),
                    .body = R"({"Detach":false,"Tty":false})"};
    r.headers.set("Content-Type", "application/json");
    auto upgraded = client_.upgrade(std::move(r), within(deadline));
    if (!upgraded.upgraded()) throw_status(upgraded.response(), "docker: start exec " + exec_id);
    return upgraded;
  }
  nlohmann::json exec_inspect(const std::string& exec_id, Deadline deadline = {}) {
    return call("GET", path("/exec/" + exec_id + "/json"), std::nullopt, within(deadline));
  }

  // --- archives
  http::Response put_archive(const std::string& container, const std::string& directory, http::BodySource tar,
                             std::uint64_t size, const http::RequestOptions& options = {}) {
    http::Request r{.method = "PUT", .target = path("/containers/" + container + "/archive",
                                                    {{"path", directory}, {"noOverwriteDirNonDir", "true"}})};
    r.headers.set("Content-Type", "application/x-tar");
    r.source = std::move(tar);
    r.source_size = size;
    return client_.request(std::move(r), options);
  }
  // Whether `path` exists in the container (HEAD of its archive: the daemon stats it).
  bool path_exists(const std::string& container, const std::string& file) {
    const auto r = client_.request(
        http::Request{.method = "HEAD", .target = path("/containers/" + container + "/archive", {{"path", file}})});
    if (r.status == 404) return false;
    if (!r.ok()) throw_status(r, "docker: stat " + file + " in container " + container.substr(0, 12));
    return true;
  }
  http::Response get_archive(const std::string& container, const std::string& file, const http::RequestOptions& options = {}) {
    http::Request r{.method = "GET", .target = path("/containers/" + container + "/archive", {{"path", file}})};
    r.headers.set("Accept-Encoding", "identity");
    return client_.request(std::move(r), options);
  }

  [[noreturn]] static void throw_status(const http::Response& r, const std::string& what) {
    http::check_status(r, what);
    throw Error(errc::http_error, what + ": unexpected status " + std::to_string(r.status), r.status, {});
  }

 private:
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
  std::mutex version_mutex_;
  std::string version_;
};

using Engine = BasicEngine<>;

}  // namespace docker
WORKSPACE_NAMESPACE_END
