// DaytonaWorkspace: a Daytona sandbox, through Daytona's REST API (lifecycle) and the toolbox
// behind the sandbox's toolboxProxyUrl (commands, files); both in daytona/api.hpp.
//
//   workspace::DaytonaWorkspace ws({.snapshot = "daytona-small"});   // key from DAYTONA_API_KEY
//   auto r = ws.execute_command("python3 -c 'print(6*7)'");
//
// Commands run under the shell layer's runner (shell/command.hpp), each in a session of its
// own: stdout and stderr stay apart and byte-exact, the timeout is the runner's own (sub-second,
// whole process tree), and the output callback streams from the spool files. Every sandbox it
// creates carries labels naming this library and its owner process, so reap_orphans() finds
// what a dead process left; on destruction the sandbox is deleted, stopped or kept (on_close).
//
// A class template over the transport, since it holds two clients (the API's and the toolbox's,
// whose policies differ).
//
// Every operation is one coroutine (core/operations.hpp), blocking or asynchronous; so are
// creating and closing (async_create, async_close), so that a hundred sandboxes start and go
// away at once from one thread.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/owner.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/daytona/api.hpp>
#include <workspace/daytona/detail/channel.hpp>
#include <workspace/http/body.hpp>
#include <workspace/shell/command.hpp>
#include <workspace/shell/transfer.hpp>
#include <workspace/version.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <exception>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN

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
  std::map<std::string, std::string> environment{};
  std::map<std::string, std::string> labels{};
  std::optional<int> auto_stop_minutes{};
  std::optional<int> auto_archive_minutes{};
  std::optional<int> auto_delete_minutes{};
  // Or attach to an existing sandbox: by id or name, or the one sandbox carrying these labels.
  std::string attach_to{};
  std::map<std::string, std::string> attach_labels{};
  std::string working_dir{};  // empty: the sandbox's work dir as the toolbox reports it
  // For a sandbox it created: remove (delete), stop or keep; pause is not a Daytona state.
  OnClose on_close = OnClose::remove;
  std::chrono::milliseconds start_timeout{std::chrono::seconds(60)};      // until "started"
  std::chrono::milliseconds transition_budget{std::chrono::seconds(60)};  // waiting out 409/502
  std::chrono::milliseconds max_poll_interval{100};  // command completion polls back off to this
  std::chrono::milliseconds stream_interval{200};    // spool reads while a callback streams
  // How long after a command's timeout the client still waits for the runner's own result.
  std::chrono::milliseconds result_wait{5000};
  std::uint64_t inline_output_limit = 256 * 1024;
  std::string spool_dir = "/tmp";  // where the runner keeps a command's output, in the sandbox
  http::ClientOptions http{};
};

template <class Transport = http::TcpOrTls>
class BasicDaytonaWorkspace : public Operations<BasicDaytonaWorkspace<Transport>>,
                              public shell::FormTransfers<BasicDaytonaWorkspace<Transport>> {
 public:
  using api_type = daytona::BasicApi<http::Client<Transport, http::BearerAuth, http::HeaderAuth>>;
  using toolbox_type =
      daytona::BasicToolbox<http::Client<Transport, http::BearerAuth, http::HeaderAuth, daytona::TransitionWait>>;
  using executor_type = asio::any_io_executor;

  explicit BasicDaytonaWorkspace(DaytonaWorkspaceOptions options) : BasicDaytonaWorkspace(unopened, std::move(options)) {
    try {
      workspace::detail::run_blocking([this] { return co_open(); });
    } catch (...) {
      // A failed start deletes the sandbox it created, whatever on_close says: nobody holds its
      // id. One it attached to is left as it was.
      if (state_->owned) state_->options.on_close = OnClose::remove;
      close_quietly();
      throw;
    }
  }

  // No sandbox: what a failed asynchronous create completes with; it can only be assigned to and
  // destroyed. (Give options, even empty ones, to make a sandbox.)
  BasicDaytonaWorkspace() = default;

  // Creates (or attaches to) a sandbox as an asynchronous operation completing with
  // (std::exception_ptr, BasicDaytonaWorkspace), whose operations then run on `executor`. A
  // cancelled or failed create deletes the sandbox it had made.
  template <class Token>
  static auto async_create(executor_type executor, DaytonaWorkspaceOptions options, Token&& token) {
    return workspace::detail::async_run(
        executor,
        [executor, options = std::move(options)]() mutable { return co_create(executor, std::move(options)); },
        std::forward<Token>(token));
  }
  static Task<BasicDaytonaWorkspace> co_create(executor_type executor, DaytonaWorkspaceOptions options) {
    BasicDaytonaWorkspace ws(unopened, std::move(options));
    ws.executor_ = std::move(executor);
    co_await workspace::detail::open_or_undo(ws.co_open(), ws.co_undo_open(), "DaytonaWorkspace");
    co_return ws;
  }

  // Deletes (or stops, or keeps: on_close) the sandbox it created, asynchronously; the blocking
  // form is the destructor. Completes with (std::exception_ptr, bool): whether it acted.
  template <class Token>
  auto async_close(Token&& token) {
    return workspace::detail::async_run(executor_, [this] { return co_close(); }, std::forward<Token>(token));
  }

  // An existing sandbox by id or name, with the credentials from the environment.
  static BasicDaytonaWorkspace attach(const std::string& id_or_name) {
    DaytonaWorkspaceOptions o;
    o.attach_to = id_or_name;
    return BasicDaytonaWorkspace(std::move(o));
  }

  BasicDaytonaWorkspace(BasicDaytonaWorkspace&& other) noexcept
      : state_(std::move(other.state_)), executor_(std::move(other.executor_)) {}
  BasicDaytonaWorkspace& operator=(BasicDaytonaWorkspace&& other) noexcept {
    if (this != &other) {
      close_quietly();
      state_ = std::move(other.state_);
      executor_ = std::move(other.executor_);
    }
    return *this;
  }
  ~BasicDaytonaWorkspace() { close_quietly(); }

  // Where asynchronous operations run: the executor of async_create, else none (each runs on its
  // completion handler's).
  const executor_type& get_executor() const noexcept { return executor_; }
  void set_executor(executor_type executor) noexcept { executor_ = std::move(executor); }

  const std::string& id() const noexcept { return state_->id; }
  const std::string& working_dir() const noexcept { return state_->working_dir; }
  api_type& api() noexcept { return *state_->api; }
  toolbox_type& toolbox() noexcept { return *state_->toolbox; }
  // Leaves the sandbox as it is when this workspace goes away.
  void detach() noexcept { state_->owned = false; }

  // The sandbox as the API describes it now.
  nlohmann::json describe() { return state_->api->get(state_->id); }

  // --- the operations, once (Operations gives the blocking and asynchronous calls)

  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) {
    detail::validate_command(command, options);
    const auto& o = state_->options;
    shell::CommandSettings settings;
    settings.cwd = options.cwd ? resolve(*options.cwd) : state_->working_dir;
    settings.cwd_is_working_dir = settings.cwd == state_->working_dir;
    settings.spool_dir = o.spool_dir;
    settings.inline_output_limit = o.inline_output_limit;
    // Deleting a command's session kills its process group; background jobs must outlive it.
    settings.new_session = true;
    settings.first_stream = std::chrono::milliseconds(100);
    settings.stream_interval = o.stream_interval;
    settings.result_wait = o.result_wait;
    daytona::detail::Channel<toolbox_type> channel(*state_->toolbox, state_->id, o.max_poll_interval);
    co_return co_await shell::run_command(channel, std::move(command), std::move(options), std::move(settings));
  }

  // Deletes one sandbox by id or name, with the credentials from `options` (or the
  // environment), without attaching to it: for another thread or process than its owner (a
  // signal handler's cleanup, say). A sandbox already gone is not an error.
  static void remove(const std::string& id_or_name, const DaytonaWorkspaceOptions& options = {}) {
    api_type api(daytona::Credentials{options.api_key, options.api_url, options.target}.with_environment(), options.http);
    try {
      api.remove(id_or_name);
    } catch (const Error& e) {
      if (e.http_status() != 404) throw;
    }
  }

  // Deletes the sandboxes this library made on this host whose owner process is gone, with the
  // credentials from `options` (or the environment). Returns how many.
  static std::size_t reap_orphans(const DaytonaWorkspaceOptions& options = {}) {
    api_type api(daytona::Credentials{options.api_key, options.api_url, options.target}.with_environment(), options.http);
    const nlohmann::json labels = {{detail::managed_label, "true"}, {detail::owner_host_label, detail::host_name()}};
    std::size_t removed = 0;
    for (const auto& sandbox : api.list(labels)) {
      const auto& l = sandbox.contains("labels") && sandbox["labels"].is_object() ? sandbox["labels"] : nlohmann::json::object();
      if (detail::owner_alive(l.value(detail::owner_pid_label, std::string()), l.value(detail::owner_start_label, std::string())))
        continue;
      const std::string state = sandbox.value("state", std::string());
      if (state == "destroying" || state == "destroyed") continue;  // its owner's delete is running
      try {
        api.remove(sandbox.value("id", std::string()));
        ++removed;
      } catch (const Error& e) {
        // Gone already, or in a transition (409): a later reap_orphans() takes what is left.
        if (e.http_status() != 404 && e.http_status() != 409) throw;
      }
    }
    return removed;
  }

 private:
  friend class shell::FormTransfers<BasicDaytonaWorkspace>;

  struct Unopened {};
  static constexpr Unopened unopened{};

  // Checks the options and makes the API client; co_open() makes or finds the sandbox.
  BasicDaytonaWorkspace(Unopened, DaytonaWorkspaceOptions options) : state_(std::make_unique<State>()) {
    auto& o = state_->options;
    o = std::move(options);
    const auto credentials = daytona::Credentials{o.api_key, o.api_url, o.target}.with_environment();
    o.api_key = credentials.api_key;
    o.api_url = credentials.api_url;
    o.target = credentials.target;
    if (o.api_key.empty()) throw Error(errc::invalid_argument, "DaytonaWorkspace: no API key (set DAYTONA_API_KEY)");
    if (!o.snapshot.empty() && !o.image.empty())
      throw Error(errc::invalid_argument, "DaytonaWorkspace: give a snapshot or an image, not both");
    if (o.image.empty() && (o.cpu || o.memory_gb || o.disk_gb))
      throw Error(errc::invalid_argument, "DaytonaWorkspace: cpu, memory and disk apply to image sandboxes only");
    if (o.on_close == OnClose::pause)
      throw Error(errc::invalid_argument, "DaytonaWorkspace: on_close pause is not supported (remove, stop or keep)");
    state_->api = std::make_unique<api_type>(credentials, o.http);
  }

  // After a failed or cancelled create: a sandbox made here is deleted, whatever on_close says.
  Task<void> co_undo_open() {
    if (state_->owned) state_->options.on_close = OnClose::remove;
    co_await co_close();
  }

  Task<void> co_open() {
    const auto& o = state_->options;
    if (!o.attach_to.empty() || !o.attach_labels.empty()) co_await co_attach();
    else co_await workspace::detail::shielded(co_create_sandbox());  // its id is needed to delete it
    const auto sandbox = co_await co_wait_until_started();
    co_await co_connect_toolbox(sandbox);
  }

  struct State {
    DaytonaWorkspaceOptions options;
    std::unique_ptr<api_type> api;
    std::unique_ptr<toolbox_type> toolbox;
    std::string id;
    std::string working_dir;
    bool owned = false;
  };

  nlohmann::json create_body() const {
    const auto& o = state_->options;
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : o.labels) labels[k] = v;
    for (const auto& [k, v] : detail::owner_labels()) labels[k] = v;
    nlohmann::json body = {{"labels", labels}};
    if (!o.environment.empty()) body["env"] = o.environment;
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

  Task<void> co_create_sandbox() {
    auto body = create_body();
    const auto labels = body["labels"];
    const auto timeout = state_->options.start_timeout + std::chrono::seconds(30);
    std::optional<Error> failed_start;
    try {
      const auto sandbox = co_await state_->api->co_create(std::move(body), timeout);
      state_->id = sandbox.value("id", std::string());
      state_->owned = true;
      if (state_->id.empty()) throw Error(errc::protocol_error, "daytona: the created sandbox has no id");
    } catch (const Error& e) {
      // "Sandbox failed to start" comes without the id, but the sandbox exists (in error):
      // find it by our labels and delete it before reporting.
      if (e.http_status() != 400 || std::string_view(e.what()).find("failed to start") == std::string_view::npos) throw;
      failed_start.emplace(errc::bad_state, "daytona: the sandbox did not start: " + e.server_message(), e.http_status(),
                           e.server_message());
    }
    if (failed_start) {
      co_await co_delete_by_labels(labels);
      throw *failed_start;
    }
  }

  Task<void> co_delete_by_labels(nlohmann::json labels) {
    try {
      const auto found = co_await state_->api->co_list(std::move(labels));
      for (const auto& s : found) co_await state_->api->co_remove(s.value("id", std::string()));
    } catch (...) {
      // reap_orphans() finds it later.
    }
  }

  Task<void> co_attach() {
    const auto& o = state_->options;
    if (!o.attach_to.empty()) {
      const auto sandbox = co_await state_->api->co_get(o.attach_to);
      state_->id = sandbox.value("id", std::string());
    } else {
      nlohmann::json labels = nlohmann::json::object();
      for (const auto& [k, v] : o.attach_labels) labels[k] = v;
      const auto found = co_await state_->api->co_list(labels);
      if (found.size() != 1)
        throw Error(found.empty() ? errc::not_found : errc::invalid_argument,
                    "daytona: " + std::to_string(found.size()) + " sandboxes carry the labels " + labels.dump());
      state_->id = found.front().value("id", std::string());
    }
    if (state_->id.empty()) throw Error(errc::protocol_error, "daytona: the sandbox has no id");
  }

  // The sandbox's state; a sandbox that failed or went away is an Error with the reason, and a
  // stopped or archived one is started.
  // (Static, on the state, which stays put when the workspace object moves: the toolbox's
  // transition hook holds it.)
  static std::string check_state(State& s, const nlohmann::json& sandbox) {
    const std::string state = checked_state(s, sandbox);
    if (needs_start(sandbox)) {
      try {
        s.api->start(s.id, s.options.start_timeout);
      } catch (const Error& e) {
        if (e.code() == errc::authentication_failed || !daytona::transitional(e)) throw;
      }
    }
    return state;
  }
  static bool needs_start(const nlohmann::json& sandbox) {
    const std::string state = sandbox.value("state", std::string());
    return (state == "stopped" || state == "archived") && sandbox.value("desiredState", std::string()) != "started";
  }
  // The state, or an Error for one that failed or went away.
  static std::string checked_state(State& s, const nlohmann::json& sandbox) {
    const std::string state = sandbox.value("state", std::string());
    if (state == "error" || state == "build_failed") {
      const std::string reason = sandbox.contains("errorReason") && sandbox["errorReason"].is_string()
                                     ? sandbox["errorReason"].template get<std::string>()
                                     : std::string("no reason given");
      throw Error(errc::bad_state, "daytona: sandbox " + s.id + " is in state " + state + ": " + reason);
    }
    if (state == "destroyed" || state == "destroying")
      throw Error(errc::not_found, "daytona: sandbox " + s.id + " is " + state);
    return state;
  }

  // Polls until "started" (100 ms, then x1.1 per poll after 5 s, at most 1 s, as the SDKs do);
  // returns the sandbox then.
  Task<nlohmann::json> co_wait_until_started() {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + state_->options.start_timeout;
    auto pause = std::chrono::milliseconds(100);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
      nlohmann::json sandbox;
      try {
        sandbox = co_await state_->api->co_get(state_->id);
      } catch (const Error& e) {
        if (!daytona::transitional(e)) throw;
      }
      const std::string state = checked_state(*state_, sandbox);
      if (needs_start(sandbox)) {
        try {
          co_await state_->api->co_start(state_->id, state_->options.start_timeout);
        } catch (const Error& e) {
          if (e.code() == errc::authentication_failed || !daytona::transitional(e)) throw;
        }
      }
      if (state == "started") co_return sandbox;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline)
        throw Error(errc::timed_out, "daytona: sandbox " + state_->id + " did not start within " +
                                         std::to_string(state_->options.start_timeout.count()) + " ms (state " + state + ")");
      timer.expires_after(std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
      co_await timer.async_wait(asio::use_awaitable);
      if (now - start > std::chrono::seconds(5)) pause = std::min(std::chrono::milliseconds(1000), pause * 11 / 10);
    }
  }

  Task<void> co_connect_toolbox(nlohmann::json sandbox) {
    auto& s = *state_;
    std::string proxy = sandbox.contains("toolboxProxyUrl") && sandbox["toolboxProxyUrl"].is_string()
                            ? sandbox["toolboxProxyUrl"].template get<std::string>()
                            : std::string();
    if (proxy.empty()) proxy = co_await s.api->co_toolbox_proxy_url(s.id);
    if (proxy.empty()) throw Error(errc::protocol_error, "daytona: sandbox " + s.id + " has no toolboxProxyUrl");
    while (!proxy.empty() && proxy.back() == '/') proxy.pop_back();
    s.toolbox = std::make_unique<toolbox_type>(proxy + "/" + s.id, s.options.api_key, s.options.http,
                                               s.options.transition_budget);
    // Between toolbox retries: a sandbox that failed or went away ends the wait with the reason;
    // a stopped or archived one is started.
    s.toolbox->transitions().on_transition([state = state_.get()] {
      nlohmann::json now;
      try {
        now = state->api->get(state->id);
      } catch (const Error& e) {
        if (e.code() == errc::authentication_failed) throw;
        if (e.http_status() == 404) throw Error(errc::not_found, "daytona: sandbox " + state->id + " no longer exists");
        return;
      }
      check_state(*state, now);
    });
    if (!s.options.working_dir.empty()) {
      s.working_dir = s.options.working_dir;
      while (s.working_dir.size() > 1 && s.working_dir.back() == '/') s.working_dir.pop_back();
      co_return;
    }
    s.working_dir = co_await s.toolbox->co_work_dir();
  }

  // The toolbox's bulk upload takes the path and the file as parts of one form.
  // (A named type, not a lambda: it is kept in coroutine frames, which need its linkage.)
  struct AddPart {
    template <class... Part>
    void operator()(http::Multipart& form, const std::string& remote, Part&&... part) const {
      form.add_field("files[0].path", remote);
      form.add_file("files[0].file", shell::file_name_of(remote), std::forward<Part>(part)...);
    }
  };
  static constexpr AddPart add_part{};
  auto put() {
    return [toolbox = state_->toolbox.get()](const std::string&, http::Multipart form, std::uint64_t, http::Progress progress) {
      return toolbox->co_upload(std::move(form), std::move(progress));
    };
  }
  auto get(const std::string& remote) {
    return [toolbox = state_->toolbox.get(), remote](const http::RequestOptions& o) { return toolbox->co_download(remote, o); };
  }

  std::string resolve(const std::string& path) const {
    if (path.empty()) return path;
    return detail::resolve_workspace_path(state_->working_dir, path);
  }

  void close_quietly() noexcept {
    if (!state_ || state_->id.empty() || !state_->owned || state_->options.on_close == OnClose::keep) return;
    try {
      workspace::detail::run_blocking([this] { return co_close(); });
    } catch (...) {
      // reap_orphans() finds it later.
    }
  }

 public:
  // Deletes (or stops) the sandbox it created, waiting out a transition in progress (409).
  // Never throws: what it could not delete, reap_orphans() finds later.
  Task<bool> co_close() {
    if (!state_ || state_->id.empty() || !state_->owned || state_->options.on_close == OnClose::keep) co_return false;
    state_->owned = false;
    const bool stop = state_->options.on_close == OnClose::stop;
    const auto deadline = std::chrono::steady_clock::now() + state_->options.transition_budget;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (auto pause = std::chrono::milliseconds(200);; pause = std::min(pause * 2, std::chrono::milliseconds(2000))) {
      try {
        if (stop) co_await state_->api->co_stop(state_->id);
        else co_await state_->api->co_remove(state_->id);
        co_return true;
      } catch (const Error& e) {
        if (e.http_status() == 404) co_return true;
        if (e.http_status() != 409 || std::chrono::steady_clock::now() + pause >= deadline) co_return false;
      } catch (...) {
        co_return false;  // reap_orphans() finds it later
      }
      timer.expires_after(pause);
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

 private:
  std::unique_ptr<State> state_;
  executor_type executor_;
};

using DaytonaWorkspace = BasicDaytonaWorkspace<>;

static_assert(Workspace<DaytonaWorkspace>);
static_assert(Attachable<DaytonaWorkspace>);
static_assert(AsyncWorkspace<DaytonaWorkspace>);

WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
