// Choosing the workspace type at run time: AnyWorkspace, a std::variant of the concrete types,
// and WorkspaceConfig, which says which one to make (from code, from flags, or from
// WORKSPACE_MODE and friends in the environment).
//
//   auto ws = workspace::AnyWorkspace::from_env();  // WORKSPACE_MODE=docker WORKSPACE_IMAGE=...
//   auto r = ws.execute_command("make test");
//
// AnyWorkspace models the Workspace and AsyncWorkspace concepts, so code written against them
// takes it unchanged. Every call is one std::visit: no virtual functions, and the held workspace stays
// fully typed (get_if, visit).
#pragma once

#include <workspace/agent/remote_workspace.hpp>
#include <workspace/core.hpp>
#include <workspace/daytona/daytona_workspace.hpp>
#include <workspace/docker/docker_workspace.hpp>
#include <workspace/local/local_workspace.hpp>
#include <workspace/runtime/api_remote_workspace.hpp>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN

enum class WorkspaceMode { local, docker, remote, api_remote, daytona };

// The spelling WORKSPACE_MODE uses.
constexpr std::string_view to_string(WorkspaceMode mode) noexcept {
  switch (mode) {
    case WorkspaceMode::local: return "local";
    case WorkspaceMode::docker: return "docker";
    case WorkspaceMode::remote: return "remote";
    case WorkspaceMode::api_remote: return "api_remote";
    case WorkspaceMode::daytona: return "daytona";
  }
  return "unknown";
}

inline std::optional<WorkspaceMode> parse_workspace_mode(std::string_view text) noexcept {
  for (auto mode : {WorkspaceMode::local, WorkspaceMode::docker, WorkspaceMode::remote,
                    WorkspaceMode::api_remote, WorkspaceMode::daytona})
    if (text == to_string(mode)) return mode;
  return std::nullopt;
}

// What to make, in the few settings every back end shares; each means what that back end
// calls it. The full options structs (DockerWorkspaceOptions, ...) are for code that constructs
// a concrete type; `customize` reaches them from here too.
//
// Environment (from_env), per field:
//   mode         WORKSPACE_MODE         local (default), docker, remote, api_remote, daytona
//   working_dir  WORKSPACE_WORKING_DIR  local: default the current directory; others: their own
//   image        WORKSPACE_IMAGE        docker: the image; api_remote: the agent-server image;
//                                       daytona: an image instead of a snapshot
//   snapshot     WORKSPACE_SNAPSHOT     daytona
//   attach_to    WORKSPACE_ATTACH       an existing container (docker), session (api_remote) or
//                                       sandbox (daytona), by id or name
//   host         WORKSPACE_HOST         docker: the daemon (else DOCKER_HOST); remote: the agent
//                                       server's URL; api_remote: the runtime API (else
//                                       RUNTIME_API_URL); daytona: the API (else DAYTONA_API_URL)
//   api_key      WORKSPACE_API_KEY      remote: the session key (else SESSION_API_KEY);
//                                       api_remote: else RUNTIME_API_KEY; daytona: else
//                                       DAYTONA_API_KEY
//   network      WORKSPACE_NETWORK      docker: "none" (default), "host" or a network name
//   keep         WORKSPACE_KEEP         1/true/yes: leave what was created running on close
//   environment  (code and flags only)  docker: the container's; api_remote: the agent
//                                       server's; daytona: the sandbox's
struct WorkspaceConfig {
  WorkspaceMode mode = WorkspaceMode::local;
  std::string working_dir{};
  std::string image{};
  std::string snapshot{};
  std::string attach_to{};
  std::string host{};
  std::string api_key{};
  std::string network{};
  bool keep = false;
  std::map<std::string, std::string> environment{};

  // Last word on the options of each type before it is constructed (pull progress, resources,
  // timeouts...). Left empty, the settings above are all there is.
  std::function<void(DockerWorkspaceOptions&)> customize_docker{};
  std::function<void(RemoteWorkspaceOptions&)> customize_remote{};
  std::function<void(APIRemoteWorkspaceOptions&)> customize_api_remote{};
  std::function<void(DaytonaWorkspaceOptions&)> customize_daytona{};

  // Returns a variable's value, or nullopt when it is unset. Empty counts as unset.
  using Lookup = std::function<std::optional<std::string>(const char* name)>;

  static std::optional<std::string> process_environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  }

  // Reads the variables above. An unknown mode or keep value is an Error naming the variable.
  static WorkspaceConfig from_env(const Lookup& lookup = process_environment) {
    WorkspaceConfig c;
    const auto get = [&](const char* name) { return lookup(name).value_or(std::string()); };
    if (auto text = lookup("WORKSPACE_MODE")) {
      auto mode = parse_workspace_mode(*text);
      if (!mode)
        throw Error(errc::invalid_argument,
                    "WORKSPACE_MODE: unknown mode " + detail::quote(*text) +
                        " (expected local, docker, remote, api_remote or daytona)");
      c.mode = *mode;
    }
    c.working_dir = get("WORKSPACE_WORKING_DIR");
    c.image = get("WORKSPACE_IMAGE");
    c.snapshot = get("WORKSPACE_SNAPSHOT");
    c.attach_to = get("WORKSPACE_ATTACH");
    c.host = get("WORKSPACE_HOST");
    c.api_key = get("WORKSPACE_API_KEY");
    c.network = get("WORKSPACE_NETWORK");
    if (auto text = lookup("WORKSPACE_KEEP")) {
      auto keep = parse_flag(*text);
      if (!keep)
        throw Error(errc::invalid_argument,
                    "WORKSPACE_KEEP: expected 1/0, true/false or yes/no, got " + detail::quote(*text));
      c.keep = *keep;
    }
    // The names each back end's own tools use, when ours are not set.
    if (c.mode == WorkspaceMode::remote && c.api_key.empty()) c.api_key = get("SESSION_API_KEY");
    if (c.mode == WorkspaceMode::api_remote) {
      if (c.host.empty()) c.host = get("RUNTIME_API_URL");
      if (c.api_key.empty()) c.api_key = get("RUNTIME_API_KEY");
    }
    // docker (DOCKER_HOST) and daytona (DAYTONA_API_KEY, DAYTONA_API_URL, ...) read their own.
    return c;
  }

  static std::optional<bool> parse_flag(std::string_view text) noexcept {
    for (std::string_view yes : {"1", "true", "yes", "on"})
      if (text == yes) return true;
    for (std::string_view no : {"0", "false", "no", "off"})
      if (text == no) return false;
    return std::nullopt;
  }

  // The options each type is constructed with.
  std::filesystem::path local_working_dir() const {
    return working_dir.empty() ? std::filesystem::current_path() : std::filesystem::path(working_dir);
  }

  // The options each type is constructed with: the settings above map onto the same names in
  // each (attach_to, environment, working_dir, on_close), the host and key onto each one's own.
  DockerWorkspaceOptions docker_options() const {
    DockerWorkspaceOptions o;
    o.image = image;
    o.engine.host = host;
    if (!network.empty()) o.network_mode = network;
    common(o);
    if (customize_docker) customize_docker(o);
    return o;
  }

  RemoteWorkspaceOptions remote_options() const {
    if (host.empty())
      throw Error(errc::invalid_argument,
                  "remote mode needs the agent server's URL (WORKSPACE_HOST), e.g. http://127.0.0.1:8000");
    RemoteWorkspaceOptions o;
    o.host = host;
    o.session_api_key = api_key;
    if (!working_dir.empty()) o.working_dir = working_dir;
    if (customize_remote) customize_remote(o);
    return o;
  }

  APIRemoteWorkspaceOptions api_remote_options() const {
    APIRemoteWorkspaceOptions o;
    o.runtime_api_url = host;
    o.runtime_api_key = api_key;
    o.server_image = image;
    common(o);
    if (customize_api_remote) customize_api_remote(o);
    return o;
  }

  DaytonaWorkspaceOptions daytona_options() const {
    DaytonaWorkspaceOptions o;
    o.api_url = host;
    o.api_key = api_key;
    o.image = image;
    o.snapshot = snapshot;
    common(o);
    if (customize_daytona) customize_daytona(o);
    return o;
  }

 private:
  template <class Options>
  void common(Options& o) const {
    o.attach_to = attach_to;
    if (!working_dir.empty()) o.working_dir = working_dir;
    for (const auto& [name, value] : environment) o.environment[name] = value;
    if (keep) o.on_close = OnClose::keep;
  }
};

// The mode each workspace type answers to (an overload per type, so a Basic...<Client> with a
// client of the user's own maps too).
constexpr WorkspaceMode mode_of(std::type_identity<LocalWorkspace>) noexcept { return WorkspaceMode::local; }
template <class C>
constexpr WorkspaceMode mode_of(std::type_identity<BasicDockerWorkspace<C>>) noexcept {
  return WorkspaceMode::docker;
}
template <class C>
constexpr WorkspaceMode mode_of(std::type_identity<BasicRemoteWorkspace<C>>) noexcept {
  return WorkspaceMode::remote;
}
template <class C>
constexpr WorkspaceMode mode_of(std::type_identity<BasicAPIRemoteWorkspace<C>>) noexcept {
  return WorkspaceMode::api_remote;
}
template <class C>
constexpr WorkspaceMode mode_of(std::type_identity<BasicDaytonaWorkspace<C>>) noexcept {
  return WorkspaceMode::daytona;
}

// A workspace of one of the types Ws..., chosen at run time. AnyWorkspace holds any of the five;
// a narrower set (say LocalWorkspace and DockerWorkspace) compiles only those.
//
// It is a class template so that nothing is instantiated until it is used: including this header
// costs no more than including the types' own headers.
//
// Capabilities: pause/resume, git_changes/git_diff, id/detach are here for every held type and
// throw Error(errc::unsupported) when the held one lacks them; can_pause() and friends ask first.
template <Workspace... Ws>
class BasicAnyWorkspace : public AsyncOperations<BasicAnyWorkspace<Ws...>> {
 public:
  using variant_type = std::variant<Ws...>;
  using executor_type = asio::any_io_executor;

  template <class W>
    requires(std::same_as<std::remove_cvref_t<W>, Ws> || ...)
  BasicAnyWorkspace(W&& workspace)
      : workspace_(std::in_place_type<std::remove_cvref_t<W>>, std::forward<W>(workspace)) {}

  template <class W, class... Args>
  explicit BasicAnyWorkspace(std::in_place_type_t<W> type, Args&&... args)
      : workspace_(type, std::forward<Args>(args)...) {}

  // Makes the type config.mode names, constructed in place (nothing is moved, so a container or
  // sandbox is created once and owned by this object).
  explicit BasicAnyWorkspace(const WorkspaceConfig& config) : workspace_(make(config)) {}

  static BasicAnyWorkspace from_env(const WorkspaceConfig::Lookup& lookup = WorkspaceConfig::process_environment) {
    return BasicAnyWorkspace(WorkspaceConfig::from_env(lookup));
  }

  BasicAnyWorkspace(BasicAnyWorkspace&&) noexcept = default;
  BasicAnyWorkspace& operator=(BasicAnyWorkspace&&) noexcept = default;

  // --- the Workspace concept
  std::string_view working_dir() const {
    return std::visit([](const auto& w) -> std::string_view { return w.working_dir(); }, workspace_);
  }
  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    return std::visit([&](auto& w) { return w.execute_command(command, options); }, workspace_);
  }
  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) {
    return std::visit([&](auto& w) { return w.file_upload(local_path, workspace_path, options); }, workspace_);
  }
  FileOperationResult file_download(const std::string& workspace_path, const std::string& local_path,
                                    const TransferOptions& options = {}) {
    return std::visit([&](auto& w) { return w.file_download(workspace_path, local_path, options); }, workspace_);
  }
  FileOperationResult file_write(const std::string& workspace_path, std::string_view content) {
    return std::visit([&](auto& w) { return w.file_write(workspace_path, content); }, workspace_);
  }
  FileReadResult file_read(const std::string& workspace_path) {
    return std::visit([&](auto& w) { return w.file_read(workspace_path); }, workspace_);
  }

  // --- the AsyncWorkspace concept (AsyncOperations gives the async_ calls): the held type's
  // coroutines, on the held type's executor.
  executor_type get_executor() const {
    return std::visit(
        [](const auto& w) -> executor_type {
          if constexpr (requires { w.get_executor(); }) return w.get_executor();
          else return {};
        },
        workspace_);
  }
  void set_executor(executor_type executor) {
    std::visit([&](auto& w) { w.set_executor(executor); }, workspace_);
  }
  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) {
    return std::visit([&](auto& w) { return w.co_execute_command(std::move(command), std::move(options)); }, workspace_);
  }
  Task<FileOperationResult> co_file_upload(std::string local_path, std::string workspace_path, TransferOptions options) {
    return std::visit(
        [&](auto& w) { return w.co_file_upload(std::move(local_path), std::move(workspace_path), std::move(options)); },
        workspace_);
  }
  Task<FileOperationResult> co_file_download(std::string workspace_path, std::string local_path, TransferOptions options) {
    return std::visit(
        [&](auto& w) { return w.co_file_download(std::move(workspace_path), std::move(local_path), std::move(options)); },
        workspace_);
  }
  Task<FileOperationResult> co_file_write(std::string workspace_path, std::string content) {
    return std::visit([&](auto& w) { return w.co_file_write(std::move(workspace_path), std::move(content)); }, workspace_);
  }
  Task<FileReadResult> co_file_read(std::string workspace_path) {
    return std::visit([&](auto& w) { return w.co_file_read(std::move(workspace_path)); }, workspace_);
  }

  // --- which one it is
  WorkspaceMode mode() const {
    return std::visit([](const auto& w) { return mode_of(std::type_identity<std::remove_cvref_t<decltype(w)>>{}); },
                      workspace_);
  }
  template <class W>
  bool holds() const noexcept {
    return std::holds_alternative<W>(workspace_);
  }
  template <class W>
  W* get_if() noexcept {
    return std::get_if<W>(&workspace_);
  }
  template <class W>
  const W* get_if() const noexcept {
    return std::get_if<W>(&workspace_);
  }
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), workspace_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), workspace_);
  }
  variant_type& variant() noexcept { return workspace_; }
  const variant_type& variant() const noexcept { return workspace_; }

  // --- capabilities of the held type
  bool can_pause() const noexcept { return held_models<is_pausable>(); }
  bool can_git() const noexcept { return held_models<is_git_capable>(); }
  bool can_attach() const noexcept { return held_models<is_attachable>(); }

  void pause() {
    with<is_pausable>("pause", [](auto& w) { w.pause(); });
  }
  void resume() {
    with<is_pausable>("resume", [](auto& w) { w.resume(); });
  }
  std::vector<GitChange> git_changes(const std::string& path) {
    return with<is_git_capable>("git_changes", [&](auto& w) { return w.git_changes(path); });
  }
  GitDiff git_diff(const std::string& path) {
    return with<is_git_capable>("git_diff", [&](auto& w) { return w.git_diff(path); });
  }
  // The container, runtime or sandbox id.
  std::string id() const {
    return with<is_attachable>("id", [](const auto& w) { return std::string(w.id()); });
  }
  // Leaves the container, runtime or sandbox running when this object goes.
  void detach() {
    with<is_attachable>("detach", [](auto& w) { w.detach(); });
  }

 private:
  template <class W>
  struct is_pausable : std::bool_constant<Pausable<W>> {};
  template <class W>
  struct is_git_capable : std::bool_constant<GitCapable<W>> {};
  // APIRemoteWorkspace has id() and detach() but no attach(id): a runtime is attached to
  // through its session id in the options. Having the two members is what this needs.
  template <class W>
  struct is_attachable : std::bool_constant<requires(W& w, const W& cw) {
    { cw.id() } -> std::convertible_to<std::string_view>;
    w.detach();
  }> {};

  template <template <class> class Trait>
  bool held_models() const noexcept {
    return std::visit([](const auto& w) { return Trait<std::remove_cvref_t<decltype(w)>>::value; }, workspace_);
  }

  // Index of the first of Ws with the capability (0 when none has it: then calling the member
  // does not compile, which is the right answer).
  template <template <class> class Trait>
  static constexpr std::size_t first_with() noexcept {
    constexpr std::array<bool, sizeof...(Ws)> has{Trait<Ws>::value...};
    for (std::size_t i = 0; i < has.size(); ++i)
      if (has[i]) return i;
    return 0;
  }

  // Calls f on the held workspace when it has the capability, else throws errc::unsupported.
  template <template <class> class Trait, class Self, class F>
  static auto with_impl(Self& self, const char* what, F&& f) {
    using Capable = std::tuple_element_t<first_with<Trait>(), std::tuple<Ws...>>;
    using R = std::invoke_result_t<F&, std::conditional_t<std::is_const_v<Self>, const Capable&, Capable&>>;
    return std::visit(
        [&](auto& w) -> R {
          using W = std::remove_cvref_t<decltype(w)>;
          if constexpr (Trait<W>::value)
            return f(w);
          else
            throw Error(errc::unsupported, std::string(what) + ": " + kind_of<W>() + " cannot do that");
        },
        self.workspace_);
  }
  template <template <class> class Trait, class F>
  auto with(const char* what, F&& f) {
    return with_impl<Trait>(*this, what, std::forward<F>(f));
  }
  template <template <class> class Trait, class F>
  auto with(const char* what, F&& f) const {
    return with_impl<Trait>(*this, what, std::forward<F>(f));
  }

  template <class W>
  static constexpr bool has_type = (std::is_same_v<W, Ws> || ...);

  // "a docker workspace"; a type of the user's own without a mode_of() is "this workspace".
  template <class W>
  static std::string kind_of() {
    if constexpr (requires { mode_of(std::type_identity<W>{}); })
      return "a " + std::string(to_string(mode_of(std::type_identity<W>{}))) + " workspace";
    else
      return "this workspace";
  }

  static variant_type make(const WorkspaceConfig& config) {
    using docker_t = BasicDockerWorkspace<>;
    using remote_t = BasicRemoteWorkspace<>;
    using api_remote_t = BasicAPIRemoteWorkspace<>;
    using daytona_t = BasicDaytonaWorkspace<>;
    switch (config.mode) {
      case WorkspaceMode::local:
        if constexpr (has_type<LocalWorkspace>)
          return variant_type(std::in_place_type<LocalWorkspace>, config.local_working_dir());
        break;
      case WorkspaceMode::docker:
        if constexpr (has_type<docker_t>) {
          http::enable_tls();  // a DOCKER_HOST over https works here without a step of the caller's
          return variant_type(std::in_place_type<docker_t>, config.docker_options());
        }
        break;
      case WorkspaceMode::remote:
        if constexpr (has_type<remote_t>) return variant_type(std::in_place_type<remote_t>, config.remote_options());
        break;
      case WorkspaceMode::api_remote:
        if constexpr (has_type<api_remote_t>)
          return variant_type(std::in_place_type<api_remote_t>, config.api_remote_options());
        break;
      case WorkspaceMode::daytona:
        if constexpr (has_type<daytona_t>)
          return variant_type(std::in_place_type<daytona_t>, config.daytona_options());
        break;
    }
    throw Error(errc::unsupported, "mode " + std::string(to_string(config.mode)) +
                                       " is not one of this AnyWorkspace's workspace types");
  }

  variant_type workspace_;
};

using AnyWorkspace =
    BasicAnyWorkspace<LocalWorkspace, DockerWorkspace, RemoteWorkspace, APIRemoteWorkspace, DaytonaWorkspace>;

static_assert(AsyncWorkspace<AnyWorkspace>);

WORKSPACE_NAMESPACE_END
