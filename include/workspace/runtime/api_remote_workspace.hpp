// APIRemoteWorkspace: an agent server in a runtime provisioned through the OpenHands runtime API
// (POST /start, GET /sessions/{id}, /pause, /resume, /stop, all with X-API-Key), then used as a
// RemoteWorkspace on the runtime's url with the runtime's session key.
//
//   workspace::APIRemoteWorkspace ws({.runtime_api_url = "https://runtime.example",
//                                     .runtime_api_key = key,
//                                     .server_image = "ghcr.io/openhands/agent-server:latest"});
//   ws.execute_command("python3 --version");
//
// A runtime already running under options.attach_to (a session id) is attached to (a paused one
// resumed); otherwise one is started under that session id, or a new one. Readiness has its own
// budget (startup_wait_timeout), separate from the per-request timeouts, and a runtime that fails
// or crash-loops ends the wait at once with its pod logs in the Error. On destruction the runtime
// is stopped (on_close remove or stop), paused (pause) or left running (keep, detach()). The
// runtime API key never goes to the agent server and the session key never to the runtime API
// (runtime/api.hpp, agent/api.hpp).
//
// Every operation is one coroutine (core/operations.hpp), blocking or asynchronous; so are
// starting and stopping the runtime (async_create, async_close).
#pragma once

#include <workspace/agent/remote_workspace.hpp>
#include <workspace/core/async.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/core/options.hpp>
#include <workspace/runtime/api.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <exception>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN

struct APIRemoteWorkspaceOptions {
  std::string runtime_api_url;  // e.g. https://runtime.example
  std::string runtime_api_key;  // sent as X-API-Key to the runtime API only
  std::string server_image;     // the agent-server image the runtime API runs
  std::string image_pull_policy = "IfNotPresent";  // Always, IfNotPresent or Never
  // The session to attach to when its runtime runs (a paused one is resumed), and to start a
  // runtime under otherwise; empty: a new session agent-server-<random>.
  std::string attach_to{};
  int resource_factor = 1;      // 1, 2, 4 or 8
  std::optional<std::string> runtime_class = std::string("sysbox-runc");
  std::string target_type = "binary";     // binary or source: picks the server command
  std::optional<std::string> command{};   // overrides the server command
  std::map<std::string, std::string> environment{};  // the agent server's environment
  std::vector<std::string> forward_env{};            // names copied from this process's environment
  std::string working_dir = "/workspace";
  std::chrono::milliseconds init_timeout{std::chrono::seconds(300)};          // /start, /resume
  std::chrono::milliseconds startup_wait_timeout{std::chrono::seconds(300)};  // until ready
  std::chrono::milliseconds api_timeout{std::chrono::seconds(60)};            // other calls
  // The readiness poll's first and longest pause (it doubles in between).
  std::chrono::milliseconds startup_poll_initial{100};
  std::chrono::milliseconds startup_poll_max{2000};
  // For a runtime it started or attached to: remove or stop (both POST /stop: a stopped runtime
  // is gone), pause, or keep it running.
  OnClose on_close = OnClose::remove;
  http::ClientOptions http{};       // for both the runtime API and the agent server
  AgentCommandSettings commands{};  // how commands run on the runtime's agent server
};

template <class Transport = http::TcpOrTls>
class BasicAPIRemoteWorkspace : public Operations<BasicAPIRemoteWorkspace<Transport>> {
 public:
  using api_type = runtime::BasicApi<http::Client<Transport, http::ApiKeyAuth>>;
  using agent_type = BasicRemoteWorkspace<http::Client<Transport, http::SessionApiKeyAuth>>;
  using executor_type = asio::any_io_executor;

  explicit BasicAPIRemoteWorkspace(APIRemoteWorkspaceOptions options) : BasicAPIRemoteWorkspace(unopened, std::move(options)) {
    try {
      workspace::detail::run_blocking([this] { return co_start_or_attach(); });
    } catch (...) {
      // A failed start stops what it started, whatever on_close says: nobody holds its id.
      if (state_->started_here) state_->on_close = OnClose::remove;
      close_quietly();
      throw;
    }
  }

  // No runtime: what a failed asynchronous create completes with; it can only be assigned to and
  // destroyed.
  BasicAPIRemoteWorkspace() = default;

  // Starts (or attaches to) a runtime as an asynchronous operation completing with
  // (std::exception_ptr, BasicAPIRemoteWorkspace), whose operations then run on `executor`. A
  // cancelled or failed create stops the runtime it had started.
  template <class Token>
  static auto async_create(executor_type executor, APIRemoteWorkspaceOptions options, Token&& token) {
    return workspace::detail::async_run(
        executor,
        [executor, options = std::move(options)]() mutable { return co_create(executor, std::move(options)); },
        std::forward<Token>(token));
  }
  static Task<BasicAPIRemoteWorkspace> co_create(executor_type executor, APIRemoteWorkspaceOptions options) {
    BasicAPIRemoteWorkspace ws(unopened, std::move(options));
    ws.executor_ = std::move(executor);
    co_await workspace::detail::open_or_undo(ws.co_start_or_attach(), ws.co_undo_start(), "APIRemoteWorkspace");
    if (ws.state_->agent) ws.state_->agent->set_executor(ws.executor_);
    co_return ws;
  }

  // Stops, pauses or keeps the runtime (on_close), asynchronously; the blocking form is the
  // destructor. Completes with (std::exception_ptr, bool): whether it acted.
  template <class Token>
  auto async_close(Token&& token) {
    return workspace::detail::async_run(executor_, [this] { return co_close(); }, std::forward<Token>(token));
  }
  // Never throws: the runtime API's own idle reaping is the fallback.
  Task<bool> co_close() {
    if (!state_ || state_->runtime_id.empty() || state_->on_close == OnClose::keep) co_return false;
    const std::string runtime = std::move(state_->runtime_id);
    state_->runtime_id.clear();
    bool acted = true;
    try {
      if (state_->on_close == OnClose::pause) co_await state_->api->co_pause(runtime, std::chrono::seconds(30));
      else co_await state_->api->co_stop(runtime, std::chrono::seconds(30));
    } catch (...) {
      acted = false;
    }
    co_return acted;
  }

  BasicAPIRemoteWorkspace(BasicAPIRemoteWorkspace&& other) noexcept
      : state_(std::move(other.state_)), executor_(std::move(other.executor_)) {}
  BasicAPIRemoteWorkspace& operator=(BasicAPIRemoteWorkspace&& other) noexcept {
    if (this != &other) {
      close_quietly();
      state_ = std::move(other.state_);
      executor_ = std::move(other.executor_);
    }
    return *this;
  }
  ~BasicAPIRemoteWorkspace() { close_quietly(); }

  // Where asynchronous operations run: the executor of async_create, else none (each runs on its
  // completion handler's).
  const executor_type& get_executor() const noexcept { return executor_; }
  void set_executor(executor_type executor) {
    executor_ = std::move(executor);
    if (state_->agent) state_->agent->set_executor(executor_);
  }

  const std::string& working_dir() const noexcept { return state_->options.working_dir; }
  const std::string& id() const noexcept { return state_->runtime_id; }  // the runtime id
  const std::string& session_id() const noexcept { return state_->session_id; }
  const std::string& url() const noexcept { return state_->url; }  // the agent server's base URL
  agent_type& agent() {
    if (!state_ || !state_->agent) throw Error(errc::bad_state, "APIRemoteWorkspace: no runtime");
    return *state_->agent;
  }
  api_type& api() { return *state_->api; }

  // Leaves the runtime running when this workspace goes away.
  void detach() noexcept { state_->on_close = OnClose::keep; }

  void pause() { state_->api->pause(require_runtime(), state_->options.api_timeout); }

  // Resumes, waits until ready, and takes the session key the runtime now has (a resumed
  // runtime may issue a new one and refuse the old).
  void resume() {
    take_connection(state_->api->resume(require_runtime(), state_->options.init_timeout), false);
    workspace::detail::run_blocking([this] { return co_wait_until_ready(); });
  }

  // The runtime as the runtime API describes it now (status, pod_status, restarts, ...).
  nlohmann::json describe() {
    auto found = state_->api->session(state_->session_id, state_->options.api_timeout);
    if (!found) throw Error(errc::not_found, "runtime API: no session " + state_->session_id);
    return *found;
  }

  // Stops the runtime of a session (what a kept workspace's session_id() names) or a runtime
  // id, through the runtime API in `options`, without attaching (which would resume a paused
  // one): for another thread or process than its owner (a signal handler's cleanup, say). Only
  // the URL, key and http of `options` are used.
  static void remove(const std::string& session_or_runtime_id, const APIRemoteWorkspaceOptions& options) {
    if (options.runtime_api_url.empty() || options.runtime_api_key.empty())
      throw Error(errc::invalid_argument, "APIRemoteWorkspace: runtime_api_url and runtime_api_key are needed");
    api_type(options.runtime_api_url, options.runtime_api_key, options.http).remove(session_or_runtime_id);
  }

  // --- the operations, once (Operations gives the blocking and asynchronous calls): the
  // runtime's agent server runs them.
  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) {
    return agent().co_execute_command(std::move(command), std::move(options));
  }
  Task<FileOperationResult> co_file_upload(std::string local_path, std::string workspace_path, TransferOptions options) {
    return agent().co_file_upload(std::move(local_path), std::move(workspace_path), std::move(options));
  }
  Task<FileOperationResult> co_file_download(std::string workspace_path, std::string local_path, TransferOptions options) {
    return agent().co_file_download(std::move(workspace_path), std::move(local_path), std::move(options));
  }
  Task<FileOperationResult> co_file_write(std::string workspace_path, std::string content) {
    return agent().co_file_write(std::move(workspace_path), std::move(content));
  }
  Task<FileReadResult> co_file_read(std::string workspace_path) { return agent().co_file_read(std::move(workspace_path)); }

  std::vector<GitChange> git_changes(const std::string& path) { return state_->agent->git_changes(path); }
  GitDiff git_diff(const std::string& path) { return state_->agent->git_diff(path); }

 private:
  struct Unopened {};
  static constexpr Unopened unopened{};

  BasicAPIRemoteWorkspace(Unopened, APIRemoteWorkspaceOptions options) : state_(std::make_unique<State>()) {
    state_->options = std::move(options);
    auto& o = state_->options;
    validate(o);
    state_->session_id = o.attach_to.empty() ? "agent-server-" + shell::random_token() : o.attach_to;
    state_->api = std::make_unique<api_type>(o.runtime_api_url, o.runtime_api_key, o.http);
    state_->on_close = o.on_close;
  }

  struct State {
    APIRemoteWorkspaceOptions options;
    std::unique_ptr<api_type> api;
    std::optional<agent_type> agent;
    std::string session_id;
    std::string runtime_id;
    std::string url;
    std::string session_api_key;
    OnClose on_close = OnClose::remove;
    bool started_here = false;
  };

  static void validate(const APIRemoteWorkspaceOptions& o) {
    const auto bad = [](std::string why) { return Error(errc::invalid_argument, "APIRemoteWorkspace: " + why); };
    if (o.runtime_api_url.empty()) throw bad("runtime_api_url is empty");
    if (o.runtime_api_key.empty()) throw bad("runtime_api_key is empty");
    if (o.server_image.empty()) throw bad("server_image is empty");
    if (o.resource_factor != 1 && o.resource_factor != 2 && o.resource_factor != 4 && o.resource_factor != 8)
      throw bad("resource_factor must be 1, 2, 4 or 8, got " + std::to_string(o.resource_factor));
    if (o.image_pull_policy != "Always" && o.image_pull_policy != "IfNotPresent" && o.image_pull_policy != "Never")
      throw bad("image_pull_policy must be Always, IfNotPresent or Never, got " + detail::quote(o.image_pull_policy));
    if (o.target_type != "binary" && o.target_type != "source")
      throw bad("target_type must be binary or source, got " + detail::quote(o.target_type));
    if (o.working_dir.empty() || o.working_dir.front() != '/') throw bad("working_dir must be absolute");
    if (o.startup_wait_timeout.count() <= 0) throw bad("startup_wait_timeout must be positive");
  }

  const std::string& require_runtime() const {
    if (state_->runtime_id.empty()) throw Error(errc::bad_state, "APIRemoteWorkspace: no runtime");
    return state_->runtime_id;
  }

  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  static std::string text_of(const nlohmann::json& runtime, const char* key) {
    const auto it = runtime.find(key);
    return it != runtime.end() && it->is_string() ? it->template get<std::string>() : std::string();
  }

  // Reads runtime_id (or id), url and session_api_key from a runtime object.
  void take_connection(const nlohmann::json& runtime, bool required) {
    if (!runtime.is_object()) {
      if (required) throw Error(errc::protocol_error, "runtime API: the answer is not a runtime object");
      return;
    }
    std::string id = text_of(runtime, "runtime_id");
    if (id.empty()) id = text_of(runtime, "id");
    const std::string url = text_of(runtime, "url");
    if (required && (id.empty() || url.empty()))
      throw Error(errc::protocol_error, "runtime API: invalid runtime response (no runtime_id or url)");
    if (!id.empty()) state_->runtime_id = id;
    if (!url.empty()) state_->url = url;
    if (runtime.contains("session_api_key") && runtime["session_api_key"].is_string())
      state_->session_api_key = runtime["session_api_key"].template get<std::string>();
  }

  nlohmann::json start_body() const {
    const auto& o = state_->options;
    nlohmann::json environment = nlohmann::json::object();
    for (const auto& name : o.forward_env)
      if (const char* value = std::getenv(name.c_str())) environment[name] = value;
    for (const auto& [k, v] : o.environment) environment[k] = v;
    std::string command = o.command.value_or(o.target_type == "source"
                                                 ? "/agent-server/.venv/bin/python -m openhands.agent_server --port 60000"
                                                 : "/usr/local/bin/openhands-agent-server --port 60000");
    nlohmann::json body = {{"image", o.server_image},
                           {"command", command},
                           {"working_dir", "/"},
                           {"environment", environment},
                           {"session_id", state_->session_id},
                           {"run_as_user", 10001},
                           {"fs_group", 10001},
                           {"image_pull_policy", o.image_pull_policy}};
    if (o.runtime_class) body["runtime_class"] = *o.runtime_class;
    if (o.resource_factor != 1) body["resource_factor"] = o.resource_factor;
    return body;
  }

  // After a failed or cancelled create: a runtime started here is stopped, whatever on_close says.
  Task<void> co_undo_start() {
    if (state_->started_here) state_->on_close = OnClose::remove;
    co_await co_close();
  }

  Task<void> co_start_or_attach() {
    const auto& o = state_->options;
    const auto existing = co_await state_->api->co_session(state_->session_id, o.api_timeout);
    const std::string status = existing ? lower(text_of(*existing, "status")) : std::string();
    if (status == "running" || status == "paused" || status == "starting") {
      take_connection(*existing, true);
      if (status == "paused") {
        const auto resumed = co_await state_->api->co_resume(require_runtime(), o.init_timeout);
        take_connection(resumed, false);
      }
    } else {
      co_await workspace::detail::shielded(co_start_runtime());  // its id is needed to stop it
    }
    co_await co_wait_until_ready();
  }
  Task<void> co_start_runtime() {
    const auto answer = co_await state_->api->co_start(start_body(), state_->options.init_timeout);
    state_->started_here = true;
    take_connection(answer, true);
  }

  [[noreturn]] void fail_runtime(const nlohmann::json& runtime, const std::string& pod_status) {
    std::string text = "runtime API: runtime " + state_->runtime_id + " (session " + state_->session_id + ") is " + pod_status;
    if (pod_status == "crashloopbackoff") text += " (often out of memory; try a larger resource_factor)";
    if (runtime.contains("restart_count") && runtime["restart_count"].is_number())
      text += "; restarts: " + runtime["restart_count"].dump();
    if (runtime.contains("restart_reasons") && !runtime["restart_reasons"].empty())
      text += " " + runtime["restart_reasons"].dump();
    const std::string logs = text_of(runtime, "pod_logs");
    if (!logs.empty()) text += "; pod logs: " + logs.substr(logs.size() > 4000 ? logs.size() - 4000 : 0);
    throw Error(errc::bad_state, text);
  }

  // Polls GET /sessions/{id} until the pod is ready and the agent server answers /health.
  Task<void> co_wait_until_ready() {
    const auto& o = state_->options;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto deadline = std::chrono::steady_clock::now() + o.startup_wait_timeout;
    auto pause = o.startup_poll_initial;
    std::string last = "not found";
    nlohmann::json last_runtime;
    for (;;) {
      const auto runtime = co_await state_->api->co_session(state_->session_id, o.api_timeout);
      if (runtime) {
        last_runtime = *runtime;
        take_connection(*runtime, false);
        last = lower(text_of(*runtime, "pod_status"));
        const std::string status = lower(text_of(*runtime, "status"));
        if (last == "failed" || last == "unknown" || last == "crashloopbackoff") fail_runtime(*runtime, last);
        if (status == "error" || status == "stopped") fail_runtime(*runtime, "status " + status);
        if (last == "ready" && !state_->url.empty()) {
          connect_agent();
          const bool alive = co_await state_->agent->api().co_alive();
          if (alive) co_return;
        }
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        std::string text = "runtime API: runtime for session " + state_->session_id + " was not ready within " +
                           std::to_string(std::chrono::duration<double>(o.startup_wait_timeout).count()) + " s (pod_status " + last + ")";
        if (last_runtime.is_object() && last_runtime.contains("events")) text += "; events: " + last_runtime["events"].dump();
        throw Error(errc::timed_out, text);
      }
      timer.expires_after(std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
      co_await timer.async_wait(asio::use_awaitable);
      pause = std::min(pause * 2, o.startup_poll_max);
    }
  }

  // (Re)points the agent client at the runtime's url with its current key.
  void connect_agent() {
    auto& s = *state_;
    if (!s.agent || s.agent->host() != s.url) {
      s.agent.emplace(RemoteWorkspaceOptions{.host = s.url,
                                             .session_api_key = s.session_api_key,
                                             .working_dir = s.options.working_dir,
                                             .http = s.options.http,
                                             .commands = s.options.commands});
    } else {
      s.agent->set_session_api_key(s.session_api_key);
    }
    s.agent->set_executor(executor_);
  }

  void close_quietly() noexcept {
    if (!state_ || state_->runtime_id.empty() || state_->on_close == OnClose::keep) return;
    try {
      workspace::detail::run_blocking([this] { return co_close(); });
    } catch (...) {
      // A destructor cannot report; the runtime API's own idle reaping is the fallback.
    }
  }

  std::unique_ptr<State> state_;
  executor_type executor_;
};

using APIRemoteWorkspace = BasicAPIRemoteWorkspace<>;

static_assert(Workspace<APIRemoteWorkspace>);
static_assert(Pausable<APIRemoteWorkspace>);
static_assert(GitCapable<APIRemoteWorkspace>);
static_assert(AsyncWorkspace<APIRemoteWorkspace>);

WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
