// Execs the workspace runs for itself: one run to its end for a little housekeeping (resolving a
// user, handing a folder over), and the token killer.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/docker/detail/demux.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
namespace docker::detail {

// Runs `argv` in container `id` as `user` (empty: the container's): the exit code, and stdout
// with stderr after it. Bounded by 30 s.
template <class Engine>
std::pair<int, std::string> run_to_end(Engine& engine, const std::string& id, const nlohmann::json& argv,
                                       const std::string& user) {
  nlohmann::json config = {{"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true},
                           {"Tty", false}, {"Cmd", argv}, {"WorkingDir", "/"}};
  if (!user.empty()) config["User"] = user;
  const Deadline deadline = Deadline::after(std::chrono::seconds(30));
  const std::string exec_id = engine.exec_create(id, config, deadline);
  auto stream = engine.exec_start(exec_id, deadline);
  std::string out, err;
  Demultiplexer demux;
  char buffer[4096];
  for (;;) {
    std::error_code ec;
    const std::size_t n = stream.read_some(buffer, sizeof buffer, deadline.when(), ec);
    if (ec) throw Error(errc::connection_failed, "docker exec: reading the output: " + ec.message());
    if (n == 0) break;
    demux.feed(std::string_view(buffer, n), [&](Demultiplexer::Stream s, std::string_view data) {
      (s == Demultiplexer::Stream::std_out ? out : err).append(data);
    });
  }
  stream.close();
  for (auto wait = std::chrono::milliseconds(1);; wait = std::min(wait * 2, std::chrono::milliseconds(100))) {
    const auto info = engine.exec_inspect(exec_id, deadline);
    if (!info.value("Running", false) && info.contains("ExitCode") && info["ExitCode"].is_number_integer())
      return {info["ExitCode"].template get<int>(), out + err};
    if (deadline.passed()) throw Error(errc::timed_out, "docker exec: the daemon never reported an exit code");
    std::this_thread::sleep_for(wait);
  }
}

// Kills, as root, every process in the container that carries `token` (shell/killer.hpp), and
// waits up to 10 s for the killer to finish.
template <class Engine>
void kill_by_token(Engine& engine, const std::string& id, const std::string& token) {
  nlohmann::json config = {{"AttachStdin", false}, {"AttachStdout", true}, {"AttachStderr", true},
                           {"Tty", false}, {"User", "0"},
                           {"Cmd", {"/bin/sh", "-c", shell::exec_killer, "workspace-kill", token}}};
  const Deadline deadline = Deadline::after(std::chrono::seconds(10));
  const std::string exec_id = engine.exec_create(id, config, deadline);
  auto stream = engine.exec_start(exec_id, deadline);
  char sink[4096];
  for (;;) {
    std::error_code ec;
    if (stream.read_some(sink, sizeof sink, deadline.when(), ec) == 0 || ec) break;
  }
}

}  // namespace docker::detail
WORKSPACE_NAMESPACE_END
