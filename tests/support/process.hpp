// Test support: temporary folders, child processes and loopback port helpers for the fixtures
// that run real servers (nginx, tinyproxy) next to the tests. Test-only code: it throws
// std::runtime_error on any set-up failure so a broken environment fails loudly, not flakily.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace workspace_test {

namespace fs = std::filesystem;

[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// A file descriptor closed on scope exit (the helpers below must not leak on throw).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Files

inline std::string read_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("read_file: open " + path.string());
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read_file: read " + path.string());
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Creates parent folders; replaces the file.
inline void write_file(const fs::path& path, std::string_view bytes) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw_errno("write_file: open " + path.string());
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("write_file: write " + path.string());
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A file of `size` zero bytes that takes (almost) no disk: ftruncate leaves a hole, so large-file
// tests (1 GiB and more) stay cheap. Reads return zeros.
inline void make_sparse_file(const fs::path& path, std::uint64_t size) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw_errno("make_sparse_file: open " + path.string());
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    throw_errno("make_sparse_file: ftruncate " + path.string());
}

// The last `max_bytes` of a log file, for error messages; empty when it cannot be read.
inline std::string file_tail(const fs::path& path, std::size_t max_bytes = 4096) {
  if (path.empty()) return {};
  try {
    std::string text = read_file(path);
    if (text.size() > max_bytes) text.erase(0, text.size() - max_bytes);
    return text;
  } catch (const std::exception&) {
    return {};
  }
}

// ---------------------------------------------------------------------------------------------
// TempDir: mkdtemp under $TMPDIR (or /tmp), removed with everything in it on destruction.

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "workspace-test") {
    const char* env = std::getenv("TMPDIR");
    const fs::path base = (env != nullptr && *env != '\0') ? fs::path(env) : fs::path("/tmp");
    init(base, prefix);
  }
  TempDir(const fs::path& base, std::string_view prefix) { init(base, prefix); }

  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&& other) noexcept {
    if (this != &other) {
      remove();
      path_ = std::exchange(other.path_, {});
    }
    return *this;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { remove(); }

  const fs::path& path() const { return path_; }

 private:
  void init(const fs::path& base, std::string_view prefix) {
    std::string tmpl = (base / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw_errno("mkdtemp " + tmpl);
    path_ = tmpl;
  }
  void remove() noexcept {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: a destructor must not throw
    path_.clear();
  }

  fs::path path_;
};

// ---------------------------------------------------------------------------------------------
// ChildProcess: posix_spawnp in its own process group, so the destructor can stop the process
// and anything it started. The exited child is kept as a zombie (waitid WNOWAIT) until the
// destructor reaps it: its pid, and so its process-group id, cannot be reused meanwhile, which
// makes the final kill(-pgid) safe.
//
// Destructors do not run when a test process crashes, aborts under a sanitizer or is killed by a
// ctest timeout, and an orphaned nginx would run on forever. So each child gets a watchdog: a
// tiny `sh` blocked reading a pipe whose only write end this object holds (O_CLOEXEC, so no other
// child inherits it). When the test process dies the pipe reaches EOF and the watchdog kills the
// child's process group. A normal stop() kills the watchdog first.

class ChildProcess {
 public:
  // argv[0] is looked up in PATH. When `output` is given, stdout and stderr are appended to it;
  // otherwise they are inherited. stdin is /dev/null; no other descriptor is inherited.
  explicit ChildProcess(const std::vector<std::string>& argv, const fs::path& output = {}) {
    if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
    pid_ = spawn(argv, output, -1);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      const int saved = errno;
      stop();
      errno = saved;
      throw_errno("ChildProcess: pipe2");
    }
    UniqueFd read_end(fds[0]);
    watchdog_pipe_ = UniqueFd(fds[1]);
    try {
      watchdog_pid_ =
          spawn({"/bin/sh", "-c", "while read -r _; do :; done; kill -KILL -\"$1\" 2>/dev/null",
                 "workspace-test-watchdog", std::to_string(pid_)},
                "/dev/null", read_end.get());
    } catch (...) {
      stop();
      throw;
    }
  }

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { stop(); }

  pid_t pid() const { return pid_; }

  // True until the process exits (it is not reaped here; see the class comment).
  bool running() const { return !peek_exit().has_value(); }

  // The exit code once it has exited (128 + signal number when killed), else nullopt.
  std::optional<int> exit_code() const { return peek_exit(); }

  // Waits up to `timeout` for the process to exit; returns its exit code, or nullopt.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto code = peek_exit()) return code;
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // SIGTERM to the group, up to 2 s to exit, then SIGKILL; reaps. Idempotent.
  void stop() noexcept {
    if (watchdog_pid_ > 0) {
      ::kill(watchdog_pid_, SIGKILL);
      reap(watchdog_pid_);
      watchdog_pid_ = -1;
    }
    watchdog_pipe_.reset();
    if (pid_ <= 0) return;
    if (!peek_exit()) {
      ::kill(-pid_, SIGTERM);
      (void)wait_for_exit(std::chrono::seconds(2));
    }
    ::kill(-pid_, SIGKILL);  // the leader, if still running, and anything it left behind
    reap(pid_);
    pid_ = -1;
  }

 private:
  // `stdin_fd` < 0: stdin is /dev/null. The child gets its own process group, default signal
  // handling and an empty signal mask, whatever the test runner (or a test thread) has blocked
  // or ignored, so SIGTERM reaches it.
  static pid_t spawn(const std::vector<std::string>& argv, const fs::path& output, int stdin_fd) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
    if (stdin_fd >= 0)
      ::posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    else
      ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (!output.empty()) {
      ::posix_spawn_file_actions_addopen(&actions, 1, output.c_str(),
                                         O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::posix_spawn_file_actions_adddup2(&actions, 1, 2);
    }
    ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGQUIT})
      sigaddset(&defaults, sig);
    ::posix_spawnattr_setpgroup(&attr, 0);
    ::posix_spawnattr_setsigmask(&attr, &empty);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(
        &attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                  POSIX_SPAWN_SETSIGDEF));

    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0)
      throw std::system_error(rc, std::generic_category(), "posix_spawnp " + argv[0]);
    return pid;
  }

  static void reap(pid_t pid) noexcept {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }

  std::optional<int> peek_exit() const {
    if (pid_ <= 0) return std::nullopt;
    siginfo_t info{};
    for (;;) {
      if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0) break;
      if (errno == EINTR) continue;
      return -1;  // ECHILD: someone else reaped it; treat as exited
    }
    if (info.si_pid == 0) return std::nullopt;
    if (info.si_code == CLD_EXITED) return info.si_status;
    return 128 + info.si_status;
  }

  pid_t pid_ = -1;
  pid_t watchdog_pid_ = -1;
  UniqueFd watchdog_pipe_;
};

// Runs a command to completion (output appended to `log`); throws with the log tail if it fails
// or does not finish within `timeout`.
inline void run_checked(const std::vector<std::string>& argv, const fs::path& log,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ChildProcess child(argv, log);
  const auto code = child.wait_for_exit(timeout);
  if (code == std::optional<int>(0)) return;
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  throw std::runtime_error(
      (code ? "command failed with exit code " + std::to_string(*code) : "command timed out") +
      ": " + cmd + "\n" + file_tail(log));
}

// ---------------------------------------------------------------------------------------------
// Loopback ports

inline sockaddr_in loopback_v4(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// `count` distinct ports that were free on 127.0.0.1 a moment ago. The sockets stay bound until
// all are picked so the kernel cannot hand out the same port twice; a server may still lose a
// port to another process before it binds it, so server fixtures retry start-up on new ports.
inline std::vector<std::uint16_t> free_tcp_ports(std::size_t count) {
  std::vector<UniqueFd> held;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < count; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("free_tcp_port: socket");
    sockaddr_in addr = loopback_v4(0);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw_errno("free_tcp_port: bind");
    socklen_t len = sizeof addr;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw_errno("free_tcp_port: getsockname");
    ports.push_back(ntohs(addr.sin_port));
    held.push_back(std::move(fd));
  }
  return ports;
}

inline std::uint16_t free_tcp_port() { return free_tcp_ports(1).front(); }

// One connect attempt; true when something accepted.
inline bool can_connect_tcp(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  const sockaddr_in addr = loopback_v4(port);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

inline sockaddr_un unix_address(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string& s = path.native();
  if (s.size() >= sizeof addr.sun_path)
    throw std::runtime_error("Unix socket path too long: " + s);
  std::copy(s.begin(), s.end(), addr.sun_path);
  return addr;
}

inline bool can_connect_unix(const fs::path& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  const sockaddr_un addr = unix_address(path);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

namespace detail {
template <class Probe>
void wait_until_accepting(Probe probe, const std::string& what, std::chrono::milliseconds timeout,
                          const fs::path& log, const ChildProcess* server) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (probe()) return;
    if (server != nullptr && !server->running())
      throw std::runtime_error("server exited (code " + std::to_string(*server->exit_code()) +
                               ") before " + what + " accepted connections\n" + file_tail(log));
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error(what + " did not accept connections within " +
                               std::to_string(timeout.count()) + " ms\n" + file_tail(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}
}  // namespace detail

// Poll-connects to 127.0.0.1:port until it accepts; throws with the tail of `log` if it does not
// within `timeout`, or as soon as `server` (when given) has exited.
inline void wait_for_tcp(std::uint16_t port, std::chrono::milliseconds timeout,
                         const fs::path& log = {}, const ChildProcess* server = nullptr) {
  detail::wait_until_accepting([&] { return can_connect_tcp(port); },
                               "127.0.0.1:" + std::to_string(port), timeout, log, server);
}

inline void wait_for_unix(const fs::path& path, std::chrono::milliseconds timeout,
                          const fs::path& log = {}, const ChildProcess* server = nullptr) {
  detail::wait_until_accepting([&] { return can_connect_unix(path); }, "unix:" + path.string(),
                               timeout, log, server);
}

// Waits until `server` has written its own pid into `pid_file`. nginx and tinyproxy both write it
// only after binding every listener, so unlike a connect probe this cannot be fooled by another
// process that grabbed our port. Returns false if the server exits first (typically: a port was
// taken; the caller retries on new ports), or as soon as `log` contains `give_up_on` (nginx
// retries a taken port for 2.5 s before exiting); throws on timeout.
inline bool wait_for_pid_file(const ChildProcess& server, const fs::path& pid_file,
                              std::chrono::milliseconds timeout, const fs::path& log = {},
                              std::string_view give_up_on = {}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string want = std::to_string(server.pid());
  for (;;) {
    std::error_code ec;
    if (fs::exists(pid_file, ec)) {
      std::string text = file_tail(pid_file, 64);
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      if (text == want) return true;
    }
    if (!server.running()) return false;
    if (!give_up_on.empty() && file_tail(log, 1 << 20).find(give_up_on) != std::string::npos)
      return false;
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("server did not start within " + std::to_string(timeout.count()) +
                               " ms\n" + file_tail(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace workspace_test
