// The shell::Channel of DaytonaWorkspace: each command gets a session of its own (sessions run
// their commands one after another, and calls on one workspace may run at once); the runner runs
// there as an asynchronous session command whose completion is polled and whose last line is
// read from its logs. The session is deleted when the command ends. Its calls are coroutines on
// the executor of the command's operation.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/daytona/api.hpp>
#include <workspace/http/message.hpp>
#include <workspace/shell/command.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace daytona::detail {

template <class Toolbox>
class Channel {
 public:
  Channel(Toolbox& toolbox, std::string sandbox_id, std::chrono::milliseconds max_poll_interval)
      : toolbox_(toolbox), sandbox_(std::move(sandbox_id)), max_poll_interval_(max_poll_interval),
        session_("workspace-" + shell::random_token()) {}

  Task<void> start(const std::string& line, shell::RunnerSink sink, Deadline deadline) {
    sink_ = std::move(sink);
    co_await toolbox_.co_create_session(session_, deadline);
    have_session_ = true;
    // A child shell: the session's own shell must not run our `set --` or `exit`.
    command_ = co_await toolbox_.co_session_exec(session_, "/bin/sh -c " + shell::shell_quote(line), deadline);
  }

  Task<bool> follow(Deadline::time_point until, Deadline deadline) {
    if (ended_) co_return true;
    const auto exit = co_await toolbox_.co_session_command_exit(session_, command_, deadline);
    if (exit) {
      const std::string logs = co_await toolbox_.co_session_command_logs(session_, command_, deadline);
      sink_(logs);
      ended_ = true;
      co_return true;
    }
    const auto left = until - Deadline::clock::now();
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::min<Deadline::clock::duration>(wait_, std::max<Deadline::clock::duration>(left, {})));
    co_await timer.async_wait(asio::use_awaitable);
    wait_ = std::min(wait_ * 2, max_poll_interval_);
    co_return false;
  }

  // The toolbox has no ranges: each read takes the whole file, and the caller skips what it had.
  Task<void> read(const std::string& path, std::uint64_t, const shell::FileSink& sink, bool live, Deadline deadline) {
    std::uint64_t offset = 0;
    http::RequestOptions o;
    o.deadline = deadline;
    if (live) o.idle_timeout = std::chrono::seconds(5);
    o.on_body = [&](std::string_view data) {
      sink(offset, data);
      offset += data.size();
      return true;
    };
    co_await toolbox_.co_download(path, std::move(o));
  }

  Task<void> spawn(const std::string& line) {
    try {
      co_await toolbox_.co_execute(line, 30);
    } catch (...) {
    }
  }

  Task<void> finish() {
    if (!have_session_) co_return;
    have_session_ = false;
    try {
      co_await toolbox_.co_delete_session(session_);
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
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
