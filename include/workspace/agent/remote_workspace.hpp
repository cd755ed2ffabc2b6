// RemoteWorkspace: a workspace served by an OpenHands agent server (agent/api.hpp), e.g. one
// started by a runtime API or in a container.
//
//   workspace::RemoteWorkspace ws({.host = "http://127.0.0.1:8000", .session_api_key = key});
//   auto r = ws.execute_command("make test");
//
// Commands run under the shell layer's runner (shell/command.hpp) through the server's bash API,
// so that output stays byte-exact, streams while the command runs, and timeouts are enforced to
// the millisecond and kill every process of the command. Files stream through /api/file.
//
// Every operation is one coroutine (core/operations.hpp): the blocking calls run it on the
// calling thread, the async_ calls on the executor given (or the completion handler's), so many
// commands run at once on one RemoteWorkspace from one thread.
#pragma once

#include <workspace/agent/api.hpp>
#include <workspace/agent/detail/channel.hpp>
#include <workspace/core/async.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/http/body.hpp>
#include <workspace/http/options.hpp>
#include <workspace/shell/command.hpp>
#include <workspace/shell/transfer.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN

// How commands run on an agent server (RemoteWorkspace, and the agent server of an
// APIRemoteWorkspace).
struct AgentCommandSettings {
  // Start commands and hear their events on the server's /sockets/bash-events websocket (about
  // twice as fast as polling, and it spares the server's event search); when the server or a
  // proxy refuses the upgrade, or the socket breaks, commands are started and followed by REST.
  bool use_websocket = true;
  // Polls for a command's end start at once and back off to this.
  std::chrono::milliseconds max_poll_interval{50};
  // With an output callback, the spool files are read this often while the command runs.
  std::chrono::milliseconds stream_interval{100};
  // How long after a command's timeout the client still waits for the runner's own result (its
  // watchdog kills at the timeout) before it kills and reports the timeout itself; the server's
  // own timeout (whole seconds) is set to that moment too, as a backstop.
  std::chrono::milliseconds result_wait{5000};
  // Output up to this many bytes (both streams) comes back in the command's final event; more
  // is read from the spool files, which is cheaper for large output.
  std::uint64_t inline_output_limit = 256 * 1024;
  // Where the runner keeps a command's output while it runs, on the server's machine.
  std::string spool_dir = "/tmp";
};

struct RemoteWorkspaceOptions {
  std::string host;             // the agent server's base URL, e.g. http://127.0.0.1:8000
  std::string session_api_key;  // sent as X-Session-API-Key on /api/*; empty for none
  std::string working_dir = "/workspace";  // absolute; made by the first command when missing
  http::ClientOptions http{};
  AgentCommandSettings commands{};
};

template <class Client = http::Client<http::TcpOrTls, http::SessionApiKeyAuth>>
class BasicRemoteWorkspace : public Operations<BasicRemoteWorkspace<Client>>,
                             public shell::FormTransfers<BasicRemoteWorkspace<Client>> {
 public:
  using client_type = Client;
  using api_type = agent::BasicApi<Client>;
  using executor_type = asio::any_io_executor;

  BasicRemoteWorkspace(std::string host, std::string session_api_key, std::string working_dir = "/workspace")
      : BasicRemoteWorkspace(RemoteWorkspaceOptions{.host = std::move(host),
                                                    .session_api_key = std::move(session_api_key),
                                                    .working_dir = std::move(working_dir)}) {}

  explicit BasicRemoteWorkspace(RemoteWorkspaceOptions options) : options_(std::move(options)) {
    if (options_.working_dir.empty() || options_.working_dir.front() != '/')
      throw Error(errc::invalid_argument, "RemoteWorkspace: working_dir must be absolute, got " +
                                              detail::quote(options_.working_dir));
    while (options_.working_dir.size() > 1 && options_.working_dir.back() == '/') options_.working_dir.pop_back();
    while (!options_.host.empty() && options_.host.back() == '/') options_.host.pop_back();
    api_ = std::make_shared<api_type>(options_.host, std::move(options_.session_api_key), options_.http);
    options_.session_api_key.clear();
  }

  // The same, its asynchronous operations running on `executor`.
  BasicRemoteWorkspace(executor_type executor, RemoteWorkspaceOptions options)
      : BasicRemoteWorkspace(std::move(options)) {
    executor_ = std::move(executor);
  }

  // Where asynchronous operations run; when empty, on the completion handler's executor.
  const executor_type& get_executor() const noexcept { return executor_; }
  void set_executor(executor_type executor) noexcept { executor_ = std::move(executor); }

  const std::string& working_dir() const noexcept { return options_.working_dir; }
  const std::string& host() const noexcept { return options_.host; }
  api_type& api() noexcept { return *api_; }
  Client& client() noexcept { return api_->client(); }

  // Replaces the session key (a runtime issues a new one when it resumes); safe while other
  // threads run commands.
  void set_session_api_key(std::string key) {
    api_->set_session_api_key(std::move(key));
    hubs_->clear();  // authenticated with the old key
  }

  bool alive() noexcept { return api_->alive(); }
  nlohmann::json server_info() { return api_->server_info(); }

  // --- the operations, once (Operations gives the blocking and asynchronous calls)

  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) {
    detail::validate_command(command, options);
    const auto& s = options_.commands;
    shell::CommandSettings settings;
    settings.cwd = options.cwd ? resolve(*options.cwd) : options_.working_dir;
    settings.cwd_is_working_dir = settings.cwd == options_.working_dir;
    settings.spool_dir = s.spool_dir;
    settings.inline_output_limit = s.inline_output_limit;
    settings.first_stream = std::chrono::milliseconds(50);
    settings.stream_interval = s.stream_interval;
    settings.result_wait = s.result_wait;
    // Shared state, so that an operation still running when the workspace moves keeps it.
    const auto api = api_;
    const auto hubs = hubs_;
    const auto refused = websocket_refused_;
    const agent::detail::ChannelSettings channel_settings{s.use_websocket, s.max_poll_interval};
    agent::detail::Channel<api_type> channel(*api, *hubs, *refused, channel_settings);
    co_return co_await shell::run_command(channel, std::move(command), std::move(options), std::move(settings));
  }

  // The git changes below `path` (relative to working_dir unless absolute), as the server's
  // /api/git/changes reports them; empty when it is not a repository.
  std::vector<GitChange> git_changes(const std::string& path) { return api_->git_changes(resolve(path)); }

  // The file `path` now and at the base revision.
  GitDiff git_diff(const std::string& path) { return api_->git_diff(resolve(path)); }

 private:
  friend class shell::FormTransfers<BasicRemoteWorkspace>;

  std::string resolve(const std::string& path) const {
    if (path.empty()) return path;
    return detail::resolve_workspace_path(options_.working_dir, path);
  }

  // The agent server takes one file part named "file"; the path is in the query.
  // (A named type, not a lambda: it is kept in coroutine frames, which need its linkage.)
  struct AddPart {
    template <class... Part>
    void operator()(http::Multipart& form, const std::string& remote, Part&&... part) const {
      form.add_file("file", shell::file_name_of(remote), std::forward<Part>(part)...);
    }
  };
  static constexpr AddPart add_part{};
  auto put() {
    return [api = api_](const std::string& remote, http::Multipart form, std::uint64_t size, http::Progress progress) {
      return api->co_upload(remote, std::move(form), size, std::move(progress));
    };
  }
  auto get(const std::string& remote) {
    return [api = api_, remote](const http::RequestOptions& o) { return api->co_download(remote, o); };
  }

  using Socket = typename api_type::socket_type;

  RemoteWorkspaceOptions options_;
  executor_type executor_;
  std::shared_ptr<api_type> api_;
  std::shared_ptr<std::atomic<bool>> websocket_refused_ = std::make_shared<std::atomic<bool>>(false);  // said no once
  std::shared_ptr<agent::detail::EventHubs<Socket>> hubs_ = std::make_shared<agent::detail::EventHubs<Socket>>();
};

using RemoteWorkspace = BasicRemoteWorkspace<>;

static_assert(Workspace<RemoteWorkspace>);
static_assert(GitCapable<RemoteWorkspace>);
static_assert(AsyncWorkspace<RemoteWorkspace>);

WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
