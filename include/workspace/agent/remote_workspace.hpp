// RemoteWorkspace: a workspace served by an OpenHands agent server (the /api/bash, /api/file and
// /api/git endpoints), e.g. one started by a runtime API or in a container.
//
//   workspace::RemoteWorkspace ws("http://127.0.0.1:8000", session_api_key, "/workspace");
//   auto r = ws.execute_command("make test");
//
// Commands go through POST /api/bash/start_bash_command and GET /api/bash/bash_events/search,
// wrapped in a small runner (see agent/detail/runner.hpp) so that output stays byte-exact,
// streams while the command runs, and timeouts are enforced to the millisecond and kill every
// process of the command. Files stream through /api/file/upload and /api/file/download.
#pragma once

#include <workspace/agent/detail/runner.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/files.hpp>
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
#include <workspace/http/websocket.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <sys/stat.h>

WORKSPACE_NAMESPACE_BEGIN

struct RemoteWorkspaceOptions {
  std::string host;             // the agent server's base URL, e.g. http://127.0.0.1:8000
  std::string session_api_key;  // sent as X-Session-API-Key on /api/*; empty for none
  std::string working_dir = "/workspace";  // absolute; where commands run and paths resolve
  http::ClientOptions client{};
  // Start commands and hear their events on the server's /sockets/bash-events websocket (about
  // twice as fast as polling, and it spares the server's event search); when the server or a
  // proxy refuses the upgrade, or the socket breaks, commands are started and followed by REST.
  bool use_websocket = true;
  // Polls for a command's end start at once and back off to this.
  std::chrono::milliseconds max_poll_interval{50};
  // With an output callback, the spool files are read this often while the command runs.
  std::chrono::milliseconds stream_interval{100};
  // How long the server's own timeout (whole seconds) and the client's deadline wait beyond the
  // command's timeout before they step in; the runner's watchdog normally acts first.
  std::chrono::milliseconds kill_grace{2000};
  std::chrono::milliseconds timeout_grace{5000};
  // Output up to this many bytes (both streams) comes back in the command's final event;
  // more is read from the spool files, which is cheaper for large output.
  std::uint64_t inline_output_limit = 256 * 1024;
  // Where the runner keeps a command's output while it runs, on the server's machine.
  std::string spool_dir = "/tmp";
};

template <class Client = http::Client<http::TcpOrTls>>
class BasicRemoteWorkspace {
 public:
  using client_type = Client;

  BasicRemoteWorkspace(std::string host, std::string session_api_key, std::string working_dir)
      : BasicRemoteWorkspace(RemoteWorkspaceOptions{.host = std::move(host),
                                                    .session_api_key = std::move(session_api_key),
                                                    .working_dir = std::move(working_dir)}) {}

  explicit BasicRemoteWorkspace(RemoteWorkspaceOptions options)
      : options_(std::move(options)), key_(std::make_shared<Key>()),
        websocket_refused_(std::make_shared<std::atomic<bool>>(false)) {
    if (options_.working_dir.empty() || options_.working_dir.front() != '/')
      throw Error(errc::invalid_argument, "RemoteWorkspace: working_dir must be absolute, got " +
                                              detail::quote(options_.working_dir));
    while (options_.working_dir.size() > 1 && options_.working_dir.back() == '/') options_.working_dir.pop_back();
    while (!options_.host.empty() && options_.host.back() == '/') options_.host.pop_back();
    client_ = std::make_shared<Client>(options_.host, options_.client);
    key_->value = std::move(options_.session_api_key);
    options_.session_api_key.clear();
  }

  const std::string& working_dir() const noexcept { return working_dir_ref(); }
  const std::string& host() const noexcept { return options_.host; }
  Client& client() noexcept { return *client_; }

  // Replaces the session key (a runtime issues a new one when it resumes).
  void set_session_api_key(std::string key) {
    {
      std::lock_guard lock(key_->mutex);
      key_->value = std::move(key);
    }
    sockets_->clear();  // authenticated with the old key
  }

  // GET /health (no key needed): true when the server answers 2xx.
  bool alive() noexcept {
    try {
      http::RequestOptions o;
      o.timeout = std::chrono::seconds(5);
      return client_->request(http::Request{.method = "GET", .target = "/health"}, o).ok();
    } catch (...) {
      return false;
    }
  }

  // GET /server_info: version, uptime, idle time and capabilities.
  nlohmann::json server_info() { return call("GET", "/server_info", std::nullopt, {}); }

  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    detail::validate_command(command, options);
    const std::string cwd = options.cwd ? resolve(*options.cwd) : working_dir_ref();
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
      form.add_file("file", http::detail::file_name_of(remote), std::move(source.source), size);
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
    form.add_file("file", http::detail::file_name_of(remote), std::string(content));
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


  // The git changes below `path` (relative to working_dir unless absolute), as the server's
  // /api/git/changes reports them; empty when it is not a repository.
  std::vector<GitChange> git_changes(const std::string& path) {
    const auto list = call("GET", http::make_target("/api/git/changes", {{"path", resolve(path)}}), std::nullopt, {});
    std::vector<GitChange> changes;
    if (!list.is_array()) throw Error(errc::protocol_error, "agent server: /api/git/changes did not answer a list");
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

  // The file `path` now and at the base revision.
  GitDiff git_diff(const std::string& path) {
    const auto diff = call("GET", http::make_target("/api/git/diff", {{"path", resolve(path)}}), std::nullopt, {});
    GitDiff out;
    if (diff.contains("modified") && diff["modified"].is_string()) out.modified = diff["modified"].template get<std::string>();
    if (diff.contains("original") && diff["original"].is_string()) out.original = diff["original"].template get<std::string>();
    return out;
  }

 private:
  struct Key {
    std::mutex mutex;
    std::string value;
  };

  using Socket = http::WebSocket<typename Client::transport_type>;

  // One authenticated event socket kept between commands: opening one costs a connection, an
  // upgrade and the auth frame. The server pushes every event to it meanwhile, so an idle socket
  // is drained before reuse and dropped after a while.
  struct SocketPool {
    static constexpr std::chrono::seconds max_idle{20};
    std::mutex mutex;
    std::optional<Socket> idle;
    std::chrono::steady_clock::time_point since{};

    std::optional<Socket> take() {
      std::optional<Socket> out;
      {
        std::lock_guard lock(mutex);
        if (!idle) return out;
        if (std::chrono::steady_clock::now() - since < max_idle) out = std::move(idle);
        idle.reset();
      }
      try {
        while (out && out->receive(std::chrono::steady_clock::now())) {
        }
      } catch (const Error&) {
        out.reset();  // closed meanwhile
      }
      return out;
    }
    void give_back(Socket socket) {
      std::lock_guard lock(mutex);
      if (idle) return;  // one is enough; this one closes
      idle = std::move(socket);
      since = std::chrono::steady_clock::now();
    }
    void clear() {
      std::lock_guard lock(mutex);
      idle.reset();
    }
  };

  const std::string& working_dir_ref() const noexcept { return options_.working_dir; }

  std::string resolve(const std::string& path) const {
    if (path.empty()) return path;
    return detail::resolve_workspace_path(options_.working_dir, path);
  }

  static FileOperationResult failed(FileOperationResult result, std::string why) {
    return http::detail::failed_transfer(std::move(result), std::move(why));
  }


  std::string session_key() const {
    std::lock_guard lock(key_->mutex);
    return key_->value;
  }

  http::Response send(http::Request request, const http::RequestOptions& options) {
    const std::string key = session_key();
    if (!key.empty()) request.headers.set("X-Session-API-Key", key);
    return client_->request(std::move(request), options);
  }

  // A JSON call; non-2xx throws with the server's detail (401: authentication_failed).
  nlohmann::json call(std::string method, std::string target, const std::optional<nlohmann::json>& body,
                      const http::RequestOptions& options) {
    http::Headers headers;
    if (std::string key = session_key(); !key.empty()) headers.set("X-Session-API-Key", std::move(key));
    return client_->request_json(std::move(method), std::move(target), body, options, std::move(headers));
  }

  FileOperationResult upload(http::Multipart form, std::uint64_t size, FileOperationResult result,
                             const TransferOptions& options) {
    http::Request r{.method = "POST", .target = http::make_target("/api/file/upload", {{"path", result.destination_path}})};
    r.headers.set("Accept", "application/json");
    http::RequestOptions o;
    o.on_upload = http::detail::file_part_progress(form, size, options);
    std::move(form).attach_to(r);
    const std::string what = "agent server: " + client_->describe(r);
    try {
      const http::Response response = send(std::move(r), o);
      http::check_status(response, what);
      const auto answer = http::detail::parse_json(response.body);
      if (answer.is_object() && answer.contains("file_size") && answer["file_size"].is_number_unsigned() &&
          answer["file_size"].template get<std::uint64_t>() != size)
        return failed(std::move(result), "file_upload " + result.destination_path + ": the server wrote " +
                                             answer["file_size"].dump() + " of " + std::to_string(size) + " bytes");
    } catch (const Error& e) {
      if (e.code() == errc::authentication_failed) throw;
      return failed(std::move(result), "file_upload " + (result.source_path.empty() ? std::string() : result.source_path + " -> ") +
                                           result.destination_path + ": " + e.what());
    }
    result.success = true;
    result.file_size = size;
    return result;
  }

  // GET /api/file/download, body to o.on_body.
  void download(const std::string& remote, const http::RequestOptions& o, std::optional<std::uint64_t> from = std::nullopt,
                bool* range_empty = nullptr) {
    http::Request r{.method = "GET", .target = http::make_target("/api/file/download", {{"path", remote}})};
    if (from) r.headers.set("Range", "bytes=" + std::to_string(*from) + "-");
    const std::string what = "agent server: " + client_->describe(r);
    const http::Response response = send(std::move(r), o);
    if (range_empty && response.status == 416) {
      *range_empty = true;
      return;
    }
    if (response.status == 404)
      throw Error(errc::not_found, what + ": 404: no such file", 404,
                  http::detail::server_message(response));
    http::check_status(response, what);
  }

  // One command from start to result.
  class Run {
   public:
    Run(BasicRemoteWorkspace& ws, const std::string& command, std::string cwd, const CommandOptions& options)
        : ws_(ws), options_(options), cwd_(std::move(cwd)), token_(workspace::detail::random_token()),
          spool_(ws.options_.spool_dir + "/.workspace-run-" + token_),
          result_(command, options.on_output),
          output_([this](OutputStream s, std::uint64_t offset, std::string_view bytes) { result_.take(s, offset, bytes); }) {
    }

    CommandResult run() {
      const auto& wo = ws_.options_;
      const bool timed = options_.timeout != no_timeout;
      const auto started = std::chrono::steady_clock::now();
      // The server counts whole seconds; rounded up past our own watchdog, it is only a backstop.
      const long long server_timeout =
          timed ? (options_.timeout + wo.kill_grace + std::chrono::milliseconds(999)).count() / 1000
                : 10LL * 365 * 24 * 3600;
      const auto deadline = timed ? started + options_.timeout + wo.kill_grace + wo.timeout_grace
                                  : std::chrono::steady_clock::time_point::max();
      const std::string line = agent::detail::runner_command(
          spool_, cwd_, timed ? agent::detail::seconds_text(options_.timeout) : std::string(),
          static_cast<long long>(wo.inline_output_limit), token_, result_.command(), options_.env,
          options_.on_output ? 10 : 0, /*new_session=*/false, /*make_cwd=*/cwd_ == ws_.working_dir_ref());

      line_ = line;
      server_timeout_ = server_timeout;
      if (wo.use_websocket && !ws_.websocket_refused_->load()) start_on_socket(started);
      if (!socket_) start_by_rest();

      try {
        auto wait = std::chrono::milliseconds(0);
        auto next_stream = started + std::chrono::milliseconds(50);
        auto next_check = started + std::chrono::seconds(1);
        bool gave_up = false;
        while (!exit_code_) {
          const auto now = std::chrono::steady_clock::now();
          if (now >= deadline) {
            gave_up = true;
            break;
          }
          if (socket_) {
            // Events arrive by themselves; a search now and then covers any the socket missed.
            auto wake = std::min(deadline, next_check);
            if (options_.on_output) wake = std::min(wake, next_stream);
            listen(wake);
            if (exit_code_) break;
            if (std::chrono::steady_clock::now() >= next_check) {
              if (command_id_.empty()) find_command_id();
              if (!command_id_.empty()) poll(deadline);
              next_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            }
          } else {
            poll(deadline);
            if (exit_code_) break;
          }
          if (options_.on_output && std::chrono::steady_clock::now() >= next_stream) {
            read_spool(false);
            next_stream = std::chrono::steady_clock::now() + wo.stream_interval;
          }
          if (!socket_) {
            std::this_thread::sleep_for(wait);
            wait = wait.count() == 0 ? std::chrono::milliseconds(1) : std::min(wait * 2, wo.max_poll_interval);
          }
        }
        if (socket_ && !gave_up && socket_->is_open()) ws_.sockets_->give_back(std::move(*socket_));
        socket_.reset();
        if (gave_up) return abandon();
        return finish();
      } catch (...) {
        socket_.reset();
        cleanup_quietly(true);
        throw;
      }
    }

   private:
    void start_by_rest() {
      http::RequestOptions start_options;
      start_options.timeout = std::chrono::seconds(30);
      const auto started_command = ws_.call(
          "POST", "/api/bash/start_bash_command", nlohmann::json{{"command", line_}, {"timeout", server_timeout_}},
          start_options);
      if (!started_command.contains("id") || !started_command["id"].is_string())
        throw Error(errc::protocol_error, "agent server: start_bash_command answered no command id");
      command_id_ = started_command["id"].template get<std::string>();
    }

    // Subscribes, authenticates in the first frame and sends the command in the second: the
    // server reads them in order, so the subscription exists before the command starts. The
    // command is recognised in the BashCommand event by its text, which holds our token. Any
    // failure before the command can have started leaves socket_ empty for start_by_rest().
    void start_on_socket(std::chrono::steady_clock::time_point started) {
      const auto connect_deadline = started + std::chrono::seconds(10);
      if ((socket_ = ws_.sockets_->take())) {
        try {
          socket_->send_text(nlohmann::json{{"command", line_}, {"timeout", server_timeout_}}.dump(), connect_deadline);
          sent_on_socket_ = true;
          return;
        } catch (const Error&) {
          socket_.reset();  // a fresh one below
        }
      }
      try {
        socket_.emplace(Socket::connect(*ws_.client_, "/sockets/bash-events", {}, connect_deadline));
      } catch (const Error& e) {
        // A refused upgrade (a proxy without websockets, an older server) is remembered; a
        // connection failure is left to the REST call to report.
        if (e.code() != errc::connection_failed && e.code() != errc::timed_out) ws_.websocket_refused_->store(true);
        socket_.reset();
        return;
      }
      try {
        socket_->send_text(nlohmann::json{{"type", "auth"}, {"session_api_key", ws_.session_key()}}.dump(),
                           connect_deadline);
        socket_->send_text(nlohmann::json{{"command", line_}, {"timeout", server_timeout_}}.dump(), connect_deadline);
        sent_on_socket_ = true;
      } catch (const Error&) {
        socket_.reset();
      }
    }

    // Reads socket events until `until` or our command's end.
    void listen(std::chrono::steady_clock::time_point until) {
      while (!exit_code_) {
        std::optional<std::string> message;
        try {
          message = socket_->receive(until);
        } catch (const Error& e) {
          lost_socket(e);
          return;
        }
        if (!message) return;
        const auto event = http::detail::parse_json(*message);
        if (!event.is_object()) continue;
        const std::string kind = event.value("kind", std::string());
        if (kind == "BashCommand") {
          if (command_id_.empty() && event.value("command", std::string()) == line_)
            command_id_ = event.value("id", std::string());
          for (const auto& early : early_) take_event(early);
          early_.clear();
        } else if (kind == "BashOutput") {
          if (command_id_.empty()) {
            if (early_.size() < 64) early_.push_back(event);  // may be ours; its BashCommand is on the way
          } else {
            take_event(event);
          }
        } else if (kind == "BashError") {
          throw Error(errc::protocol_error, "agent server refused the command: " + event.value("detail", std::string()));
        }
      }
    }

    void take_event(const nlohmann::json& event) {
      if (event.value("command_id", std::string()) != command_id_) return;
      accept(event);
      apply();
    }

    // The socket closed or broke. If the server refused our key (close 4001) it never read the
    // command: start it by REST, which reports the refusal as the HTTP API does. Otherwise
    // continue by polling, first finding the command if its BashCommand event never came.
    void lost_socket(const Error& e) {
      const bool refused_key = socket_->close_code() == std::optional<std::uint16_t>(4001);
      socket_.reset();
      if (refused_key) {
        start_by_rest();
        return;
      }
      if (command_id_.empty()) {
        find_command_id();
        if (command_id_.empty()) {
          if (!sent_on_socket_) throw e;
          start_by_rest();  // the frame never reached the server's command service
        }
      }
    }

    // Our BashCommand among the newest ones, matched by its text (which holds our token).
    void find_command_id() {
      http::QueryParams q{{"kind__eq", "BashCommand"}, {"sort_order", "TIMESTAMP_DESC"}, {"limit", "100"}};
      const auto page = ws_.call("GET", http::make_target("/api/bash/bash_events/search", q), std::nullopt, {});
      if (!page.contains("items") || !page["items"].is_array()) return;
      for (const auto& item : page["items"])
        if (item.is_object() && item.value("command", std::string()) == line_) {
          command_id_ = item.value("id", std::string());
          return;
        }
    }


    // One search round: every new BashOutput event, applied in order.
    void poll(std::chrono::steady_clock::time_point deadline) {
      std::optional<std::string> page;
      for (int pages = 0; pages < 1000; ++pages) {
        http::QueryParams q{{"command_id__eq", command_id_}, {"kind__eq", "BashOutput"},
                            {"sort_order", "TIMESTAMP"}, {"limit", "100"}};
        if (next_order_ > 0) q.emplace_back("order__gt", std::to_string(next_order_ - 1));
        if (page) q.emplace_back("page_id", *page);
        http::RequestOptions o;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        o.timeout = std::clamp(left, std::chrono::milliseconds(1000), std::chrono::milliseconds(30'000));
        const auto events = ws_.call("GET", http::make_target("/api/bash/bash_events/search", q), std::nullopt, o);
        if (!events.contains("items") || !events["items"].is_array())
          throw Error(errc::protocol_error, "agent server: bash_events/search answered no items");
        for (const auto& event : events["items"]) accept(event);
        apply();
        const auto& next = events.contains("next_page_id") ? events["next_page_id"] : nlohmann::json();
        if (!next.is_string() || (page && *page == next.template get<std::string>())) return;
        page = next.template get<std::string>();
      }
    }

    void accept(const nlohmann::json& event) {
      if (!event.is_object() || event.value("kind", std::string()) != "BashOutput") return;
      const std::string id = event.value("id", std::string());
      if (id.empty() || !seen_.insert(id).second) return;  // the same event on two pages
      if (!event.contains("order") || !event["order"].is_number_integer())
        throw Error(errc::protocol_error, "agent server: a BashOutput event without an order");
      const int order = event["order"].template get<int>();
      if (order >= next_order_) waiting_.emplace(order, event);
    }

    // Events in order, without gaps (a page may hold later events before earlier ones land).
    void apply() {
      for (auto it = waiting_.find(next_order_); it != waiting_.end(); it = waiting_.find(next_order_)) {
        const auto& event = it->second;
        if (event.contains("stdout") && event["stdout"].is_string())
          output_.feed(event["stdout"].template get_ref<const std::string&>());
        if (event.contains("stderr") && event["stderr"].is_string())
          runner_errors_ += event["stderr"].template get_ref<const std::string&>();
        if (event.contains("exit_code") && event["exit_code"].is_number_integer())
          exit_code_ = event["exit_code"].template get<int>();
        waiting_.erase(it);
        ++next_order_;
      }
    }

    // Reads what the spool files gained since the last read. With `to_end` after the command,
    // else while it runs (a missing file is then simply not there yet).
    void read_spool(bool to_end) {
      for (int i = 0; i < 2; ++i) {
        const OutputStream s = i == 0 ? OutputStream::std_out : OutputStream::std_err;
        const std::uint64_t from = result_.taken(i == 0 ? OutputStream::std_out : OutputStream::std_err);
        std::uint64_t offset = from;
        bool nothing_new = false;
        http::RequestOptions o;
        if (!to_end) o.idle_timeout = std::chrono::seconds(5);  // a live read is only a preview
        o.on_body = [&](std::string_view data) {
          result_.take(s, offset, data);
          offset += data.size();
          return true;
        };
        // Always a range: Starlette serves a whole file until EOF even when it grew past the
        // Content-Length it announced, which breaks the connection; a range is bounded.
        try {
          ws_.download(spool_ + (i == 0 ? ".o" : ".e"), o, from, &nothing_new);
        } catch (const Error& e) {
          // While the command runs a read may find no file yet, or race its growth: the next
          // read resumes where this one stopped.
          if (!to_end && e.code() != errc::authentication_failed) continue;
          throw;
        }
      }
    }

    CommandResult finish() {
      const auto trailer = output_.trailer();
      if (!trailer) {
        // The runner did not finish its line: it never started, or the server's own timeout
        // killed it (our watchdog should have acted first).
        if (runner_errors_.rfind("Error executing command", 0) == 0)
          throw Error(errc::spawn_failed, "agent server could not run the command: " + runner_errors_);
        return abandon();
      }
      switch (trailer->mode) {
        case 'c':
          throw Error(errc::not_found, "execute_command: cwd " + detail::quote(cwd_) + " does not exist on " +
                                           ws_.client_->endpoint());
        case 'd':
          throw Error(errc::io_error, "agent server: cannot write the spool files " + detail::quote(spool_) + ".*");
        case 'f':
          read_spool(true);
          cleanup_quietly(false);
          break;
        default:
          break;
      }
      return std::move(result_).finish(*trailer);
    }

    // The command outlived every deadline: kill it, keep what it wrote.
    CommandResult abandon() {
      try {
        read_spool(false);
      } catch (const Error& e) {
        if (e.code() == errc::authentication_failed) throw;
      }
      cleanup_quietly(true);
      return std::move(result_).timed_out();
    }

    // Fire and forget: the cleanup runs on the server after we stop waiting.
    void cleanup_quietly(bool kill) noexcept {
      try {
        http::RequestOptions o;
        o.timeout = std::chrono::seconds(10);
        ws_.call("POST", "/api/bash/start_bash_command",
                 nlohmann::json{{"command", agent::detail::cleanup_command(spool_, token_, kill)}, {"timeout", 60}}, o);
      } catch (...) {
        // The server is gone or refuses; nothing is left that we could still reach.
      }
    }

    BasicRemoteWorkspace& ws_;
    const CommandOptions& options_;
    std::string line_;
    long long server_timeout_ = 0;
    std::optional<Socket> socket_;
    bool sent_on_socket_ = false;
    std::vector<nlohmann::json> early_;
    std::string cwd_;
    std::string token_;
    std::string spool_;
    std::string command_id_;
    agent::detail::ResultBuilder result_;
    agent::detail::RunnerOutput output_;
    std::set<std::string> seen_;
    std::map<int, nlohmann::json> waiting_;
    int next_order_ = 0;
    std::optional<int> exit_code_;
    std::string runner_errors_;
  };

  RemoteWorkspaceOptions options_;
  std::shared_ptr<Key> key_;
  std::shared_ptr<std::atomic<bool>> websocket_refused_;  // the server or a proxy said no once
  std::shared_ptr<Client> client_;
  std::shared_ptr<SocketPool> sockets_ = std::make_shared<SocketPool>();
};

using RemoteWorkspace = BasicRemoteWorkspace<>;

static_assert(Workspace<RemoteWorkspace>);
static_assert(GitCapable<RemoteWorkspace>);

WORKSPACE_NAMESPACE_END
