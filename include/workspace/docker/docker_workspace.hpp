// DockerWorkspace: a container as a workspace, through the Engine API alone (no agent inside the
// container, so any image with a POSIX shell works).
//
//   workspace::DockerWorkspace ws({.image = "python:3.12-slim"});
//   auto r = ws.execute_command("python3 --version");
//
// The container is created with labels naming this library and the owning process, and removed
// when the workspace is destroyed (or stopped, paused or kept: on_close; never one it attached
// to or detached);
// reap_orphans() removes the containers whose owner process is gone.
#pragma once

#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/owner.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/core/async.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/docker/detail/command.hpp>
#include <workspace/docker/detail/exec.hpp>
#include <workspace/docker/engine.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/tar.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN

struct DockerMount {
  enum class Type { bind, volume };
  Type type = Type::bind;
  std::string source{};  // host path (bind) or volume name (volume)
  std::string target{};  // path in the container
  bool read_only = false;
};

struct DockerWorkspaceOptions {
  std::string image{};                        // required unless attaching
  std::string working_dir = "/workspace";     // created if missing
  std::map<std::string, std::string> environment{};
  std::vector<DockerMount> mounts{};
  std::string user{};                         // "uid[:gid]" or a name; empty: the image's
  // "none", "host", a network name, or "disabled": "none" without a network sandbox, so many start
  // markedly faster at once, but dockerd leaves /etc/hosts empty (`localhost` does not resolve)
  // unless the image has its own (Podman fills it anyway).
  std::string network_mode = "none";
  std::string platform{};                     // e.g. "linux/amd64"
  std::optional<std::int64_t> memory_bytes{};
  std::optional<double> cpus{};
  std::optional<std::int64_t> pids_limit{};
  std::map<std::string, std::string> labels{};
  std::string name{};
  // For a container it created: remove it, stop it, pause it or keep it running.
  OnClose on_close = OnClose::remove;
  std::string attach_to{};                    // use this existing container (id or name)
  bool pull_if_missing = true;
  docker::ProgressCallback on_pull_progress{};
  docker::EngineOptions engine{};             // the daemon: host, API version, TLS, http
  // After a timeout kill, how long the output of the killed command may still take to drain.
  std::chrono::milliseconds drain_after_kill{1000};
};


template <class Client = http::Client<http::AnyTransport>>
class BasicDockerWorkspace : public Operations<BasicDockerWorkspace<Client>> {
  using Base = Operations<BasicDockerWorkspace<Client>>;

 public:
  using engine_type = docker::BasicEngine<Client>;
  using executor_type = asio::any_io_executor;

  // Creates (or attaches to) the container, blocking the calling thread until it runs.
  explicit BasicDockerWorkspace(DockerWorkspaceOptions options) : BasicDockerWorkspace(Unset{}, std::move(options)) {
    Base::blocking([&] { return co_setup(); });
  }
  // No container: what a failed asynchronous create completes with; it can only be assigned to
  // and destroyed.
  BasicDockerWorkspace() = default;

  // Creates (or attaches to) the container without blocking: the workspace completes through
  // `token` as (std::exception_ptr, BasicDockerWorkspace), and runs its asynchronous operations
  // on `executor`. A cancelled or failed create removes what it had made.
  template <class Token>
  static auto async_create(executor_type executor, DockerWorkspaceOptions options, Token&& token) {
    return workspace::detail::async_run(
        executor,
        [executor, options = std::move(options)]() mutable { return co_create(executor, std::move(options)); },
        std::forward<Token>(token));
  }
  static Task<BasicDockerWorkspace> co_create(executor_type executor, DockerWorkspaceOptions options) {
    BasicDockerWorkspace ws(Unset{}, std::move(options));
    ws.executor_ = std::move(executor);
    co_await ws.co_setup();
    co_return std::move(ws);
  }

  BasicDockerWorkspace(BasicDockerWorkspace&& other) noexcept
      : options_(std::move(other.options_)), engine_(std::move(other.engine_)), executor_(std::move(other.executor_)),
        id_(std::move(other.id_)), working_dir_(std::move(other.working_dir_)), user_(std::move(other.user_)),
        owner_(other.owner_), owns_(std::exchange(other.owns_, false)) {}
  BasicDockerWorkspace& operator=(BasicDockerWorkspace&& other) noexcept {
    if (this != &other) {
      remove_quietly();
      options_ = std::move(other.options_);
      engine_ = std::move(other.engine_);
      executor_ = std::move(other.executor_);
      id_ = std::move(other.id_);
      working_dir_ = std::move(other.working_dir_);
      user_ = std::move(other.user_);
      owner_ = other.owner_;
      owns_ = std::exchange(other.owns_, false);
    }
    return *this;
  }
  BasicDockerWorkspace(const BasicDockerWorkspace&) = delete;
  BasicDockerWorkspace& operator=(const BasicDockerWorkspace&) = delete;

  // Blocks to remove (stop, pause) the container as on_close says; async_close first avoids it.
  ~BasicDockerWorkspace() { remove_quietly(); }

  // Does what on_close says with a container this workspace made, without blocking; afterwards
  // the workspace owns nothing. Completes with (std::exception_ptr, bool): whether it acted.
  template <class Token>
  auto async_close(Token&& token) {
    return workspace::detail::async_run(executor_, [this] { return co_close(); }, std::forward<Token>(token));
  }
  Task<bool> co_close() {
    if (!owns_ || !engine_) co_return false;
    owns_ = false;
    switch (options_.on_close) {
      case OnClose::keep: co_return false;
      case OnClose::stop: co_await engine_->co_stop(id_); break;
      case OnClose::pause: co_await engine_->co_pause(id_); break;
      default: co_await engine_->co_remove(id_); break;
    }
    co_return true;
  }

  // An existing container, which this workspace will not remove.
  static BasicDockerWorkspace attach(const std::string& id_or_name) {
    DockerWorkspaceOptions options;
    options.attach_to = id_or_name;
    return BasicDockerWorkspace(std::move(options));
  }
  static BasicDockerWorkspace attach(const std::string& id_or_name, DockerWorkspaceOptions options) {
    options.attach_to = id_or_name;
    return BasicDockerWorkspace(std::move(options));
  }

  // Leaves the container running when this workspace goes away.
  void detach() noexcept { owns_ = false; }

  const std::string& id() const noexcept { return id_; }
  const std::string& working_dir() const noexcept { return working_dir_; }
  engine_type& engine() noexcept { return *engine_; }
  // Where asynchronous operations run: the executor of async_create, else none (each runs on its
  // completion handler's).
  const executor_type& get_executor() const noexcept { return executor_; }
  void set_executor(executor_type executor) noexcept { executor_ = std::move(executor); }

  void pause() { engine_->pause(id_); }
  void resume() { engine_->unpause(id_); }

  // --- the operations, once (Operations gives the blocking and asynchronous calls)

  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) {
    detail::validate_command(command, options);
    docker::detail::CommandTarget target{id_, options.cwd ? resolve(*options.cwd) : working_dir_, options_.user,
                                         options_.drain_after_kill};
    co_return co_await docker::detail::run_command(*engine_, std::move(target), std::move(command), std::move(options));
  }

  Task<FileOperationResult> co_file_upload(std::string local_path, std::string workspace_path, TransferOptions options) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = local_path, .destination_path = remote};
    if (workspace_path.empty()) co_return failed(result, "file_upload: empty workspace path");
    std::string why;
    try {
      tar::Writer writer;
      writer.add_file(remote.substr(1), local_path, co_await ownership(remote));
      const std::uint64_t file_size = std::filesystem::file_size(local_path);
      co_await put(std::move(writer), remote, file_size, std::move(options));
      result.success = true;
      result.file_size = file_size;
    } catch (const std::exception& e) {
      if (workspace::detail::is_aborted(e)) throw;
      why = std::string("file_upload ") + local_path + " -> " + remote + ": " + e.what();
    }
    throw_if_cancelled(co_await asio::this_coro::cancellation_state);
    if (!why.empty()) co_return failed(result, std::move(why));
    co_return result;
  }

  Task<FileOperationResult> co_file_write(std::string workspace_path, std::string content) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = {}, .destination_path = remote};
    if (workspace_path.empty()) co_return failed(result, "file_write: empty workspace path");
    std::string why;
    try {
      tar::Writer writer;
      tar::Attributes attributes = co_await ownership(remote);
      attributes.mode = 0644;
      const std::uint64_t size = content.size();
      writer.add_bytes(remote.substr(1), std::move(content), attributes);
      co_await put(std::move(writer), remote, size, {});
      result.success = true;
      result.file_size = size;
    } catch (const std::exception& e) {
      if (workspace::detail::is_aborted(e)) throw;
      why = std::string("file_write ") + remote + ": " + e.what();
    }
    throw_if_cancelled(co_await asio::this_coro::cancellation_state);
    if (!why.empty()) co_return failed(result, std::move(why));
    co_return result;
  }

  // The file arrives under a temporary name and is renamed into place at its end, so a failed or
  // cancelled download leaves nothing at local_path.
  Task<FileOperationResult> co_file_download(std::string workspace_path, std::string local_path, TransferOptions options) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = remote, .destination_path = local_path};
    if (workspace_path.empty()) co_return failed(result, "file_download: empty workspace path");
    std::string why;
    try {
      tar::SingleFileExtractor extractor(local_path);
      http::RequestOptions o;
      o.on_body = [&](std::string_view data) {
        extractor.feed(data);
        if (options.on_progress && extractor.entry() &&
            !options.on_progress(extractor.bytes_written(), extractor.entry()->size))
          return false;
        return true;
      };
      co_await get(remote, std::move(o));
      extractor.finish();
      result.success = true;
      result.file_size = extractor.bytes_written();
    } catch (const std::exception& e) {
      if (workspace::detail::is_aborted(e)) throw;
      why = std::string("file_download ") + remote + " -> " + local_path + ": " + e.what();
    }
    throw_if_cancelled(co_await asio::this_coro::cancellation_state);
    if (!why.empty()) co_return failed(result, std::move(why));
    co_return result;
  }

  Task<FileReadResult> co_file_read(std::string workspace_path) {
    const std::string remote = resolve(workspace_path);
    FileReadResult result{.path = remote};
    if (workspace_path.empty()) {
      result.error = "file_read: empty workspace path";
      co_return result;
    }
    try {
      tar::SingleFileReader reader;
      http::RequestOptions o;
      o.on_body = [&](std::string_view data) {
        reader.feed(data);
        return true;
      };
      co_await get(remote, std::move(o));
      reader.finish();
      result.content = std::move(reader).content();
      result.success = true;
    } catch (const std::exception& e) {
      if (workspace::detail::is_aborted(e)) throw;
      result.error = std::string("file_read ") + remote + ": " + e.what();
    }
    throw_if_cancelled(co_await asio::this_coro::cancellation_state);
    co_return result;
  }

  // Removes one container by id or name (a kept one, say), without attaching to it.
  static void remove(const std::string& id_or_name, docker::EngineOptions engine_options = {}) {
    engine_type(std::move(engine_options)).remove(id_or_name);
  }

  // Removes the containers this library made whose owner process (on this host) is gone.
  // Returns how many were removed.
  static std::size_t reap_orphans(docker::EngineOptions engine_options = {}) {
    engine_type engine(std::move(engine_options));
    const auto containers = engine.list_containers(
        {{"label", {std::string(detail::managed_label) + "=true",
                    std::string(detail::owner_host_label) + "=" + detail::host_name()}}});
    std::size_t removed = 0;
    for (const auto& c : containers) {
      const auto& labels = c.value("Labels", nlohmann::json::object());
      if (detail::owner_alive(labels.value(detail::owner_pid_label, std::string()),
                              labels.value(detail::owner_start_label, std::string())))
        continue;
      engine.remove(c.value("Id", std::string()));
      ++removed;
    }
    return removed;
  }

 private:
  struct Unset {};
  BasicDockerWorkspace(Unset, DockerWorkspaceOptions options)
      : options_(std::move(options)), engine_(std::make_shared<engine_type>(options_.engine)) {}

  // The label a create request carries, unique to it: what finds the container again when the
  // create was cancelled after the daemon made it but before its id reached us.
  static constexpr const char* create_label = "org.workspace-cpp.create";

  Task<void> co_setup() {
    if (!options_.attach_to.empty()) {
      co_await attach_existing(options_.attach_to);
      co_return;
    }
    if (options_.image.empty()) throw Error(errc::invalid_argument, "DockerWorkspace: no image given");
    if (options_.working_dir.empty() || options_.working_dir.front() != '/')
      throw Error(errc::invalid_argument, "DockerWorkspace: working_dir must be absolute");
    working_dir_ = options_.working_dir;
    auto image = co_await engine_->co_image_inspect(options_.image);
    if (!image) {
      if (!options_.pull_if_missing)
        throw Error(errc::not_found, "DockerWorkspace: no such image " + options_.image);
      co_await engine_->co_pull(options_.image, options_.on_pull_progress);
      image = co_await engine_->co_image_inspect(options_.image);
      if (!image) throw Error(errc::not_found, "DockerWorkspace: the pulled image " + options_.image + " is missing");
    }
    // Without a user of its own the container runs as the image's (USER in its Dockerfile).
    user_ = options_.user;
    if (user_.empty() && image->contains("Config") && (*image)["Config"].is_object())
      user_ = (*image)["Config"].value("User", std::string());
    const std::string creation = shell::random_token();
    co_await workspace::detail::open_or_undo(co_create_and_start(creation), co_undo_create(creation), "DockerWorkspace");
  }

  Task<void> co_create_and_start(std::string creation) {
    // Shielded: a create the daemon got is seen to its end, so that its container is known.
    id_ = co_await workspace::detail::shielded(
        engine_->co_create_container(container_config(creation), options_.name, options_.platform));
    owns_ = true;
    co_await engine_->co_start(id_);
    if (!user_is_root()) co_await give_working_dir_to_user();
  }

  // A failed or cancelled start removes what it created, whatever on_close says: nobody holds
  // its id. Cancelled during the create itself, the container is found by its label.
  Task<void> co_undo_create(std::string creation) {
    owns_ = false;
    try {
      if (!id_.empty()) {
        co_await engine_->co_remove(id_);
      } else {
        nlohmann::json filters = nlohmann::json::object();
        filters["label"] = nlohmann::json::array({std::string(create_label) + "=" + creation});
        const auto made = co_await engine_->co_list_containers(std::move(filters));
        for (const auto& c : made) co_await engine_->co_remove(c.value("Id", std::string()));
      }
    } catch (...) {
      // reap_orphans() finds what is left; the create's own failure is what the caller needs.
    }
  }

  // A transfer whose caller cancelled it completes with operation_aborted, not a failed result.
  static void throw_if_cancelled(const asio::cancellation_state& state) {
    if (workspace::detail::cancelled(state)) throw Error(asio::error::operation_aborted, "the transfer was cancelled");
  }

  std::string short_id() const { return id_.substr(0, 12); }

  std::string resolve(const std::string& path) const {
    if (path.empty()) return path;
    return detail::resolve_workspace_path(working_dir_, path);
  }

  static FileOperationResult failed(FileOperationResult result, std::string why) {
    result.success = false;
    result.error = std::move(why);
    return result;
  }

  nlohmann::json container_config(const std::string& creation) const {
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : options_.labels) labels[k] = v;
    for (const auto& [k, v] : detail::owner_labels()) labels[k] = v;
    labels[create_label] = creation;
    nlohmann::json env = nlohmann::json::array();
    for (const auto& [k, v] : options_.environment) env.push_back(k + "=" + v);
    nlohmann::json mounts = nlohmann::json::array();
    for (const auto& m : options_.mounts)
      mounts.push_back({{"Type", m.type == DockerMount::Type::bind ? "bind" : "volume"},
                        {"Source", m.source}, {"Target", m.target}, {"ReadOnly", m.read_only}});
    const bool disabled = options_.network_mode == "disabled";
    nlohmann::json host = {{"NetworkMode", disabled ? std::string("none") : options_.network_mode}, {"Mounts", mounts}};
    if (options_.memory_bytes) host["Memory"] = *options_.memory_bytes;
    if (options_.cpus) host["NanoCpus"] = static_cast<std::int64_t>(*options_.cpus * 1e9);
    if (options_.pids_limit) host["PidsLimit"] = *options_.pids_limit;
    nlohmann::json config = {
        {"Image", options_.image},
        // Idles as PID 1 and ends at once on `docker stop` (a shell ignores SIGTERM as PID 1).
        {"Entrypoint", {"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"}},
        {"Cmd", nlohmann::json::array()},
        {"WorkingDir", options_.working_dir},
        {"Env", env},
        {"Labels", labels},
        {"Tty", false},
        {"AttachStdin", false}, {"AttachStdout", false}, {"AttachStderr", false},
        {"HostConfig", host}};
    // An init as PID 1 reaps what killed commands leave behind.
    config["HostConfig"]["Init"] = true;
    if (disabled) config["NetworkDisabled"] = true;
    if (!options_.user.empty()) config["User"] = options_.user;
    return config;
  }

  Task<void> attach_existing(std::string id_or_name) {
    const auto info = co_await engine_->co_inspect(id_or_name);
    id_ = info.value("Id", id_or_name);
    user_ = options_.user.empty() ? info["Config"].value("User", std::string()) : options_.user;
    working_dir_ = info["Config"].value("WorkingDir", std::string());
    if (working_dir_.empty()) working_dir_ = options_.working_dir.empty() ? "/" : options_.working_dir;
    owns_ = false;
  }

  void remove_quietly() noexcept {
    if (!owns_ || !engine_ || options_.on_close == OnClose::keep) return;
    try {
      Base::blocking([&] { return co_close(); });
    } catch (...) {
      // A destructor cannot report; reap_orphans() finds what is left.
    }
    owns_ = false;
  }

  Task<std::pair<int, std::string>> run_internal(nlohmann::json argv, std::string user) {
    return docker::detail::run_to_end(*engine_, id_, std::move(argv), std::move(user));
  }

  template <class Writer>
  Task<void> put(Writer writer, std::string remote, std::uint64_t file_size, TransferOptions options) {
    const std::uint64_t total = writer.size();
    const std::uint64_t padded = (file_size + 511) / 512 * 512;
    const std::uint64_t header = total - padded - 1024;  // the entry's header blocks
    http::RequestOptions o;
    if (options.on_progress) {
      o.on_upload = [&, header, file_size](std::uint64_t done, std::optional<std::uint64_t>) {
        const std::uint64_t file_done = done <= header ? 0 : std::min(file_size, done - header);
        return options.on_progress(file_done, file_size);
      };
    }
    auto source = std::move(writer).source();
    http::Response response;
    bool partial = false;
    std::exception_ptr failure;
    try {
      response = co_await engine_->co_put_archive(id_, "/", std::move(source), total, std::move(o));
    } catch (const http::TransportError& e) {
      // The daemon extracts as the bytes arrive and keeps what it got: remove the partial file.
      partial = e.progress().request_sent;
      failure = std::current_exception();
    } catch (...) {
      partial = true;  // cancelled mid-way: the daemon may have some of it
      failure = std::current_exception();
    }
    if (failure) {
      if (partial) co_await remove_partial(remote);
      std::rethrow_exception(failure);
    }
    if (!response.ok()) {
      http::check_status(response, "docker: PUT archive");  // the caller names the path
    }
  }

  Task<void> remove_partial(std::string remote) {
    const bool by_cancel = workspace::detail::cancelled(co_await asio::this_coro::cancellation_state);
    co_await asio::this_coro::reset_cancellation_state();
    try {
      CommandOptions o;
      o.timeout = std::chrono::seconds(10);
      // The daemon may still be extracting what reached it when our connection closed: remove
      // the file until it stays gone for a moment.
      const std::string p = shell::shell_quote(remote);
      co_await co_execute_command("i=0; while [ $i -lt 10 ]; do rm -f -- " + p + "; sleep 0.2; [ -e " + p +
                                      " ] || exit 0; i=$((i+1)); done; exit 1",
                                  o);
    } catch (...) {
      // Best effort: the upload's own error is what the caller needs to see.
    }
    if (by_cancel) throw Error(asio::error::operation_aborted, "the transfer was cancelled");
  }

  Task<http::Response> get(std::string remote, http::RequestOptions o) {
    auto response = co_await engine_->co_get_archive(id_, remote, std::move(o));
    if (!response.ok()) http::check_status(response, "docker: GET archive");  // the caller names the path
    co_return response;
  }

  // Whether commands run as root, as far as the user's spelling tells without asking the
  // container ("0:1000" is root with another group: asked).
  bool user_is_root() const noexcept {
    return user_.empty() || user_ == "0" || user_ == "root" || user_ == "0:0" || user_ == "root:root";
  }

  // The uid and gid that commands run as, asked inside the container once (a user given by
  // name is resolved by the container's own /etc/passwd).
  Task<std::pair<std::uint64_t, std::uint64_t>> owner() {
    if (owner_) co_return *owner_;
    if (user_is_root()) co_return *(owner_ = std::pair<std::uint64_t, std::uint64_t>{0, 0});
    nlohmann::json argv = {"/bin/sh", "-c", "id -u && id -g"};
    const auto [code, out] = co_await run_internal(std::move(argv), user_);
    unsigned long long uid = 0, gid = 0;
    if (code != 0 || std::sscanf(out.c_str(), "%llu %llu", &uid, &gid) != 2)
      throw Error(errc::bad_state, "docker: cannot resolve the user " + detail::quote(user_) + " in container " +
                                       short_id() + " (id -u answered " + detail::quote(out) + ")");
    co_return *(owner_ = std::pair<std::uint64_t, std::uint64_t>{uid, gid});
  }

  // What a file uploaded to `remote` is recorded with: the command user's ownership. Parent
  // folders that do not exist yet are made first and given to that user too, since the daemon
  // would make them root's, where the user's commands could not write.
  Task<tar::Attributes> ownership(std::string remote) {
    tar::Attributes attributes;
    if (user_is_root()) co_return attributes;
    const auto [uid, gid] = co_await owner();
    attributes.uid = uid;
    attributes.gid = gid;
    const auto slash = remote.rfind('/');
    const std::string parent = slash == 0 ? std::string("/") : remote.substr(0, slash);
    const bool parent_exists = co_await engine_->co_path_exists(id_, parent);
    if (!parent_exists) {
      // Only the folders that are missing, found from the deepest up, are handed over.
      const std::string script =
          "d=$1; o=$2; set --; while [ ! -e \"$d\" ]; do set -- \"$d\" \"$@\"; d=$(dirname -- \"$d\"); done; "
          "[ $# -eq 0 ] || { mkdir -p -- \"$@\" && chown -- \"$o\" \"$@\"; }";
      nlohmann::json argv = {"/bin/sh", "-c", script, "workspace-mkdir", parent,
                             std::to_string(uid) + ":" + std::to_string(gid)};
      const auto made = co_await run_internal(std::move(argv), "0");
      if (made.first != 0)
        throw Error(errc::io_error, "cannot create the folder " + detail::quote(parent) + ": " + made.second);
    }
    co_return attributes;
  }

  // A container made for a non-root user must let that user write in its working_dir: the
  // daemon creates a missing WorkingDir as root's. An empty folder the user cannot write is
  // handed over; one with content belongs to the image and is left alone.
  Task<void> give_working_dir_to_user() {
    nlohmann::json argv = {
        "/bin/sh", "-c",
        "id -u && id -g && if [ -w \"$1\" ]; then echo w; elif [ -z \"$(ls -A -- \"$1\" 2>/dev/null)\" ]; then echo e; "
        "else echo -; fi",
        "workspace-user", working_dir_};
    const auto [code, out] = co_await run_internal(std::move(argv), user_);
    unsigned long long uid = 0, gid = 0;
    char state = 0;
    if (code != 0 || std::sscanf(out.c_str(), "%llu %llu %c", &uid, &gid, &state) != 3)
      throw Error(errc::bad_state, "docker: cannot resolve the user " + detail::quote(user_) + " in container " +
                                       short_id() + ": " + out);
    owner_ = std::pair<std::uint64_t, std::uint64_t>{uid, gid};
    if (state != 'e') co_return;
    nlohmann::json chown = {"chown", "--", std::to_string(uid) + ":" + std::to_string(gid), working_dir_};
    const auto given = co_await run_internal(std::move(chown), "0");
    if (given.first != 0)
      throw Error(errc::io_error, "docker: cannot give working_dir " + detail::quote(working_dir_) + " to user " +
                                      detail::quote(user_) + ": " + given.second);
  }

  DockerWorkspaceOptions options_;
  std::shared_ptr<engine_type> engine_;
  executor_type executor_;
  std::string id_;
  std::string working_dir_;
  std::string user_;  // who commands run as: options.user, else the container's own
  std::optional<std::pair<std::uint64_t, std::uint64_t>> owner_;  // their uid and gid, once asked
  bool owns_ = false;
};

using DockerWorkspace = BasicDockerWorkspace<>;

static_assert(AsyncWorkspace<DockerWorkspace>);
static_assert(Pausable<DockerWorkspace>);
static_assert(Attachable<DockerWorkspace>);

WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
