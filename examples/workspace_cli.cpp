// workspace-cli: run a command, or copy a file in or out, in any workspace type chosen at run
// time by flags or by the environment (WORKSPACE_MODE and friends; see --help).
//
//   workspace-cli run -- make test                        # here, in the current directory
//   WORKSPACE_MODE=docker WORKSPACE_IMAGE=debian:12 workspace-cli run 'uname -a'
//   workspace-cli --mode remote --host http://127.0.0.1:8000 upload build.tar /workspace/build.tar
//
// The command's exit status is passed through; see usage() for the rest.
#include <workspace/workspace.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <csignal>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Exit statuses of the CLI itself (a command's own status passes through unchanged).
constexpr int exit_transfer_failed = 1;
constexpr int exit_timed_out = 124;  // as timeout(1)
constexpr int exit_cli_failed = 125;  // as docker run: the tool could not do what was asked

constexpr const char* program = "workspace-cli";

void usage(std::FILE* out) {
  std::fprintf(out, R"(usage: %s [workspace options] run [run options] [--] COMMAND...
       %s [workspace options] upload LOCAL_PATH WORKSPACE_PATH
       %s [workspace options] download WORKSPACE_PATH LOCAL_PATH
       %s [workspace options] rm ID...

Runs COMMAND with /bin/sh -c (several words are joined with spaces), copies a file into or out
of the workspace, or removes containers, runtimes or sandboxes kept with --keep (rm takes the
ids --keep printed). Relative workspace paths resolve against the working directory.

Workspace options (each defaults to the environment variable named on the right):
  --mode MODE         local, docker, remote, api_remote or daytona   WORKSPACE_MODE (local)
  --working-dir DIR   where commands run and paths resolve          WORKSPACE_WORKING_DIR
  --image IMAGE       docker: the image; api_remote: the agent-server image;
                      daytona: an image instead of a snapshot       WORKSPACE_IMAGE
  --snapshot NAME     daytona: the snapshot                         WORKSPACE_SNAPSHOT
  --attach ID         use an existing container, session or sandbox WORKSPACE_ATTACH
  --host URL          docker: the daemon (DOCKER_HOST); remote: the agent server;
                      api_remote: the runtime API (RUNTIME_API_URL);
                      daytona: the API (DAYTONA_API_URL)           WORKSPACE_HOST
  --api-key KEY       remote: session key (SESSION_API_KEY); api_remote: RUNTIME_API_KEY;
                      daytona: DAYTONA_API_KEY. Prefer the environment: flags show in ps.
                                                                    WORKSPACE_API_KEY
  --network MODE      docker: none (default), disabled, host or a   WORKSPACE_NETWORK
                      network name
  --keep              leave what was created running, and print its id  WORKSPACE_KEEP
  --environment NAME=VALUE   docker: the container's environment; api_remote: the agent
                      server's; daytona: the sandbox's (repeatable)

Run options:
  --timeout SECONDS   kill the command and all it started after this (default: never,
                      as docker exec; 0: never)
  --cwd DIR           run there instead of the working directory
  --env NAME=VALUE    add to the command's environment (repeatable)

Transfer options:
  --progress, --no-progress   a progress bar on stderr (default: when stderr is a terminal
                              and the transfer takes a while)

  -h, --help          this text
  --version           the library's version

Exit status: run passes the command's status through (128+N when signal N ended it), or 124
when it timed out; upload and download exit 0, or 1 when the transfer failed; rm exits 0; 125
means %s itself failed (a bad flag, or a workspace it could not create, reach or remove),
with one line on stderr. On SIGINT, SIGTERM or SIGHUP the command is killed and what was created
is removed.
)",
               program, program, program, program, program);
}

// One line, whatever the error text holds: servers put newlines in theirs.
[[noreturn]] void fail(std::string message) {
  std::replace_if(message.begin(), message.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  std::fprintf(stderr, "%s: %s\n", program, message.c_str());
  std::exit(exit_cli_failed);
}

struct UsageError {
  std::string message;
};

struct Arguments {
  workspace::WorkspaceConfig config;
  std::vector<std::string> given;  // workspace flags given on the command line
  std::string action;              // run, upload, download, rm
  std::vector<std::string> operands;
  workspace::CommandOptions run;
  std::optional<bool> progress;
};

// --name VALUE or --name=VALUE.
class Flags {
 public:
  Flags(int argc, char** argv) : args_(argv + 1, argv + argc) {}
  bool done() const { return i_ >= args_.size(); }
  const std::string& peek() const { return args_[i_]; }
  std::string next() { return args_[i_++]; }
  std::vector<std::string> rest() { return {args_.begin() + static_cast<std::ptrdiff_t>(i_), args_.end()}; }

  // Whether the current argument is the flag `name`, consuming it (and its value).
  bool take(std::string_view name, std::string* value = nullptr) {
    const std::string& arg = args_[i_];
    if (value == nullptr) {
      if (arg != name) return false;
      ++i_;
      return true;
    }
    if (arg == name) {
      if (i_ + 1 >= args_.size()) throw UsageError{std::string(name) + " needs a value"};
      *value = args_[i_ + 1];
      i_ += 2;
      return true;
    }
    if (arg.size() > name.size() && arg.compare(0, name.size(), name) == 0 && arg[name.size()] == '=') {
      *value = arg.substr(name.size() + 1);
      ++i_;
      return true;
    }
    return false;
  }

 private:
  std::vector<std::string> args_;
  std::size_t i_ = 0;
};

std::chrono::milliseconds parse_seconds(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double seconds = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(seconds) || seconds < 0 ||
      seconds > 1e9)
    throw UsageError{"--timeout: expected seconds, got '" + text + "'"};
  if (seconds == 0) return workspace::no_timeout;
  return std::max(std::chrono::milliseconds(1),
                  std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000))));
}

std::pair<std::string, std::string> name_value(const char* flag, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError{std::string(flag) + ": expected NAME=VALUE, got '" + text + "'"};
  return {text.substr(0, eq), text.substr(eq + 1)};
}

Arguments parse(int argc, char** argv) {
  Arguments a;
  // A CLI run waits as long as the command takes, as docker exec does; the library's 30 s
  // default suits programs, not a person at a terminal.
  a.run.timeout = workspace::no_timeout;
  // The workspace flags overlay the environment, so that the configuration is read once, the
  // same way (WorkspaceConfig::from_env), fallbacks (RUNTIME_API_URL, ...) included.
  std::map<std::string, std::string> overlay;
  std::map<std::string, std::string> environment;
  Flags f(argc, argv);
  std::string v;
  const auto workspace_flag = [&](std::string_view name, const char* variable) {
    if (!f.take(name, &v)) return false;
    overlay[variable] = v;
    a.given.emplace_back(name);
    return true;
  };
  // Workspace options, up to the action.
  while (!f.done() && a.action.empty()) {
    if (f.take("-h") || f.take("--help")) {
      usage(stdout);
      std::exit(0);
    }
    if (f.take("--version")) {
      std::printf("%s (workspace %s)\n", program, WORKSPACE_VERSION_STRING);
      std::exit(0);
    }
    if (f.take("--mode", &v)) {
      if (!workspace::parse_workspace_mode(v))
        throw UsageError{"--mode: unknown mode '" + v + "' (local, docker, remote, api_remote or daytona)"};
      overlay["WORKSPACE_MODE"] = v;
      continue;
    }
    if (workspace_flag("--working-dir", "WORKSPACE_WORKING_DIR") || workspace_flag("--image", "WORKSPACE_IMAGE") ||
        workspace_flag("--snapshot", "WORKSPACE_SNAPSHOT") || workspace_flag("--attach", "WORKSPACE_ATTACH") ||
        workspace_flag("--host", "WORKSPACE_HOST") || workspace_flag("--api-key", "WORKSPACE_API_KEY") ||
        workspace_flag("--network", "WORKSPACE_NETWORK"))
      continue;
    if (f.take("--environment", &v)) {
      const auto [name, value] = name_value("--environment", v);
      environment[name] = value;
      a.given.emplace_back("--environment");
      continue;
    }
    if (f.take("--keep")) {
      overlay["WORKSPACE_KEEP"] = "1";
      a.given.emplace_back("--keep");
      continue;
    }
    const std::string arg = f.next();
    if (arg == "run" || arg == "upload" || arg == "download" || arg == "rm") {
      a.action = arg;
      break;
    }
    if (!arg.empty() && arg[0] == '-') throw UsageError{"unknown option " + arg};
    throw UsageError{"unknown action '" + arg + "' (run, upload, download or rm)"};
  }
  if (a.action.empty()) throw UsageError{"no action given (run, upload, download or rm)"};
  a.config = workspace::WorkspaceConfig::from_env([&](const char* name) -> std::optional<std::string> {
    if (auto it = overlay.find(name); it != overlay.end()) return it->second;
    return workspace::WorkspaceConfig::process_environment(name);
  });
  a.config.environment = std::move(environment);

  // The action's own options, then its operands.
  while (!f.done()) {
    const std::string& arg = f.peek();
    if (arg == "--") {
      f.next();
      break;
    }
    if (arg.empty() || arg[0] != '-' || arg == "-") break;
    if (a.action == "run") {
      if (f.take("--timeout", &v)) {
        a.run.timeout = parse_seconds(v);
        continue;
      }
      if (f.take("--cwd", &v)) {
        a.run.cwd = v;
        continue;
      }
      if (f.take("--env", &v)) {
        const auto [name, value] = name_value("--env", v);
        a.run.env[name] = value;
        continue;
      }
    } else if (a.action != "rm") {
      if (f.take("--progress")) {
        a.progress = true;
        continue;
      }
      if (f.take("--no-progress")) {
        a.progress = false;
        continue;
      }
    }
    throw UsageError{"unknown option " + arg + " for " + a.action};
  }
  a.operands = f.rest();
  if (a.action == "run" && a.operands.empty()) throw UsageError{"run: no command given"};
  if (a.action == "rm" && a.operands.empty()) throw UsageError{"rm: no id given"};
  using M = workspace::WorkspaceMode;
  if (a.action == "rm" && a.config.mode != M::docker && a.config.mode != M::api_remote && a.config.mode != M::daytona)
    throw UsageError{"rm applies to modes docker, api_remote and daytona, not " +
                     std::string(workspace::to_string(a.config.mode))};
  if ((a.action == "upload" || a.action == "download") && a.operands.size() != 2)
    throw UsageError{a.action + ": expected two paths, got " + std::to_string(a.operands.size())};

  // A flag that means nothing for the chosen mode is a mistake worth reporting.
  const auto applies = [&](const std::string& flag) {
    const M m = a.config.mode;
    if (flag == "--working-dir") return true;
    if (flag == "--image") return m == M::docker || m == M::api_remote || m == M::daytona;
    if (flag == "--snapshot") return m == M::daytona;
    if (flag == "--attach" || flag == "--keep" || flag == "--environment")
      return m == M::docker || m == M::api_remote || m == M::daytona;
    if (flag == "--host") return m != M::local;
    if (flag == "--api-key") return m == M::remote || m == M::api_remote || m == M::daytona;
    if (flag == "--network") return m == M::docker;
    return false;
  };
  for (const auto& flag : a.given)
    if (!applies(flag))
      throw UsageError{flag + " does not apply to mode " + std::string(workspace::to_string(a.config.mode))};
  return a;
}

// --- progress bar

std::string human_bytes(double bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

// Redrawn in place on stderr at most ten times a second; `always` draws even quick transfers.
class ProgressBar {
 public:
  ProgressBar(bool always, std::string label) : always_(always), label_(std::move(label)) {}

  bool update(std::uint64_t done, std::optional<std::uint64_t> total) {
    const auto now = Clock::now();
    done_ = done;
    total_ = total;
    // Auto mode waits a moment: a quick transfer needs no bar.
    if (!always_ && now - start_ < 300ms) return true;
    if (drawn_ && now - last_ < 100ms) return true;
    draw(now);
    return true;
  }

  void finish(bool success) {
    if (drawn_ || (always_ && success)) {
      draw(Clock::now());
      std::fputc('\n', stderr);
    }
  }

 private:
  void draw(Clock::time_point now) {
    last_ = now;
    drawn_ = true;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(done_) / seconds : 0;
    std::string line = "\r" + label_ + " ";
    if (total_ && *total_ > 0) {
      const double fraction = std::min(1.0, static_cast<double>(done_) / static_cast<double>(*total_));
      constexpr int width = 24;
      const int filled = static_cast<int>(fraction * width);
      char percent[8];
      std::snprintf(percent, sizeof percent, "%3d%%", static_cast<int>(fraction * 100));
      line += percent;
      line += " [" + std::string(static_cast<std::size_t>(filled), '#') +
              std::string(static_cast<std::size_t>(width - filled), '.') + "] ";
      line += human_bytes(static_cast<double>(done_)) + " / " + human_bytes(static_cast<double>(*total_));
    } else {
      line += human_bytes(static_cast<double>(done_));
    }
    line += "  " + human_bytes(rate) + "/s\x1b[K";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
  }

  bool always_;
  std::string label_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
  bool drawn_ = false;
  std::uint64_t done_ = 0;
  std::optional<std::uint64_t> total_;
};

// --- signals: kill the command and remove what was created, then exit 128+N

struct Interrupt {
  std::mutex mutex;
  std::condition_variable cleaned_up;
  bool done = false;  // the signal's cleanup has finished
  workspace::WorkspaceConfig config;
  std::string created_id;  // the container, runtime or sandbox this run created
  std::atomic<int> signal{0};

  // After a signal, the main thread must not exit before the cleanup has removed what was
  // created: the process's end would cut it short.
  void wait_for_cleanup() {
    std::unique_lock lock(mutex);
    cleaned_up.wait_for(lock, 60s, [&] { return done; });
  }
};
Interrupt interrupt;

// The local command runs in a process group of its own, which a terminal's Ctrl-C does not
// reach: kill the groups our children lead.
void kill_child_groups() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string self = std::to_string(::getpid());
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    // After "(comm)": state, ppid, pgrp.
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) continue;
    if (std::to_string(ppid) == self && pgrp > 0 && std::to_string(pgrp) != self) ::kill(static_cast<pid_t>(-pgrp), SIGKILL);
  }
}

// Removes the created container, runtime or sandbox through a client of its own: the main
// thread's workspace object is busy in the call the signal interrupted. Its calls then fail,
// and its destructor finds nothing left to remove.
void remove_created() noexcept {
  std::string id;
  workspace::WorkspaceConfig config;
  {
    std::lock_guard lock(interrupt.mutex);
    id = interrupt.created_id;
    config = interrupt.config;
  }
  if (id.empty() || config.keep) return;
  try {
    using M = workspace::WorkspaceMode;
    if (config.mode == M::docker) {
      workspace::DockerWorkspace::remove(id, config.docker_options().engine);
    } else if (config.mode == M::daytona) {
      const auto o = config.daytona_options();
      workspace::DaytonaWorkspace::remove(id, o);
    } else if (config.mode == M::api_remote) {
      workspace::APIRemoteWorkspace::remove(id, config.api_remote_options());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: could not remove %s: %s\n", program, id.c_str(), e.what());
  }
}

// Signals go to this thread only (sigwait), so the cleanup may do anything a thread can.
void watch_signals(sigset_t set) {
  int signal = 0;
  if (sigwait(&set, &signal) != 0) return;
  interrupt.signal = signal;
  kill_child_groups();
  remove_created();
  {
    std::lock_guard lock(interrupt.mutex);
    interrupt.done = true;
  }
  interrupt.cleaned_up.notify_all();
  // The main thread normally finishes on its own once the command is gone (or, when the
  // signal came during the set-up, once that is done and undone); this is for when it cannot
  // (a call blocked on a dead peer).
  std::this_thread::sleep_for(60s);
  std::_Exit(128 + signal);
}

int run(workspace::AnyWorkspace& ws, const Arguments& a) {
  std::string command;
  for (const auto& word : a.operands) command += (command.empty() ? "" : " ") + word;
  workspace::CommandOptions options = a.run;
  options.on_output = [](workspace::OutputStream stream, std::string_view chunk) {
    const int fd = stream == workspace::OutputStream::std_out ? 1 : 2;
    while (!chunk.empty()) {
      const ssize_t n = ::write(fd, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a closed pipe (| head) is the reader's choice, not an error
      chunk.remove_prefix(static_cast<std::size_t>(n));
    }
  };
  const workspace::CommandResult r = ws.execute_command(command, options);
  if (r.timeout_occurred) {
    std::fprintf(stderr, "%s: timed out\n", program);
    return exit_timed_out;
  }
  return r.exit_code >= 0 && r.exit_code <= 255 ? r.exit_code : exit_cli_failed;
}

int transfer(workspace::AnyWorkspace& ws, const Arguments& a) {
  const bool upload = a.action == "upload";
  const bool always = a.progress.value_or(false);
  const bool shown = a.progress.value_or(::isatty(2) == 1);
  std::optional<ProgressBar> bar;
  workspace::TransferOptions options;
  if (shown) {
    bar.emplace(always, upload ? "upload" : "download");
    options.on_progress = [&](std::uint64_t done, std::optional<std::uint64_t> total) {
      return bar->update(done, total);
    };
  }
  const auto& from = a.operands[0];
  const auto& to = a.operands[1];
  const auto r = upload ? ws.file_upload(from, to, options) : ws.file_download(from, to, options);
  if (bar) bar->finish(r.success);
  if (!r.success) {
    // The error already names the operation and the path.
    std::string why = r.error.value_or(a.action + " " + from + " -> " + to + ": failed");
    std::replace(why.begin(), why.end(), '\n', ' ');
    std::fprintf(stderr, "%s: %s\n", program, why.c_str());
    return exit_transfer_failed;
  }
  return 0;
}

// Removes kept containers, runtimes (by the session id --keep printed) or sandboxes.
int remove(const Arguments& a) {
  using M = workspace::WorkspaceMode;
  for (const auto& id : a.operands) {
    if (a.config.mode == M::docker) workspace::DockerWorkspace::remove(id, a.config.docker_options().engine);
    else if (a.config.mode == M::daytona) workspace::DaytonaWorkspace::remove(id, a.config.daytona_options());
    else workspace::APIRemoteWorkspace::remove(id, a.config.api_remote_options());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments a;
  try {
    a = parse(argc, argv);
  } catch (const UsageError& e) {
    fail(e.message + " (see --help)");
  } catch (const std::exception& e) {
    fail(e.what());  // a bad WORKSPACE_* variable
  }

  // Before any thread starts, so that every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  {
    std::lock_guard lock(interrupt.mutex);
    interrupt.config = a.config;
  }
  std::thread(watch_signals, set).detach();

  int status = exit_cli_failed;
  if (a.action == "rm") {
    try {
      return remove(a);
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }
  try {
    workspace::AnyWorkspace ws(a.config);
    if (ws.can_attach() && a.config.attach_to.empty()) {
      std::lock_guard lock(interrupt.mutex);
      interrupt.created_id = ws.id();
    }
    // A signal during the set-up found nothing to remove yet: skip the work, and let the
    // destructor remove what was made.
    if (interrupt.signal == 0) status = a.action == "run" ? run(ws, a) : transfer(ws, a);
    if (a.config.keep && ws.can_attach() && a.config.attach_to.empty()) {
      // What --attach takes: a runtime is attached to by its session.
      std::string handle = ws.id();
      if (const auto* runtime = ws.get_if<workspace::APIRemoteWorkspace>()) handle = runtime->session_id();
      std::fprintf(stderr, "%s: kept %s %s\n", program, std::string(workspace::to_string(ws.mode())).c_str(),
                   handle.c_str());
    }
  } catch (const std::exception& e) {
    if (interrupt.signal != 0) status = 128 + interrupt.signal;
    else fail(e.what());
  }
  if (interrupt.signal != 0) {
    interrupt.wait_for_cleanup();
    status = 128 + interrupt.signal;
  }
  std::fflush(stdout);
  return status;
}
