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
#include <workspace/docker/detail/demux.hpp>
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
  std::string network_mode = "none";          // "none", "host", or a network name
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

namespace docker::detail {

// Runs the user's command in its cwd, or reports a missing cwd unambiguously. It takes
// $1 = cwd, $2 = marker, $3 = command.
inline constexpr const char* exec_wrapper =
    "cd -- \"$1\" 2>/dev/null || { printf '%s' \"$2\" >&2; exit 254; }; exec /bin/sh -c \"$3\"";

}  // namespace docker::detail

template <class Client = http::Client<http::AnyTransport>>
class BasicDockerWorkspace {
 public:
  using engine_type = docker::BasicEngine<Client>;

  explicit BasicDockerWorkspace(DockerWorkspaceOptions options)
      : options_(std::move(options)), engine_(std::make_shared<engine_type>(options_.engine)) {
    if (!options_.attach_to.empty()) {
      attach_existing(options_.attach_to);
      return;
    }
    if (options_.image.empty()) throw Error(errc::invalid_argument, "DockerWorkspace: no image given");
    if (options_.working_dir.empty() || options_.working_dir.front() != '/')
      throw Error(errc::invalid_argument, "DockerWorkspace: working_dir must be absolute");
    working_dir_ = options_.working_dir;
    if (!engine_->image_exists(options_.image)) {
      if (!options_.pull_if_missing)
        throw Error(errc::not_found, "DockerWorkspace: no such image " + options_.image);
      engine_->pull(options_.image, options_.on_pull_progress);
    }
    id_ = engine_->create_container(container_config(), options_.name, options_.platform);
    owns_ = true;
    try {
      engine_->start(id_);
      // Without a user of its own the container runs as the image's (USER in its Dockerfile).
      user_ = options_.user.empty() ? engine_->inspect(id_)["Config"].value("User", std::string()) : options_.user;
      if (!user_is_root()) give_working_dir_to_user();
    } catch (...) {
      // A failed start removes what it created, whatever on_close says: nobody holds its id.
      options_.on_close = OnClose::remove;
      remove_quietly();
      throw;
    }
  }

  BasicDockerWorkspace(BasicDockerWorkspace&& other) noexcept
      : options_(std::move(other.options_)), engine_(std::move(other.engine_)), id_(std::move(other.id_)),
        working_dir_(std::move(other.working_dir_)), user_(std::move(other.user_)), owner_(other.owner_),
        owns_(std::exchange(other.owns_, false)) {}
  BasicDockerWorkspace& operator=(BasicDockerWorkspace&& other) noexcept {
    if (this != &other) {
      remove_quietly();
      options_ = std::move(other.options_);
      engine_ = std::move(other.engine_);
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

  ~BasicDockerWorkspace() { remove_quietly(); }

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

  void pause() { engine_->pause(id_); }
  void resume() { engine_->unpause(id_); }

  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    detail::validate_command(command, options);
    const std::string cwd = options.cwd ? resolve(*options.cwd) : working_dir_;
    const std::string token = shell::random_token();
    const std::string marker = "\x01workspace: missing cwd " + token + "\x01";
    // The command's own deadline, and the one every call it makes ends by (with room for the
    // kill and the exit code after a timeout).
    const Deadline timeout = Deadline::after(options.timeout);
    const auto deadline = timeout.when();
    const Deadline calls = timeout.plus(options_.drain_after_kill + std::chrono::seconds(10));

    nlohmann::json env = nlohmann::json::array({"WORKSPACE_EXEC_TOKEN=" + token});
    for (const auto& [k, v] : options.env) env.push_back(k + "=" + v);
    nlohmann::json config = {
        {"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true}, {"Tty", false},
        {"Cmd", {"/bin/sh", "-c", docker::detail::exec_wrapper, "workspace-exec", cwd, marker, command}},
        {"Env", env}, {"WorkingDir", "/"}};
    if (!options_.user.empty()) config["User"] = options_.user;
    const std::string exec_id = engine_->exec_create(id_, config, calls);
    auto stream = engine_->exec_start(exec_id, calls);

    CommandResult result;
    result.command = command;
    docker::detail::Demultiplexer demux;
    const auto deliver = [&](docker::detail::Demultiplexer::Stream s, std::string_view data) {
      using S = docker::detail::Demultiplexer::Stream;
      if (s == S::system_error) throw Error(errc::bad_state, "docker exec: " + std::string(data));
      (s == S::std_err ? result.std_err : result.std_out).append(data);
      if (options.on_output) options.on_output(s == S::std_err ? OutputStream::std_err : OutputStream::std_out, data);
    };

    std::vector<char> buffer(64 * 1024);
    auto quiet = std::chrono::milliseconds(100);  // most commands end before the first inspect
    bool timed_out = false;
    bool exited = false;  // the command's shell is gone; what remains is output held by others
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        timed_out = true;
        break;
      }
      const auto slice = exited ? now + std::chrono::milliseconds(50) : std::min(deadline, now + quiet);
      if (!stream.wait_readable(slice)) {
        if (exited) break;  // drained
        if (std::chrono::steady_clock::now() >= deadline) continue;
        // Quiet: has the command ended while something else holds its output open?
        const auto info = engine_->exec_inspect(exec_id, calls);
        if (!info.value("Running", true)) exited = true;
        quiet = std::min(quiet * 2, std::chrono::milliseconds(500));
        continue;
      }
      std::error_code ec;
      const std::size_t n = stream.read_some(buffer.data(), buffer.size(), deadline, ec);
      if (ec == errc::timed_out) {
        timed_out = true;
        break;
      }
      if (ec) throw Error(errc::connection_failed, "docker exec: reading the output: " + ec.message());
      if (n == 0) break;  // end of stream
      quiet = std::chrono::milliseconds(100);
      demux.feed(std::string_view(buffer.data(), n), deliver);
    }

    if (timed_out) {
      kill_exec(token);
      // The stream ends once the processes are gone; keep what they wrote.
      const auto until = std::chrono::steady_clock::now() + options_.drain_after_kill;
      while (stream.upgraded()) {
        std::error_code ec;
        const std::size_t n = stream.read_some(buffer.data(), buffer.size(), until, ec);
        if (ec || n == 0) break;
        demux.feed(std::string_view(buffer.data(), n), deliver);
      }
      stream.close();
      result.timeout_occurred = true;
      result.exit_code = -1;
      return result;
    }
    stream.close();

    // The exit code is recorded a little after the stream ends: null means "not yet".
    std::optional<int> code;
    const Deadline recorded = Deadline::after(std::chrono::seconds(5));  // it comes within milliseconds
    for (auto wait = std::chrono::milliseconds(1); !code; wait = std::min(wait * 2, std::chrono::milliseconds(100))) {
      const auto info = engine_->exec_inspect(exec_id, recorded);
      if (!info.value("Running", false) && info.contains("ExitCode") && info["ExitCode"].is_number_integer())
        code = info["ExitCode"].template get<int>();
      else if (recorded.passed())
        throw Error(errc::timed_out, "docker exec: the daemon never reported an exit code");
      else
        std::this_thread::sleep_for(wait);
    }
    if (*code == 254 && result.std_err.size() >= marker.size() &&
        result.std_err.compare(result.std_err.size() - marker.size(), marker.size(), marker) == 0)
      throw Error(errc::not_found, "execute_command: cwd " + detail::quote(cwd) + " does not exist in container " + short_id());
    result.exit_code = *code;
    // Docker reports a signal death as 128 + signal, like a shell; exit codes in that range are
    // read as signals too (the Engine API cannot tell them apart).
    if (*code > 128 && *code < 128 + 65) result.signal = *code - 128;
    return result;
  }

  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = local_path, .destination_path = remote};
    if (workspace_path.empty()) return failed(result, "file_upload: empty workspace path");
    try {
      tar::Writer writer;
      writer.add_file(remote.substr(1), local_path, ownership(remote));
      const std::uint64_t file_size = std::filesystem::file_size(local_path);
      put(std::move(writer), remote, file_size, options);
      result.success = true;
      result.file_size = file_size;
    } catch (const std::exception& e) {
      return failed(result, std::string("file_upload ") + local_path + " -> " + remote + ": " + e.what());
    }
    return result;
  }

  FileOperationResult file_write(const std::string& workspace_path, std::string_view content) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = {}, .destination_path = remote};
    if (workspace_path.empty()) return failed(result, "file_write: empty workspace path");
    try {
      tar::Writer writer;
      tar::Attributes attributes = ownership(remote);
      attributes.mode = 0644;
      writer.add_bytes(remote.substr(1), std::string(content), attributes);
      put(std::move(writer), remote, content.size(), {});
      result.success = true;
      result.file_size = content.size();
    } catch (const std::exception& e) {
      return failed(result, std::string("file_write ") + remote + ": " + e.what());
    }
    return result;
  }

  FileOperationResult file_download(const std::string& workspace_path, const std::string& local_path,
                                    const TransferOptions& options = {}) {
    const std::string remote = resolve(workspace_path);
    FileOperationResult result{.source_path = remote, .destination_path = local_path};
    if (workspace_path.empty()) return failed(result, "file_download: empty workspace path");
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
      get(remote, o);
      extractor.finish();
      result.success = true;
      result.file_size = extractor.bytes_written();
    } catch (const std::exception& e) {
      return failed(result, std::string("file_download ") + remote + " -> " + local_path + ": " + e.what());
    }
    return result;
  }

  FileReadResult file_read(const std::string& workspace_path) {
    const std::string remote = resolve(workspace_path);
    FileReadResult result{.path = remote};
    if (workspace_path.empty()) {
      result.error = "file_read: empty workspace path";
      return result;
    }
    try {
      tar::SingleFileReader reader;
      http::RequestOptions o;
      o.on_body = [&](std::string_view data) {
        reader.feed(data);
        return true;
      };
      get(remote, o);
      reader.finish();
      result.content = std::move(reader).content();
      result.success = true;
    } catch (const std::exception& e) {
      result.error = std::string("file_read ") + remote + ": " + e.what();
    }
    return result;
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

  nlohmann::json container_config() const {
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : options_.labels) labels[k] = v;
    for (const auto& [k, v] : detail::owner_labels()) labels[k] = v;
    nlohmann::json env = nlohmann::json::array();
    for (const auto& [k, v] : options_.environment) env.push_back(k + "=" + v);
    nlohmann::json mounts = nlohmann::json::array();
    for (const auto& m : options_.mounts)
      mounts.push_back({{"Type", m.type == DockerMount::Type::bind ? "bind" : "volume"},
                        {"Source", m.source}, {"Target", m.target}, {"ReadOnly", m.read_only}});
    nlohmann::json host = {{"NetworkMode", options_.network_mode}, {"Mounts", mounts}};
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
    if (!options_.user.empty()) config["User"] = options_.user;
    return config;
  }

  void attach_existing(const std::string& id_or_name) {
    const auto info = engine_->inspect(id_or_name);
    id_ = info.value("Id", id_or_name);
    user_ = options_.user.empty() ? info["Config"].value("User", std::string()) : options_.user;
    working_dir_ = info["Config"].value("WorkingDir", std::string());
    if (working_dir_.empty()) working_dir_ = options_.working_dir.empty() ? "/" : options_.working_dir;
    owns_ = false;
  }

  void remove_quietly() noexcept {
    if (!owns_ || !engine_ || options_.on_close == OnClose::keep) return;
    owns_ = false;
    try {
      switch (options_.on_close) {
        case OnClose::stop: engine_->stop(id_); break;
        case OnClose::pause: engine_->pause(id_); break;
        default: engine_->remove(id_); break;
      }
    } catch (...) {
      // A destructor cannot report; reap_orphans() finds what is left.
    }
  }

  void kill_exec(const std::string& token) { docker::detail::kill_by_token(*engine_, id_, token); }

  std::pair<int, std::string> run_internal(const nlohmann::json& argv, const std::string& user) {
    return docker::detail::run_to_end(*engine_, id_, argv, user);
  }

  template <class Writer>
  void put(Writer&& writer, const std::string& remote, std::uint64_t file_size, const TransferOptions& options) {
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
    try {
      response = engine_->put_archive(id_, "/", std::move(source), total, o);
    } catch (const http::TransportError& e) {
      // The daemon extracts as the bytes arrive and keeps what it got: remove the partial file.
      if (e.progress().request_sent) remove_partial(remote);
      throw;
    }
    if (!response.ok()) {
      http::check_status(response, "docker: PUT archive");  // the caller names the path
    }
  }

  void remove_partial(const std::string& remote) noexcept {
    try {
      CommandOptions o;
      o.timeout = std::chrono::seconds(10);
      // The daemon may still be extracting what reached it when our connection closed: remove
      // the file until it stays gone for a moment.
      const std::string p = shell::shell_quote(remote);
      execute_command("i=0; while [ $i -lt 10 ]; do rm -f -- " + p + "; sleep 0.2; [ -e " + p +
                          " ] || exit 0; i=$((i+1)); done; exit 1",
                      o);
    } catch (...) {
      // Best effort: the upload's own error is what the caller needs to see.
    }
  }

  http::Response get(const std::string& remote, const http::RequestOptions& o) {
    auto response = engine_->get_archive(id_, remote, o);
    if (!response.ok()) http::check_status(response, "docker: GET archive");  // the caller names the path
    return response;
  }

  // Whether commands run as root, as far as the user's spelling tells without asking the
  // container ("0:1000" is root with another group: asked).
  bool user_is_root() const noexcept {
    return user_.empty() || user_ == "0" || user_ == "root" || user_ == "0:0" || user_ == "root:root";
  }

  // The uid and gid that commands run as, asked inside the container once (a user given by
  // name is resolved by the container's own /etc/passwd).
  std::pair<std::uint64_t, std::uint64_t> owner() {
    if (owner_) return *owner_;
    if (user_is_root()) return *(owner_ = std::pair<std::uint64_t, std::uint64_t>{0, 0});
    const auto [code, out] = run_internal({"/bin/sh", "-c", "id -u && id -g"}, user_);
    unsigned long long uid = 0, gid = 0;
    if (code != 0 || std::sscanf(out.c_str(), "%llu %llu", &uid, &gid) != 2)
      throw Error(errc::bad_state, "docker: cannot resolve the user " + detail::quote(user_) + " in container " +
                                       short_id() + " (id -u answered " + detail::quote(out) + ")");
    return *(owner_ = std::pair<std::uint64_t, std::uint64_t>{uid, gid});
  }

  // What a file uploaded to `remote` is recorded with: the command user's ownership. Parent
  // folders that do not exist yet are made first and given to that user too, since the daemon
  // would make them root's, where the user's commands could not write.
  tar::Attributes ownership(const std::string& remote) {
    tar::Attributes attributes;
    if (user_is_root()) return attributes;
    const auto [uid, gid] = owner();
    attributes.uid = uid;
    attributes.gid = gid;
    const auto slash = remote.rfind('/');
    const std::string parent = slash == 0 ? std::string("/") : remote.substr(0, slash);
    if (!engine_->path_exists(id_, parent)) {
      // Only the folders that are missing, found from the deepest up, are handed over.
      const std::string script =
          "d=$1; o=$2; set --; while [ ! -e \"$d\" ]; do set -- \"$d\" \"$@\"; d=$(dirname -- \"$d\"); done; "
          "[ $# -eq 0 ] || { mkdir -p -- \"$@\" && chown -- \"$o\" \"$@\"; }";
      const auto made = run_internal({"/bin/sh", "-c", script, "workspace-mkdir", parent,
                                      std::to_string(uid) + ":" + std::to_string(gid)},
                                     "0");
      if (made.first != 0)
        throw Error(errc::io_error, "cannot create the folder " + detail::quote(parent) + ": " + made.second);
    }
    return attributes;
  }

  // A container made for a non-root user must let that user write in its working_dir: the
  // daemon creates a missing WorkingDir as root's. An empty folder the user cannot write is
  // handed over; one with content belongs to the image and is left alone.
  void give_working_dir_to_user() {
    const auto [code, out] = run_internal(
        {"/bin/sh", "-c",
         "id -u && id -g && if [ -w \"$1\" ]; then echo w; elif [ -z \"$(ls -A -- \"$1\" 2>/dev/null)\" ]; then echo e; "
         "else echo -; fi",
         "workspace-user", working_dir_},
        user_);
    unsigned long long uid = 0, gid = 0;
    char state = 0;
    if (code != 0 || std::sscanf(out.c_str(), "%llu %llu %c", &uid, &gid, &state) != 3)
      throw Error(errc::bad_state, "docker: cannot resolve the user " + detail::quote(user_) + " in container " +
                                       short_id() + ": " + out);
    owner_ = std::pair<std::uint64_t, std::uint64_t>{uid, gid};
    if (state != 'e') return;
    const auto given = run_internal(
        {"chown", "--", std::to_string(uid) + ":" + std::to_string(gid), working_dir_}, "0");
    if (given.first != 0)
      throw Error(errc::io_error, "docker: cannot give working_dir " + detail::quote(working_dir_) + " to user " +
                                      detail::quote(user_) + ": " + given.second);
  }

  DockerWorkspaceOptions options_;
  std::shared_ptr<engine_type> engine_;
  std::string id_;
  std::string working_dir_;
  std::string user_;  // who commands run as: options.user, else the container's own
  std::optional<std::pair<std::uint64_t, std::uint64_t>> owner_;  // their uid and gid, once asked
  bool owns_ = false;
};

using DockerWorkspace = BasicDockerWorkspace<>;

static_assert(Workspace<DockerWorkspace>);
static_assert(Pausable<DockerWorkspace>);
static_assert(Attachable<DockerWorkspace>);

WORKSPACE_NAMESPACE_END
