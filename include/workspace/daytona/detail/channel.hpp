// The shell::Channel of DaytonaWorkspace: each command gets a session of its own (sessions run
// their commands one after another, and calls on one workspace may run at once); the runner runs
// there as an asynchronous session command whose completion is polled and whose last line is
// read from its logs. The session is deleted when the command ends.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/daytona/api.hpp>
#include <workspace/http/message.hpp>
#include <workspace/shell/command.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

WORKSPACE_NAMESPACE_BEGIN
namespace daytona::detail {

template <class Toolbox>
class Channel {
 public:
  Channel(Toolbox& toolbox, std::string sandbox_id, std::chrono::milliseconds max_poll_interval)
      : toolbox_(toolbox), sandbox_(std::move(sandbox_id)), max_poll_interval_(max_poll_interval),
        session_("workspace-" + shell::random_token()) {}

  void start(const std::string& line, shell::RunnerSink sink, Deadline deadline) {
    sink_ = std::move(sink);
    toolbox_.create_session(session_, deadline);
    have_session_ = true;
    // A child shell: the session's own shell must not run our `set --` or `exit`.
    command_ = toolbox_.session_exec(session_, "/bin/sh -c " + shell::shell_quote(line), deadline);
  }

  bool follow(Deadline::time_point until, Deadline deadline) {
    if (ended_) return true;
    if (toolbox_.session_command_exit(session_, command_, deadline)) {
      sink_(toolbox_.session_command_logs(session_, command_, deadline));
      ended_ = true;
      return true;
    }
    const auto left = until - Deadline::clock::now();
    std::this_thread::sleep_for(std::min<Deadline::clock::duration>(wait_, std::max<Deadline::clock::duration>(left, {})));
    wait_ = std::min(wait_ * 2, max_poll_interval_);
    return false;
  }

  // The toolbox has no ranges: each read takes the whole file, and the caller skips what it had.
  void read(const std::string& path, std::uint64_t, const shell::FileSink& sink, bool live, Deadline deadline) {
    std::uint64_t offset = 0;
    http::RequestOptions o;
    o.deadline = deadline;
    if (live) o.idle_timeout = std::chrono::seconds(5);
    o.on_body = [&](std::string_view data) {
      sink(offset, data);
      offset += data.size();
      return true;
    };
    toolbox_.download(path, o);
  }

  void spawn(const std::string& line) noexcept {
    try {
      toolbox_.execute(line, 30);
    } catch (...) {
    }
  }

  void finish() noexcept {
    if (!have_session_) return;
    have_session_ = false;
    try {
      toolbox_.delete_session(session_);
    } catch (...) {
    }
  }

  std::string failure() const { return {}; }
  std::string where() const { return "in sandbox " + sandbox_; }
  std::string_view name() const noexcept { return "daytona"; }

 private:
  Toolbox& toolbox_;
  std::string sandbox_;
  std::chrono::milliseconds max_poll_interval_;
  std::string session_;
  std::string command_;
  shell::RunnerSink sink_;
  bool have_session_ = false;
  bool ended_ = false;
  std::chrono::milliseconds wait_{1};
};

}  // namespace daytona::detail
WORKSPACE_NAMESPACE_END
