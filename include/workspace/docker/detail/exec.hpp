// Execs the workspace runs for itself: one run to its end for a little housekeeping (resolving a
// user, handing a folder over), and the token killer.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/docker/detail/demux.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace docker::detail {

// Waits `d` on the coroutine's executor.
inline Task<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

// The exit code of a finished exec; the daemon records it a little after the stream ends (null
// means "not yet"), so it is asked again, more slowly each time, until `deadline`.
template <class Engine>
Task<int> exit_code(Engine& engine, std::string exec_id, Deadline deadline) {
  for (auto wait = std::chrono::milliseconds(1);; wait = std::min(wait * 2, std::chrono::milliseconds(100))) {
    const auto info = co_await engine.co_exec_inspect(exec_id, deadline);
    if (!info.value("Running", false) && info.contains("ExitCode") && info["ExitCode"].is_number_integer())
      co_return info["ExitCode"].template get<int>();
    if (deadline.passed()) throw Error(errc::timed_out, "docker exec: the daemon never reported an exit code");
    co_await sleep_for(wait);
  }
}

// Runs `argv` in container `id` as `user` (empty: the container's): the exit code, and stdout
// with stderr after it. Bounded by 30 s.
template <class Engine>
Task<std::pair<int, std::string>> run_to_end(Engine& engine, std::string id, nlohmann::json argv, std::string user) {
  nlohmann::json config = {{"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true},
                           {"Tty", false}, {"Cmd", std::move(argv)}, {"WorkingDir", "/"}};
  if (!user.empty()) config["User"] = user;
  const Deadline deadline = Deadline::after(std::chrono::seconds(30));
  const std::string exec_id = co_await engine.co_exec_create(id, std::move(config), deadline);
  auto stream = co_await engine.co_exec_start(exec_id, deadline);
  std::string out, err;
  Demultiplexer demux;
  char buffer[4096];
  for (;;) {
    const std::size_t n = co_await stream.co_read_some(buffer, sizeof buffer, deadline.when());
    if (n == 0) break;
    demux.feed(std::string_view(buffer, n), [&](Demultiplexer::Stream s, std::string_view data) {
      (s == Demultiplexer::Stream::std_out ? out : err).append(data);
    });
  }
  stream.close();
  const int code = co_await exit_code(engine, exec_id, deadline);
  co_return std::pair<int, std::string>{code, out + err};
}

// Kills, as root, every process in the container that carries `token` (shell/killer.hpp), and
// waits up to 10 s for the killer to finish.
template <class Engine>
Task<void> kill_by_token(Engine& engine, std::string id, std::string token) {
  nlohmann::json config = {{"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true},
                           {"Tty", false}, {"User", "0"},
                           {"Cmd", {"/bin/sh", "-c", shell::exec_killer, "workspace-kill", token}}};
  const Deadline deadline = Deadline::after(std::chrono::seconds(10));
  const std::string exec_id = co_await engine.co_exec_create(id, std::move(config), deadline);
  auto stream = co_await engine.co_exec_start(exec_id, deadline);
  char sink[4096];
  try {
    for (;;) {
      const std::size_t n = co_await stream.co_read_some(sink, sizeof sink, deadline.when());
      if (n == 0) break;
    }
  } catch (const Error&) {
    // The killer's own output does not matter; its end (or the deadline) does.
  }
}

}  // namespace docker::detail
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
