// DaytonaWorkspace: a Daytona sandbox, through Daytona's REST API (lifecycle) and the toolbox
// behind the sandbox's toolboxProxyUrl (commands, files).
//
//   workspace::DaytonaWorkspace ws({.snapshot = "daytona-small"});   // key from DAYTONA_API_KEY
//   auto r = ws.execute_command("python3 -c 'print(6*7)'");
//
// Commands run as async session commands under the same runner as RemoteWorkspace (see
// agent/detail/runner.hpp): stdout and stderr stay apart and byte-exact, the timeout is the
// runner's own (sub-second, whole process tree), and the output callback streams from the
// spool files. Every sandbox it creates carries labels naming this library and its owner
// process, so reap_orphans() finds what a dead process left; on destruction the sandbox is
// deleted, stopped or kept, as configured.
#pragma once

#include <workspace/agent/detail/runner.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/files.hpp>
#include <workspace/core/detail/owner.hpp>
#include <workspace/core/detail/shell.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/http/body.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/detail/transfer.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/http/url.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

WORKSPACE_NAMESPACE_BEGIN

enum class DaytonaOnClose { delete_sandbox, stop, keep };

struct DaytonaWorkspaceOptions {
  // Credentials and endpoint: empty means the environment (DAYTONA_API_KEY; DAYTONA_API_URL,
  // else DAYTONA_SERVER_URL, else https://app.daytona.io/api; DAYTONA_TARGET).
  std::string api_key{};
  std::string api_url{};
  std::string target{};
  // What to create: a snapshot, or an image (sent as buildInfo "FROM <image>"); neither: the
  // service's default snapshot. Resources apply to images only (the API refuses them otherwise).
  std::string snapshot{};
  std::string image{};
  std::optional<int> cpu{}, memory_gb{}, disk_gb{};
  std::string name{};
  std::string user{};
  std::map<std::string, std::string> env{};
  std::map<std::string, std::string> labels{};
  std::optional<int> auto_stop_minutes{};
  std::optional<int> auto_archive_minutes{};
  std::optional<int> auto_delete_minutes{};
  // Or attach to an existing sandbox: by id or name, or the one sandbox carrying these labels.
  std::string attach_to{};
  std::map<std::string, std::string> attach_labels{};
  std::string working_dir{};  // empty: the sandbox's work dir as the toolbox reports it
  DaytonaOnClose on_close = DaytonaOnClose::delete_sandbox;  // for sandboxes it created
  std::chrono::milliseconds start_timeout{std::chrono::seconds(60)};      // until "started"
  std::chrono::milliseconds transition_budget{std::chrono::seconds(60)};  // 409/502 retries
  std::chrono::milliseconds max_poll_interval{100};  // command completion polls back off to this
  std::chrono::milliseconds stream_interval{200};    // spool reads while a callback streams
  std::chrono::milliseconds timeout_grace{5000};     // client deadline past the command's
  std::uint64_t inline_output_limit = 256 * 1024;
  http::ClientOptions client{};
};

namespace daytona::detail {

inline std::string env_or(const char* name, std::string fallback = {}) {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : std::move(fallback);
}

inline std::string trim_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// The toolbox answers 502 (empty) or 400 "...Is the Sandbox started?" while a sandbox changes
// state, and the API 409 while a transition runs: worth waiting out.
inline bool transitional(const Error& e) {
  const int s = e.http_status();
  if (s == 502 || s == 503 || s == 409) return true;
  return s == 400 && std::string_view(e.what()).find("Is the Sandbox started") != std::string_view::npos;
}

}  // namespace daytona::detail

template <class Client = http::Client<http::TcpOrTls>>
class BasicDaytonaWorkspace {
 public:
  using client_type = Client;

  explicit BasicDaytonaWorkspace(DaytonaWorkspaceOptions options = {}) : state_(std::make_unique<State>()) {
    auto& o = state_->options;
    o = std::move(options);
    with_credentials(o);
    if (o.target.empty()) o.target = daytona::detail::env_or("DAYTONA_TARGET");
    if (o.api_key.empty()) throw Error(errc::invalid_argument, "DaytonaWorkspace: no API key (set DAYTONA_API_KEY)");
    if (!o.snapshot.empty() && !o.image.empty())
      throw Error(errc::invalid_argument, "DaytonaWorkspace: give a snapshot or an image, not both");
    if (o.image.empty() && (o.cpu || o.memory_gb || o.disk_gb))
      throw Error(errc::invalid_argument, "DaytonaWorkspace: cpu, memory and disk apply to image sandboxes only");
    o.api_url = daytona::detail::trim_slashes(o.api_url);
    state_->api = std::make_unique<Client>(o.api_url, o.client);
    try {
      if (!o.attach_to.empty() || !o.attach_labels.empty()) attach();
      else create();
      wait_until_started();
      connect_toolbox();
    } catch (...) {
      // A failed start deletes the sandbox it created, whatever on_close says: nobody holds its
      // id. One it attached to is left as it was.
      if (state_->owned) state_->options.on_close = DaytonaOnClose::delete_sandbox;
      close_quietly();
      throw;
    }
  }

  // An existing sandbox by id or name, with the credentials from the environment.
  static BasicDaytonaWorkspace attach(const std::string& id_or_name) {
    DaytonaWorkspaceOptions o;
    o.attach_to = id_or_name;
    return BasicDaytonaWorkspace(std::move(o));
  }

  BasicDaytonaWorkspace(BasicDaytonaWorkspace&&) noexcept = default;
  BasicDaytonaWorkspace& operator=(BasicDaytonaWorkspace&& other) noexcept {
    if (this != &other) {
      close_quietly();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ~BasicDaytonaWorkspace() { close_quietly(); }

  const std::string& id() const noexcept { return state_->id; }
  const std::string& working_dir() const noexcept { return state_->working_dir; }
  // Leaves the sandbox as it is when this workspace goes away.
  void detach() noexcept { state_->owned = false; }

  // The sandbox as the API describes it now.
  nlohmann::json describe() { return api_json("GET", http::make_target("/sandbox/" + state_->id)); }

  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    detail::validate_command(command, options);
    const std::string cwd = options.cwd ? resolve(*options.cwd) : state_->working_dir;
    return Run(*this, command, cwd, options).run();
  }

  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = local_path, .destination_path = remote};
    if (workspace_path.empty()) return failed(result, "file_upload: empty workspace path");
    std::uint64_t size = 0;
    http::Multipart form;
    try {
      auto source = http::file_source(local_path);
      size = source.size;
      form.add_field("files[0].path", remote);
      form.add_file("files[0].file", http::detail::file_name_of(remote), std::move(source.source), size);
    } catch (const std::exception& e) {
      return failed(result, "file_upload: cannot read " + detail::quote(local_path) + ": " + e.what());
    }
    return upload(std::move(form), size, std::move(result), options);
  }

  FileOperationResult file_write(const std::string& workspace_path, std::string_view content) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = {}, .destination_path = remote};
    if (workspace_path.empty()) return failed(result, "file_write: empty workspace path");
    http::Multipart form;
    form.add_field("files[0].path", remote);
    form.add_file("files[0].file", http::detail::file_name_of(remote), std::string(content));
    return upload(std::move(form), content.size(), std::move(result), {});
  }

  FileOperationResult file_download(const std::string& workspace_path, const std::string& local_path,
                                    const TransferOptions& options = {}) {
    const std::string remote = resolve(workspace_path);
    if (workspace_path.empty())
      return failed(FileOperationResult{.source_path = remote, .destination_path = local_path},
                    "file_download: empty workspace path");
    return http::detail::download_to_file(remote, local_path, options,
                                          [&](const http::RequestOptions& o) { download(remote, o); });
  }

  FileReadResult file_read(const std::string& workspace_path) {
    const std::string remote = resolve(workspace_path);
    if (workspace_path.empty()) {
      FileReadResult result{.path = remote};
      result.error = "file_read: empty workspace path";
      return result;
    }
    return http::detail::download_to_memory(remote, [&](const http::RequestOptions& o) { download(remote, o); });
  }


  // Deletes one sandbox by id or name, with the credentials from `options` (or the
  // environment), without attaching to it: for another thread or process than its owner (a
  // signal handler's cleanup, say). A sandbox already gone is not an error.
  static void remove(const std::string& id_or_name, DaytonaWorkspaceOptions options = {}) {
    with_credentials(options);
    Client api(daytona::detail::trim_slashes(options.api_url), options.client);
    try {
      api.request_json("DELETE", http::make_target("/sandbox/" + id_or_name), std::nullopt, {},
                       auth_headers(options.api_key));
    } catch (const Error& e) {
      if (e.http_status() != 404) throw;
    }
  }

  // Deletes the sandboxes this library made on this host whose owner process is gone, with the
  // credentials from `options` (or the environment). Returns how many.
  static std::size_t reap_orphans(DaytonaWorkspaceOptions options = {}) {
    with_credentials(options);
    Client api(daytona::detail::trim_slashes(options.api_url), options.client);
    const nlohmann::json labels = {{detail::managed_label, "true"}, {detail::owner_host_label, detail::host_name()}};
    std::size_t removed = 0;
    for (const auto& sandbox : list(api, options.api_key, labels)) {
      const auto& l = sandbox.contains("labels") && sandbox["labels"].is_object() ? sandbox["labels"] : nlohmann::json::object();
      if (detail::owner_alive(l.value(detail::owner_pid_label, std::string()), l.value(detail::owner_start_label, std::string())))
        continue;
      const std::string state = sandbox.value("state", std::string());
      if (state == "destroying" || state == "destroyed") continue;  // its owner's delete is running
      try {
        api.request_json("DELETE", http::make_target("/sandbox/" + sandbox.value("id", std::string())), std::nullopt, {},
                         auth_headers(options.api_key));
        ++removed;
      } catch (const Error& e) {
        // Gone already, or in a transition (409): a later reap_orphans() takes what is left.
        if (e.http_status() != 404 && e.http_status() != 409) throw;
      }
    }
    return removed;
  }

 private:
  static void with_credentials(DaytonaWorkspaceOptions& options) {
    if (options.api_key.empty()) options.api_key = daytona::detail::env_or("DAYTONA_API_KEY");
    if (options.api_url.empty())
      options.api_url = daytona::detail::env_or("DAYTONA_API_URL",
                                                daytona::detail::env_or("DAYTONA_SERVER_URL", "https://app.daytona.io/api"));
  }

  struct State {
    DaytonaWorkspaceOptions options;
    std::unique_ptr<Client> api;
    std::unique_ptr<Client> toolbox;
    std::string toolbox_prefix;  // "/<base path of the proxy URL>/<sandbox id>" is in the client; here "/<id>"
    std::string id;
    std::string working_dir;
    bool owned = false;
  };

  static http::Headers auth_headers(const std::string& key) {
    http::Headers h;
    h.set("Authorization", "Bearer " + key);
    h.set("X-Daytona-Source", "sdk-cpp");
    return h;
  }

  nlohmann::json api_json(std::string method, std::string target, const std::optional<nlohmann::json>& body = std::nullopt,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    http::RequestOptions o;
    o.timeout = timeout;
    return state_->api->request_json(std::move(method), std::move(target), body, o, auth_headers(state_->options.api_key));
  }

  // Every sandbox carrying `labels`, from either shape of the list ({items, nextCursor} since
  // v0.180, a plain array before), following cursors.
  static std::vector<nlohmann::json> list(Client& api, const std::string& key, const nlohmann::json& labels) {
    std::vector<nlohmann::json> out;
    std::string cursor;
    for (int pages = 0; pages < 100; ++pages) {
      http::QueryParams q{{"labels", labels.dump()}};
      if (!cursor.empty()) q.emplace_back("cursor", cursor);
      const auto page = api.request_json("GET", http::make_target("/sandbox", q), std::nullopt, {}, auth_headers(key));
      const auto& items = page.is_array() ? page : (page.contains("items") ? page["items"] : nlohmann::json::array());
      for (const auto& item : items) out.push_back(item);
      if (!page.is_object() || !page.contains("nextCursor") || !page["nextCursor"].is_string()) break;
      cursor = page["nextCursor"].template get<std::string>();
      if (cursor.empty()) break;
    }
    return out;
  }

  nlohmann::json create_body() const {
    const auto& o = state_->options;
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : o.labels) labels[k] = v;
    labels[detail::managed_label] = "true";
    labels[detail::owner_pid_label] = std::to_string(::getpid());
    labels[detail::owner_start_label] = detail::process_start_time(::getpid());
    labels[detail::owner_host_label] = detail::host_name();
    nlohmann::json body = {{"labels", labels}};
    if (!o.env.empty()) body["env"] = o.env;
    if (!o.name.empty()) body["name"] = o.name;
    if (!o.user.empty()) body["user"] = o.user;
    if (!o.target.empty()) body["target"] = o.target;
    if (!o.snapshot.empty()) body["snapshot"] = o.snapshot;
    if (!o.image.empty()) {
      body["buildInfo"] = {{"dockerfileContent", "FROM " + o.image + "\n"}};
      if (o.cpu) body["cpu"] = *o.cpu;
      if (o.memory_gb) body["memory"] = *o.memory_gb;
      if (o.disk_gb) body["disk"] = *o.disk_gb;
    }
    if (o.auto_stop_minutes) body["autoStopInterval"] = *o.auto_stop_minutes;
    if (o.auto_archive_minutes) body["autoArchiveInterval"] = *o.auto_archive_minutes;
    if (o.auto_delete_minutes) body["autoDeleteInterval"] = *o.auto_delete_minutes;
    return body;
  }

  void create() {
    const auto body = create_body();
    try {
      const auto sandbox = api_json("POST", "/sandbox", body, state_->options.start_timeout + std::chrono::seconds(30));
      state_->id = sandbox.value("id", std::string());
      state_->owned = true;
      if (state_->id.empty()) throw Error(errc::protocol_error, "Daytona: the created sandbox has no id");
    } catch (const Error& e) {
      // "Sandbox failed to start" comes without the id, but the sandbox exists (in error):
      // find it by our labels and delete it before reporting.
      if (e.http_status() == 400 && std::string_view(e.what()).find("failed to start") != std::string_view::npos) {
        delete_by_labels(body["labels"]);
        throw Error(errc::bad_state, "Daytona: the sandbox did not start: " + e.server_message(), e.http_status(),
                    e.server_message());
      }
      throw;
    }
  }

  void delete_by_labels(const nlohmann::json& labels) noexcept {
    try {
      for (const auto& s : list(*state_->api, state_->options.api_key, labels))
        api_json("DELETE", http::make_target("/sandbox/" + s.value("id", std::string())));
    } catch (...) {
      // reap_orphans() finds it later.
    }
  }

  void attach() {
    const auto& o = state_->options;
    if (!o.attach_to.empty()) {
      state_->id = api_json("GET", http::make_target("/sandbox/" + o.attach_to)).value("id", std::string());
    } else {
      nlohmann::json labels = nlohmann::json::object();
      for (const auto& [k, v] : o.attach_labels) labels[k] = v;
      const auto found = list(*state_->api, o.api_key, labels);
      if (found.size() != 1)
        throw Error(found.empty() ? errc::not_found : errc::invalid_argument,
                    "Daytona: " + std::to_string(found.size()) + " sandboxes carry the labels " + labels.dump());
      state_->id = found.front().value("id", std::string());
    }
    if (state_->id.empty()) throw Error(errc::protocol_error, "Daytona: the sandbox has no id");
  }

  // Polls until "started" (100 ms, then x1.1 per poll after 5 s, at most 1 s, as the SDKs do),
  // starting a stopped or archived sandbox; error and build_failed end the wait with the reason.
  void wait_until_started() {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + state_->options.start_timeout;
    auto pause = std::chrono::milliseconds(100);
    std::string state;
    for (;;) {
      nlohmann::json sandbox;
      try {
        sandbox = describe();
      } catch (const Error& e) {
        if (!daytona::detail::transitional(e)) throw;
      }
      state = sandbox.value("state", std::string());
      if (state == "started") {
        take_sandbox(sandbox);
        return;
      }
      if (state == "error" || state == "build_failed") {
        std::string reason = sandbox.contains("errorReason") && sandbox["errorReason"].is_string()
                                 ? sandbox["errorReason"].template get<std::string>()
                                 : std::string("no reason given");
        throw Error(errc::bad_state, "Daytona: sandbox " + state_->id + " is in state " + state + ": " + reason);
      }
      if (state == "destroyed" || state == "destroying")
        throw Error(errc::not_found, "Daytona: sandbox " + state_->id + " is " + state);
      if ((state == "stopped" || state == "archived") && sandbox.value("desiredState", std::string()) != "started") {
        try {
          api_json("POST", http::make_target("/sandbox/" + state_->id + "/start"), std::nullopt, state_->options.start_timeout);
        } catch (const Error& e) {
          if (!daytona::detail::transitional(e)) throw;
        }
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline)
        throw Error(errc::timed_out, "Daytona: sandbox " + state_->id + " did not start within " +
                                         std::to_string(state_->options.start_timeout.count()) + " ms (state " + state + ")");
      std::this_thread::sleep_for(std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
      if (now - start > std::chrono::seconds(5)) pause = std::min(std::chrono::milliseconds(1000), pause * 11 / 10);
    }
  }

  void take_sandbox(const nlohmann::json& sandbox) {
    std::string proxy = sandbox.contains("toolboxProxyUrl") && sandbox["toolboxProxyUrl"].is_string()
                            ? sandbox["toolboxProxyUrl"].template get<std::string>()
                            : std::string();
    if (proxy.empty())
      proxy = api_json("GET", http::make_target("/sandbox/" + state_->id + "/toolbox-proxy-url")).value("url", std::string());
    if (proxy.empty()) throw Error(errc::protocol_error, "Daytona: sandbox " + state_->id + " has no toolboxProxyUrl");
    state_->toolbox = std::make_unique<Client>(daytona::detail::trim_slashes(proxy) + "/" + state_->id, state_->options.client);
  }

  void connect_toolbox() {
    if (!state_->options.working_dir.empty()) {
      state_->working_dir = daytona::detail::trim_slashes(state_->options.working_dir);
      if (state_->working_dir.empty()) state_->working_dir = "/";
      return;
    }
    state_->working_dir = toolbox_json("GET", "/work-dir", std::nullopt, true).value("dir", std::string("/"));
  }

  // A toolbox call, waiting out state transitions: retried on 502/409/"not started" within the
  // transition budget when it is idempotent, or when the answer shows it never reached the
  // sandbox (a proxy 502 with no body, "Is the Sandbox started?").
  http::Response toolbox_send(http::Request request, const http::RequestOptions& o, bool idempotent) {
    const auto deadline = std::chrono::steady_clock::now() + state_->options.transition_budget;
    auto pause = std::chrono::milliseconds(200);
    for (;;) {
      http::Request attempt = request;
      for (const auto& [k, v] : auth_headers(state_->options.api_key)) attempt.headers.set(k, v);
      const std::string what = "Daytona toolbox: " + state_->toolbox->describe(attempt);
      http::Response response = state_->toolbox->request(std::move(attempt), o);
      if (response.ok()) return response;
      try {
        http::check_status(response, what);
      } catch (const Error& e) {
        const bool not_reached = (response.status == 502 && response.body.empty()) ||
                                 std::string_view(e.what()).find("Is the Sandbox started") != std::string_view::npos;
        if (!daytona::detail::transitional(e)) throw;
        restart_if_stopped();  // a sandbox in error ends here, with its reason
        if (!(idempotent || not_reached) || request.source || std::chrono::steady_clock::now() + pause >= deadline)
          throw;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(2000));
    }
  }

  // Between toolbox retries: a sandbox that failed or went away ends the wait with the reason;
  // a stopped or archived one is started.
  void restart_if_stopped() {
    nlohmann::json sandbox;
    try {
      sandbox = describe();
    } catch (const Error& e) {
      if (e.code() == errc::authentication_failed) throw;
      if (e.http_status() == 404) throw Error(errc::not_found, "Daytona: sandbox " + state_->id + " no longer exists");
      return;
    }
    const std::string state = sandbox.value("state", std::string());
    if (state == "error" || state == "build_failed") {
      const std::string reason = sandbox.contains("errorReason") && sandbox["errorReason"].is_string()
                                     ? sandbox["errorReason"].template get<std::string>()
                                     : std::string("no reason given");
      throw Error(errc::bad_state, "Daytona: sandbox " + state_->id + " is in state " + state + ": " + reason);
    }
    if (state == "destroyed" || state == "destroying")
      throw Error(errc::not_found, "Daytona: sandbox " + state_->id + " is " + state);
    try {
      if ((state == "stopped" || state == "archived") && sandbox.value("desiredState", std::string()) != "started")
        api_json("POST", http::make_target("/sandbox/" + state_->id + "/start"), std::nullopt, state_->options.start_timeout);
    } catch (const Error& e) {
      if (e.code() == errc::authentication_failed) throw;
    }
  }

  nlohmann::json toolbox_json(std::string method, std::string target, const std::optional<nlohmann::json>& body,
                              bool idempotent, std::chrono::milliseconds timeout = std::chrono::seconds(60),
                              http::Headers extra = {}) {
    http::Request r{.method = std::move(method), .target = std::move(target), .headers = std::move(extra)};
    r.headers.set("Accept", "application/json");
    if (body) {
      r.headers.set("Content-Type", "application/json");
      r.body = body->dump();
    }
    http::RequestOptions o;
    o.timeout = timeout;
    const auto response = toolbox_send(std::move(r), o, idempotent);
    if (response.body.empty()) return nullptr;
    auto parsed = http::detail::parse_json(response.body);
    if (parsed.is_discarded()) return response.body;  // text answers (logs) come back as a string
    return parsed;
  }

  void download(const std::string& remote, const http::RequestOptions& o) {
    http::Request r{.method = "GET", .target = http::make_target("/files/download", {{"path", remote}})};
    toolbox_send(std::move(r), o, true);
  }

  FileOperationResult upload(http::Multipart form, std::uint64_t size, FileOperationResult result,
                             const TransferOptions& options) {
    http::Request r{.method = "POST", .target = "/files/bulk-upload"};
    r.headers.set("Accept", "application/json");
    http::RequestOptions o;
    o.on_upload = http::detail::file_part_progress(form, size, options);
    std::move(form).attach_to(r);
    try {
      toolbox_send(std::move(r), o, false);
    } catch (const Error& e) {
      if (e.code() == errc::authentication_failed) throw;
      return failed(std::move(result), "file_upload " + (result.source_path.empty() ? std::string() : result.source_path + " -> ") +
                                           result.destination_path + ": " + e.what());
    }
    result.success = true;
    result.file_size = size;
    return result;
  }

  std::string resolve(const std::string& path) const {
    if (path.empty()) return path;
    return detail::resolve_workspace_path(state_->working_dir, path);
  }

  static FileOperationResult failed(FileOperationResult result, std::string why) {
    return http::detail::failed_transfer(std::move(result), std::move(why));
  }


  // Deletes (or stops) the sandbox it created, waiting out a transition in progress (409).
  void close_quietly() noexcept {
    if (!state_ || state_->id.empty() || !state_->owned || state_->options.on_close == DaytonaOnClose::keep) return;
    state_->owned = false;
    const bool stop = state_->options.on_close == DaytonaOnClose::stop;
    const auto deadline = std::chrono::steady_clock::now() + state_->options.transition_budget;
    for (auto pause = std::chrono::milliseconds(200);; pause = std::min(pause * 2, std::chrono::milliseconds(2000))) {
      try {
        if (stop) api_json("POST", http::make_target("/sandbox/" + state_->id + "/stop"));
        else api_json("DELETE", http::make_target("/sandbox/" + state_->id));
        return;
      } catch (const Error& e) {
        if (e.http_status() == 404) return;
        if (e.http_status() != 409 || std::chrono::steady_clock::now() + pause >= deadline) return;
      } catch (...) {
        return;  // reap_orphans() finds it later
      }
      std::this_thread::sleep_for(pause);
    }
  }

  // One command: a session of its own, the runner as an async command in it, its completion
  // polled, its last line read from the logs.
  class Run {
   public:
    Run(BasicDaytonaWorkspace& ws, const std::string& command, std::string cwd, const CommandOptions& options)
        : ws_(ws), options_(options), cwd_(std::move(cwd)), token_(workspace::detail::random_token()),
          spool_("/tmp/.workspace-run-" + token_), session_("workspace-" + token_),
          result_(command, options.on_output),
          output_([this](OutputStream s, std::uint64_t offset, std::string_view bytes) { result_.take(s, offset, bytes); }) {
    }

    CommandResult run() {
      const auto& wo = ws_.state_->options;
      const bool timed = options_.timeout != no_timeout;
      const auto started = std::chrono::steady_clock::now();
      const auto deadline = timed ? started + options_.timeout + wo.timeout_grace
                                  : std::chrono::steady_clock::time_point::max();
      const std::string runner = agent::detail::runner_command(
          spool_, cwd_, timed ? agent::detail::seconds_text(options_.timeout) : std::string(),
          static_cast<long long>(wo.inline_output_limit), token_, result_.command(), options_.env,
          options_.on_output ? 10 : 0, /*new_session=*/true,
          /*make_cwd=*/cwd_ == ws_.state_->working_dir);
      // A child shell: the session's own shell must not run our `set --` or `exit`.
      const std::string line = "/bin/sh -c " + workspace::detail::shell_quote(runner);

      ws_.toolbox_json("POST", "/process/session", nlohmann::json{{"sessionId", session_}}, false);
      try {
        const auto exec = ws_.toolbox_json(
            "POST", http::make_target("/process/session/" + session_ + "/exec"),
            nlohmann::json{{"command", line}, {"runAsync", true}}, false);
        const std::string cmd_id = exec.is_object() ? exec.value("cmdId", std::string()) : std::string();
        if (cmd_id.empty()) throw Error(errc::protocol_error, "Daytona: the session command has no cmdId");
        const std::string command_path = "/process/session/" + session_ + "/command/" + cmd_id;

        auto wait = std::chrono::milliseconds(1);
        auto next_stream = started + std::chrono::milliseconds(100);
        bool ended = false;
        while (!ended) {
          if (std::chrono::steady_clock::now() >= deadline) break;
          const auto status = ws_.toolbox_json("GET", http::make_target(command_path), std::nullopt, true);
          ended = status.is_object() && status.contains("exitCode") && status["exitCode"].is_number_integer();
          if (ended) break;
          if (options_.on_output && std::chrono::steady_clock::now() >= next_stream) {
            read_spool(false);
            next_stream = std::chrono::steady_clock::now() + wo.stream_interval;
          }
          std::this_thread::sleep_for(wait);
          wait = std::min(wait * 2, wo.max_poll_interval);
        }
        CommandResult result = ended ? finish(command_path + "/logs") : abandon();
        delete_session();
        return result;
      } catch (...) {
        kill_quietly();
        delete_session();
        throw;
      }
    }

   private:

    // The toolbox has no ranges: each read takes the whole file and skips what was taken.
    void read_spool(bool to_end) {
      for (std::size_t i = 0; i < 2; ++i) {
        const OutputStream s = i == 0 ? OutputStream::std_out : OutputStream::std_err;
        std::uint64_t offset = 0;
        http::RequestOptions o;
        if (!to_end) o.idle_timeout = std::chrono::seconds(5);
        o.on_body = [&](std::string_view data) {
          result_.take(s, offset, data);
          offset += data.size();
          return true;
        };
        try {
          ws_.download(spool_ + (i == 0 ? ".o" : ".e"), o);
        } catch (const Error& e) {
          if (!to_end && e.code() != errc::authentication_failed) continue;
          throw;
        }
      }
    }

    CommandResult finish(const std::string& logs_path) {
      const auto logs = ws_.toolbox_json("GET", http::make_target(logs_path), std::nullopt, true);
      if (logs.is_string()) output_.feed(logs.template get_ref<const std::string&>());
      else if (logs.is_object() && logs.contains("output") && logs["output"].is_string())
        output_.feed(logs["output"].template get_ref<const std::string&>());
      const auto trailer = output_.trailer();
      if (!trailer) return abandon();
      switch (trailer->mode) {
        case 'c':
          throw Error(errc::not_found, "execute_command: cwd " + detail::quote(cwd_) + " does not exist in sandbox " +
                                           ws_.state_->id);
        case 'd':
          throw Error(errc::io_error, "Daytona: cannot write the spool files " + detail::quote(spool_) + ".*");
        case 'f':
          read_spool(true);
          remove_spool();
          break;
        default:
          break;
      }
      return std::move(result_).finish(*trailer);
    }

    CommandResult abandon() {
      try {
        read_spool(false);
      } catch (const Error& e) {
        if (e.code() == errc::authentication_failed) throw;
      }
      kill_quietly();
      return std::move(result_).timed_out();
    }

    void remove_spool() noexcept {
      try {
        ws_.toolbox_json("POST", "/process/execute",
                         nlohmann::json{{"command", agent::detail::cleanup_command(spool_, token_, false)}, {"timeout", 30}},
                         false);
      } catch (...) {
      }
    }

    void kill_quietly() noexcept {
      try {
        ws_.toolbox_json("POST", "/process/execute",
                         nlohmann::json{{"command", agent::detail::cleanup_command(spool_, token_, true)}, {"timeout", 30}},
                         false);
      } catch (...) {
      }
    }

    void delete_session() noexcept {
      try {
        ws_.toolbox_json("DELETE", http::make_target("/process/session/" + session_), std::nullopt, true);
      } catch (...) {
      }
    }

    BasicDaytonaWorkspace& ws_;
    const CommandOptions& options_;
    std::string cwd_;
    std::string token_;
    std::string spool_;
    std::string session_;
    agent::detail::ResultBuilder result_;
    agent::detail::RunnerOutput output_;
  };

  std::unique_ptr<State> state_;
};

using DaytonaWorkspace = BasicDaytonaWorkspace<>;

static_assert(Workspace<DaytonaWorkspace>);
static_assert(Attachable<DaytonaWorkspace>);

WORKSPACE_NAMESPACE_END
