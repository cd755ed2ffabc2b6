// Runs `/bin/sh -c command` as the leader of a new process group and collects its output.
//
// The calling thread does all the work with poll(): no helper threads, so a command costs one
// posix_spawn plus a few system calls. The parts that matter for correctness:
//  - our descriptors never reach the child (pipes are close-on-exec, and glibc >= 2.34 closes
//    every descriptor above 2 in the child, so sockets the host program opened without
//    close-on-exec do not leak either);
//  - the child starts with an empty signal mask and default dispositions for the signals a host
//    program commonly blocks or ignores, so `yes | head` and our own SIGTERM behave as in a shell;
//  - at the deadline the whole group gets SIGTERM, then SIGKILL after a grace, and we stop
//    waiting for end-of-file on the pipes after a bound, so a background grandchild that holds
//    them (or escaped the group) cannot keep the call from returning;
//  - the shell is reaped only after the last signal to the group, so its pid (the group id)
//    cannot be reused by an unrelated process while we still signal it.
#pragma once

#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/core/detail/fd.hpp>
#include <workspace/version.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT: POSIX declares it nowhere in a header without _GNU_SOURCE

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define WORKSPACE_DETAIL_SPAWN_CHDIR 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define WORKSPACE_DETAIL_SPAWN_CLOSEFROM 1
#endif

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

struct ProcessTimings {
  // Between SIGTERM and SIGKILL to the group on timeout.
  std::chrono::milliseconds term_grace{200};
  // How long to wait for end-of-file once the shell has exited (or been killed) while some
  // other process still holds the output pipes: a background job (`server &`) keeps running,
  // but the call returns.
  std::chrono::milliseconds drain_grace{50};
};

inline std::error_code last_error() noexcept { return {errno, std::system_category()}; }

class SpawnFileActions {
 public:
  SpawnFileActions() {
    if (int rc = ::posix_spawn_file_actions_init(&actions_); rc != 0) fail(rc);
  }
  ~SpawnFileActions() { ::posix_spawn_file_actions_destroy(&actions_); }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;

  static void check(int rc) {
    if (rc != 0) fail(rc);
  }
  posix_spawn_file_actions_t* get() noexcept { return &actions_; }

 private:
  [[noreturn]] static void fail(int rc) {
    throw Error(std::error_code(rc, std::system_category()),
                "execute_command: cannot prepare the child's file actions");
  }
  posix_spawn_file_actions_t actions_;
};

class SpawnAttributes {
 public:
  SpawnAttributes() {
    check(::posix_spawnattr_init(&attr_));
    // A new process group, led by the shell, so a timeout can signal everything it started.
    check(::posix_spawnattr_setpgroup(&attr_, 0));
    // Host programs often block signals in worker threads (Asio does for signal_set users);
    // a child inheriting that mask would ignore our SIGTERM.
    sigset_t mask;
    ::sigemptyset(&mask);
    check(::posix_spawnattr_setsigmask(&attr_, &mask));
    // Ignored dispositions survive exec; servers commonly ignore SIGPIPE, which would turn
    // `yes | head` into an endless stream of EPIPE errors.
    sigset_t defaults;
    ::sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGXFSZ, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM,
                    SIGCHLD, SIGTSTP, SIGTTIN, SIGTTOU})
      ::sigaddset(&defaults, sig);
    check(::posix_spawnattr_setsigdefault(&attr_, &defaults));
    check(::posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  }
  ~SpawnAttributes() { ::posix_spawnattr_destroy(&attr_); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;

  const posix_spawnattr_t* get() const noexcept { return &attr_; }

 private:
  static void check(int rc) {
    if (rc != 0)
      throw Error(std::error_code(rc, std::system_category()),
                  "execute_command: cannot prepare the child's attributes");
  }
  posix_spawnattr_t attr_;
};

// The spawned shell. Until it is reaped, its pid is also a valid process-group id. If it is
// destroyed unreaped (an exception unwound the caller), the whole group is killed and reaped, so
// nothing is left behind.
class ChildGroup {
 public:
  explicit ChildGroup(pid_t pid) noexcept : pid_(pid) {
#ifdef SYS_pidfd_open
    // A pidfd lets poll() wake on the shell's exit; without one (kernel < 5.3) we poll waitid.
    pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#endif
  }
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;
  ~ChildGroup() {
    if (!reaped_) {
      signal_group(SIGKILL);
      reap();
    }
  }

  int pidfd() const noexcept { return pidfd_.get(); }

  // Whether the shell has exited, without reaping it.
  bool has_exited() const noexcept {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) < 0)
      return errno == ECHILD;  // SIGCHLD is ignored by the host, so the kernel reaped it
    return info.si_pid == pid_;
  }

  void signal_group(int sig) const noexcept { ::kill(-pid_, sig); }

  // Returns the wait status, or -1 when it cannot be had (SIGCHLD ignored by the host).
  int reap() noexcept {
    reaped_ = true;
    int status = 0;
    for (;;) {
      if (::waitpid(pid_, &status, 0) == pid_) return status;
      if (errno != EINTR) return -1;
    }
  }

 private:
  pid_t pid_;
  Fd pidfd_;
  bool reaped_ = false;
};

struct OutputPipe {
  Fd fd;
  std::string* sink;
  OutputStream kind;
  bool enlarged = false;
};

// Reads what is available without blocking; closes the descriptor at end-of-file. Reads at most
// `budget` bytes so that one busy stream cannot starve the other or the deadline check.
inline void read_available(OutputPipe& pipe, char* buffer, std::size_t buffer_size,
                           const CommandOptions& options) {
  std::size_t budget = 8 * buffer_size;
  while (pipe.fd && budget > 0) {
    ssize_t n = ::read(pipe.fd.get(), buffer, buffer_size);
    if (n > 0) {
#ifdef F_SETPIPE_SZ
      // A read that drained a full default pipe means a big output: a larger pipe then saves
      // wake-ups. Small outputs never pay for the allocation. The kernel may refuse; fine.
      if (!pipe.enlarged && n >= 65536) {
        pipe.enlarged = true;
        ::fcntl(pipe.fd.get(), F_SETPIPE_SZ, 1 << 20);
      }
#endif
      pipe.sink->append(buffer, static_cast<std::size_t>(n));
      if (options.on_output)
        options.on_output(pipe.kind, std::string_view(buffer, static_cast<std::size_t>(n)));
      budget -= std::min(budget, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      pipe.fd.reset();  // end-of-file, or an error that ends the stream all the same
    }
  }
}

inline void make_output_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(last_error(), "execute_command: cannot create an output pipe");
  read_end.reset(lift_above_stdio(fds[0]));
  write_end.reset(lift_above_stdio(fds[1]));
  if (!read_end || !write_end)
    throw Error(last_error(), "execute_command: cannot create an output pipe");
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
}

// The environment of the calling process, with `extra` added or overriding, and PWD naming the
// directory the command starts in (posix_spawn's chdir does not set it, and sh's `pwd` would
// otherwise report the host's PWD when it names the same directory through another path).
// Host entries are passed as pointers into environ, not copied: this runs on every command.
class ChildEnvironment {
 public:
  ChildEnvironment(const std::map<std::string, std::string>& extra, const std::string& cwd) {
    const bool own_pwd = extra.count("PWD") == 0;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      std::string_view text(*entry);
      std::string_view key = text.substr(0, text.find('='));
      if (key == "PWD" || overridden(extra, key)) continue;
      pointers_.push_back(*entry);
    }
    if (own_pwd) owned_.push_back("PWD=" + cwd);
    for (const auto& [key, value] : extra) owned_.push_back(key + "=" + value);
    for (auto& entry : owned_) pointers_.push_back(entry.data());
    pointers_.push_back(nullptr);
  }
  char* const* get() noexcept { return pointers_.data(); }

 private:
  static bool overridden(const std::map<std::string, std::string>& extra, std::string_view key) {
    if (extra.empty()) return false;
    auto it = extra.lower_bound(std::string(key));
    return it != extra.end() && it->first == key;
  }
  std::vector<std::string> owned_;  // complete before pointers_ takes their addresses
  std::vector<char*> pointers_;
};

// Throws the Error a missing or non-directory cwd deserves.
inline void check_working_directory(const std::string& cwd) {
  struct stat info;
  if (::stat(cwd.c_str(), &info) != 0)
    throw Error(errc::not_found,
                "execute_command: working directory " + quote(cwd) + " does not exist");
  if (!S_ISDIR(info.st_mode))
    throw Error(errc::invalid_argument,
                "execute_command: working directory " + quote(cwd) + " is not a directory");
}

inline int poll_wait_ms(std::chrono::steady_clock::time_point until,
                        std::chrono::steady_clock::time_point now) {
  if (until <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

// A spawned shell and what it has written so far. It stays where it is: the pipes' sinks point
// into its result.
struct ShellRun {
  ShellRun() = default;
  ShellRun(const ShellRun&) = delete;
  ShellRun& operator=(const ShellRun&) = delete;

  CommandResult result;
  OutputPipe out{Fd(), &result.std_out, OutputStream::std_out};
  OutputPipe err{Fd(), &result.std_err, OutputStream::std_err};
  std::optional<ChildGroup> child;
};

// Starts `/bin/sh -c command` in `cwd` (absolute) as the leader of a new process group, its
// stdout and stderr on non-blocking pipes. Arguments are validated by the caller.
inline std::unique_ptr<ShellRun> spawn_shell(const std::string& command, const std::string& cwd,
                                             const CommandOptions& options) {
  ChildEnvironment environment(options.env, cwd);

  auto run = std::make_unique<ShellRun>();
  run->result.command = command;
  Fd out_write, err_write;
  make_output_pipe(run->out.fd, out_write);
  make_output_pipe(run->err.fd, err_write);

  SpawnFileActions actions;
#ifdef WORKSPACE_DETAIL_SPAWN_CHDIR
  SpawnFileActions::check(::posix_spawn_file_actions_addchdir_np(actions.get(), cwd.c_str()));
  std::string script = command;
  const char* argv[] = {"sh", "-c", script.c_str(), nullptr};
#else
  // Without a spawn-time chdir, the shell changes directory itself; "$1" keeps cwd unparsed.
  check_working_directory(cwd);
  std::string script = "cd -- \"$1\" || exit 126; eval \"$2\"";
  const char* argv[] = {"sh", "-c", script.c_str(), "sh", cwd.c_str(), command.c_str(), nullptr};
#endif
  SpawnFileActions::check(
      ::posix_spawn_file_actions_addopen(actions.get(), 0, "/dev/null", O_RDONLY, 0));
  SpawnFileActions::check(::posix_spawn_file_actions_adddup2(actions.get(), out_write.get(), 1));
  SpawnFileActions::check(::posix_spawn_file_actions_adddup2(actions.get(), err_write.get(), 2));
#ifdef WORKSPACE_DETAIL_SPAWN_CLOSEFROM
  SpawnFileActions::check(::posix_spawn_file_actions_addclosefrom_np(actions.get(), 3));
#endif
  SpawnAttributes attributes;

  pid_t pid = -1;
  if (int rc = ::posix_spawn(&pid, "/bin/sh", actions.get(), attributes.get(),
                             const_cast<char* const*>(argv), environment.get());
      rc != 0) {
    // The spawn's chdir failed, or /bin/sh could not run: say which, naming the path. Checked
    // only now, so a successful command pays for no extra stat().
    check_working_directory(cwd);
    throw Error(std::error_code(rc, std::system_category()),
                "execute_command: cannot start /bin/sh in " + quote(cwd));
  }
  run->child.emplace(pid);
  out_write.reset();
  err_write.reset();
  return run;

}

// The phases of a run, apart from how it waits (poll here, an executor in process_async.hpp):
//   running -> (shell exits) -> draining -> done
//   running -> (deadline) -> terminating -> (grace) -> killed -> done
class ShellPhases {
 public:
  using Clock = std::chrono::steady_clock;

  ShellPhases(Clock::time_point start, std::chrono::milliseconds timeout, const ProcessTimings& timings)
      : timings_(timings) {
    const bool has_deadline = timeout < std::chrono::duration_cast<std::chrono::milliseconds>(
                                            Clock::time_point::max() - start - std::chrono::hours(24));
    phase_end_ = has_deadline ? start + timeout : Clock::time_point::max();
  }

  // When the current phase ends.
  Clock::time_point until() const noexcept { return phase_end_; }
  bool exited() const noexcept { return exited_; }

  // The current phase ended at `now`: signals the group as the next phase wants. False once there
  // is nothing left to wait for (draining or killed: whoever still holds the pipes is not ours).
  bool on_time(ChildGroup& child, CommandResult& result, Clock::time_point now) {
    if (phase_ == Phase::running) {
      result.timeout_occurred = true;
      child.signal_group(SIGTERM);
      phase_ = Phase::terminating;
      phase_end_ = now + timings_.term_grace;
      return true;
    }
    if (phase_ == Phase::terminating) {
      child.signal_group(SIGKILL);
      phase_ = Phase::killed;
      phase_end_ = now + timings_.drain_grace;
      return true;
    }
    return false;
  }
  // Ends the running phase now (a cancellation), as the deadline would.
  void expire(Clock::time_point now) noexcept {
    if (phase_ == Phase::running) phase_end_ = now;
  }
  void on_exit(Clock::time_point now) noexcept {
    exited_ = true;
    if (phase_ == Phase::running) {
      phase_ = Phase::draining;
      phase_end_ = now + timings_.drain_grace;
    }
  }
  bool killed() const noexcept { return phase_ == Phase::killed; }

 private:
  enum class Phase { running, draining, terminating, killed };
  ProcessTimings timings_;
  Phase phase_ = Phase::running;
  Clock::time_point phase_end_;
  bool exited_ = false;
};

// Background children that ignored SIGTERM, or never held the pipes, die here; the group id is
// still safe to signal because the shell is not reaped yet. Then the shell is reaped and its
// status read.
inline CommandResult finish_shell(ShellRun& run, const ShellPhases& phases) {
  CommandResult& result = run.result;
  if (result.timeout_occurred && !phases.killed()) run.child->signal_group(SIGKILL);
  const int status = run.child->reap();
  if (result.timeout_occurred) {
    result.exit_code = -1;
  } else if (status != -1 && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (status != -1 && WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
    result.exit_code = 128 + result.signal;
  } else {
    result.exit_code = -1;
  }
  return std::move(result);
}

// Runs `command` with /bin/sh -c in `cwd` (which must be absolute), waiting with poll() on the
// calling thread. Arguments are validated by the caller.
inline CommandResult run_shell_command(const std::string& command, const std::string& cwd,
                                       const CommandOptions& options,
                                       const ProcessTimings& timings = {}) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto run = spawn_shell(command, cwd, options);
  OutputPipe& out = run->out;
  OutputPipe& err = run->err;
  ChildGroup& child = *run->child;
  ShellPhases phases(start, options.timeout, timings);

  constexpr std::size_t buffer_size = 256 * 1024;
  std::unique_ptr<char[]> buffer(new char[buffer_size]);

  for (;;) {
    if (phases.exited() && !out.fd && !err.fd) break;
    auto now = Clock::now();
    if (now >= phases.until()) {
      if (phases.on_time(child, run->result, now)) continue;
      break;
    }

    pollfd fds[3];
    nfds_t count = 0;
    OutputPipe* polled[2] = {nullptr, nullptr};
    for (OutputPipe* pipe : {&out, &err}) {
      if (!pipe->fd) continue;
      polled[count] = pipe;
      fds[count++] = pollfd{pipe->fd.get(), POLLIN, 0};
    }
    const bool watch_exit = !phases.exited() && child.pidfd() >= 0;
    if (watch_exit) fds[count++] = pollfd{child.pidfd(), POLLIN, 0};
    int wait_ms = poll_wait_ms(phases.until(), now);
    if (!phases.exited() && child.pidfd() < 0) wait_ms = std::min(wait_ms, 5);

    int ready = ::poll(fds, count, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw Error(last_error(), "execute_command: poll failed");
    }
    for (nfds_t i = 0; i < 2 && polled[i] != nullptr; ++i)
      if (fds[i].revents != 0) read_available(*polled[i], buffer.get(), buffer_size, options);

    if (!phases.exited() && (!watch_exit || fds[count - 1].revents != 0) && child.has_exited())
      phases.on_exit(Clock::now());
  }
  return finish_shell(*run, phases);
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
