// One command in a container, from exec to exit code: the output demultiplexed as it arrives,
// the exit code asked when the stream goes quiet (a background job may hold it open), and the
// whole process tree killed by its token on a timeout or a cancellation.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/docker/detail/demux.hpp>
#include <workspace/docker/detail/exec.hpp>
#include <workspace/docker/detail/exit_marker.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <asio/error.hpp>
#include <asio/this_coro.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace docker::detail {

// Runs the user's command in its cwd, or reports a missing cwd unambiguously, and ends with the
// command's status framed on stderr (exit_marker.hpp). It takes $1 = cwd, $2 = marker,
// $3 = command, $4 = the status frame's prefix. The command gets the exec's stderr back from
// fd 3 itself, so the wrapper's own stderr is /dev/null while it waits: a shell reports a child's
// signal death there ("Killed"), which is not the command's output.
inline constexpr const char* exec_wrapper =
    "cd -- \"$1\" 2>/dev/null || { printf '%s' \"$2\" >&2; exit 254; }; "
    "{ /bin/sh -c 'exec 2>&3 3>&-; exec /bin/sh -c \"$1\"' workspace-command \"$3\"; } 3>&2 2>/dev/null; "
    "c=$?; printf '%s%d\\001' \"$4\" \"$c\" >&2; exit \"$c\"";

struct CommandTarget {
  std::string container;                     // its id
  std::string cwd;                           // absolute
  std::string user;                          // empty: the container's
  std::chrono::milliseconds drain_after_kill;  // how long a killed command's output may drain
};

template <class Engine>
Task<CommandResult> run_command(Engine& engine, CommandTarget target, std::string command, CommandOptions options) {
  const std::string token = shell::random_token();
  const std::string marker = "\x01workspace: missing cwd " + token + "\x01";
  ExitMarker exit_marker("\x01workspace: exit " + shell::random_token() + " ");
  // The command's own deadline, and the one every call it makes ends by (with room for the kill
  // and the exit code after a timeout).
  const Deadline timeout = Deadline::after(options.timeout);
  const auto deadline = timeout.when();
  const Deadline calls = timeout.plus(target.drain_after_kill + std::chrono::seconds(10));

  nlohmann::json env = nlohmann::json::array({"WORKSPACE_EXEC_TOKEN=" + token});
  for (const auto& [k, v] : options.env) env.push_back(k + "=" + v);
  nlohmann::json config = {
      {"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true}, {"Tty", false},
      {"Cmd", {"/bin/sh", "-c", exec_wrapper, "workspace-exec", target.cwd, marker, command, exit_marker.prefix()}},
      {"Env", env}, {"WorkingDir", "/"}};
  if (!target.user.empty()) config["User"] = target.user;
  const std::string exec_id = co_await engine.co_exec_create(target.container, std::move(config), calls);
  auto stream = co_await engine.co_exec_start(exec_id, calls);

  CommandResult result;
  result.command = command;
  Demultiplexer demux;
  const auto to_stderr = [&](std::string_view data) {
    result.std_err.append(data);
    if (options.on_output) options.on_output(OutputStream::std_err, data);
  };
  const auto deliver = [&](Demultiplexer::Stream s, std::string_view data) {
    using S = Demultiplexer::Stream;
    if (s == S::system_error) throw Error(errc::bad_state, "docker exec: " + std::string(data));
    if (s == S::std_err) return exit_marker.feed(data, to_stderr);
    result.std_out.append(data);
    if (options.on_output) options.on_output(OutputStream::std_out, data);
  };

  std::vector<char> buffer(64 * 1024);
  bool timed_out = false;
  std::exception_ptr failure;
  try {
    // The status frame tells when the command has ended. The daemon is asked only when the stream
    // goes quiet for long, in case the wrapper itself was killed while something else holds the
    // output open; inspects of many running commands at once would load a busy daemon.
    constexpr auto first_quiet = std::chrono::milliseconds(1000);
    auto quiet = first_quiet;
    bool exited = false;  // the command's shell is gone; what remains is output held by others
    for (;;) {
      if (exit_marker.status()) exited = true;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        timed_out = true;
        break;
      }
      // Once the shell has exited, what it wrote may still be on its way through a busy daemon.
      const auto slice = exited ? now + std::chrono::milliseconds(200) : std::min(deadline, now + quiet);
      const bool readable = co_await stream.co_wait_readable(slice);
      if (!readable) {
        if (exited) break;  // drained
        if (std::chrono::steady_clock::now() >= deadline) continue;
        // Quiet: has the command ended while something else holds its output open?
        const auto info = co_await engine.co_exec_inspect(exec_id, calls);
        if (!info.value("Running", true)) exited = true;
        quiet = std::min(quiet * 2, std::chrono::milliseconds(4000));
        continue;
      }
      std::size_t n = 0;
      try {
        n = co_await stream.co_read_some(buffer.data(), buffer.size(), deadline);
      } catch (const Error& e) {
        if (e.code() != errc::timed_out) throw;
        timed_out = true;
        break;
      }
      if (n == 0) break;  // end of stream
      quiet = first_quiet;
      demux.feed(std::string_view(buffer.data(), n), deliver);
    }
  } catch (...) {
    failure = std::current_exception();
  }

  if (failure) {
    // A cancellation (or an output callback that threw) ends the command as a timeout does:
    // its whole tree is killed, whatever the caller's slot says from now on.
    const bool by_cancel = workspace::detail::cancelled(co_await asio::this_coro::cancellation_state);
    co_await asio::this_coro::reset_cancellation_state();
    stream.close();
    co_await kill_by_token(engine, target.container, token);
    if (by_cancel) throw Error(asio::error::operation_aborted, "execute_command: cancelled");
    std::rethrow_exception(failure);
  }

  if (timed_out) {
    co_await kill_by_token(engine, target.container, token);
    // The stream ends once the processes are gone; keep what they wrote.
    const auto until = std::chrono::steady_clock::now() + target.drain_after_kill;
    try {
      for (;;) {
        const std::size_t n = co_await stream.co_read_some(buffer.data(), buffer.size(), until);
        if (n == 0) break;
        demux.feed(std::string_view(buffer.data(), n), deliver);
      }
    } catch (const Error&) {
      // Drained as far as it would go.
    }
    stream.close();
    exit_marker.finish(to_stderr);
    result.timeout_occurred = true;
    result.exit_code = -1;
    co_return result;
  }
  stream.close();
  exit_marker.finish(to_stderr);

  // Without its frame (the wrapper was killed), the daemon knows the status.
  int code = exit_marker.status().value_or(-1);
  if (!exit_marker.status()) code = co_await exit_code(engine, exec_id, Deadline::after(std::chrono::seconds(5)));
  if (code == 254 && result.std_err.size() >= marker.size() &&
      result.std_err.compare(result.std_err.size() - marker.size(), marker.size(), marker) == 0)
    throw Error(errc::not_found, "execute_command: cwd " + workspace::detail::quote(target.cwd) +
                                     " does not exist in container " + target.container.substr(0, 12));
  result.exit_code = code;
  // Docker reports a signal death as 128 + signal, like a shell; exit codes in that range are
  // read as signals too (the Engine API cannot tell them apart).
  if (code > 128 && code < 128 + 65) result.signal = code - 128;
  co_return result;
}

}  // namespace docker::detail
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
