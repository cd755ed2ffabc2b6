// One command on a shell the back end does not own, from start to result: the runner
// (shell/runner.hpp) is started through a Channel, its output followed until its last line, the
// spool files read while it runs (when the caller streams) and after it (when the output was too
// big to come inline), and everything it left removed. The back ends differ only in their
// channel: the agent server's REST and websocket API, a Daytona session and the toolbox.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/shell/output.hpp>
#include <workspace/shell/runner.hpp>
#include <workspace/version.hpp>

#include <asio/error.hpp>
#include <asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace shell {

// Receives the runner's own output (its last line) as the channel gets it.
using RunnerSink = std::function<void(std::string_view)>;
// Receives bytes of a file at `offset`.
using FileSink = std::function<void(std::uint64_t offset, std::string_view bytes)>;

// How a back end runs the runner and reads what it left, as coroutines on the caller's executor
// (the blocking API runs them on the calling thread). Every call that can wait is bounded by
// `deadline` (the command's); none may outlive it.
//   start(line, sink, deadline)      starts `line` with /bin/sh; the runner's output goes to sink
//   follow(until, deadline) -> bool  waits until `until` for news; true once the line ended
//   read(path, from, sink, live, deadline)
//                                    the file from byte `from` (or from 0, sink gets offsets);
//                                    `live`: the command may still be writing it
//   spawn(line)                      runs `line` without waiting for its end (cleanup): never
//                                    throws
//   finish()                         the command's own resources (a socket, a session): never
//                                    throws
//   failure() -> string              the server's words when the runner could not be started
//   where() -> string                "on http://host" or "in sandbox X", for messages
//   name() -> string_view            the back end's one name in messages ("agent server")
template <class C>
concept Channel = requires(C& c, const C& cc, const std::string& line, RunnerSink runner, FileSink file,
                           Deadline deadline, Deadline::time_point until, std::uint64_t from) {
  { c.start(line, runner, deadline) } -> std::same_as<Task<void>>;
  { c.follow(until, deadline) } -> std::same_as<Task<bool>>;
  { c.read(line, from, file, true, deadline) } -> std::same_as<Task<void>>;
  { c.spawn(line) } -> std::same_as<Task<void>>;
  { c.finish() } -> std::same_as<Task<void>>;
  { cc.failure() } -> std::convertible_to<std::string>;
  { cc.where() } -> std::convertible_to<std::string>;
  { cc.name() } -> std::convertible_to<std::string_view>;
};

// What a back end tells the loop besides the command and its options.
struct CommandSettings {
  std::string cwd;                 // absolute
  bool cwd_is_working_dir = true;  // then the runner makes it when it is missing
  std::string spool_dir = "/tmp";  // on the server's machine
  std::uint64_t inline_output_limit = 256 * 1024;
  bool new_session = false;        // see RunnerArgs
  // With an output callback, the spool files are read this often while the command runs, the
  // first time after `first_stream`.
  std::chrono::milliseconds first_stream{50};
  std::chrono::milliseconds stream_interval{100};
  // How long after the command's timeout the loop still waits for the runner's own result (its
  // watchdog acts at the timeout) before it gives up, kills and reports the timeout itself.
  std::chrono::milliseconds result_wait{5000};
};

namespace detail {

// The spool files of one command, read into its result.
template <Channel C>
Task<void> read_spool(C& channel, const std::string& spool, ResultBuilder& result, bool to_end, Deadline deadline) {
  for (const OutputStream s : {OutputStream::std_out, OutputStream::std_err}) {
    const std::string path = spool + (s == OutputStream::std_out ? ".o" : ".e");
    const std::uint64_t from = result.taken(s);
    FileSink sink = [&result, s](std::uint64_t offset, std::string_view bytes) { result.take(s, offset, bytes); };
    std::exception_ptr failure;
    try {
      co_await channel.read(path, from, sink, !to_end, deadline);
    } catch (const Error& e) {
      // While the command runs a read may find no file yet, or race its growth: the next read
      // resumes where this one stopped.
      if (to_end || e.code() == errc::authentication_failed) failure = std::current_exception();
    }
    if (failure) std::rethrow_exception(failure);
  }
}

}  // namespace detail

// Runs `command` through `channel`. Arguments are validated by the caller. A cancellation
// through the awaiting operation's slot ends the command as a timeout would (every process of
// it killed by its token) and completes with operation_aborted.
template <Channel C>
Task<CommandResult> run_command(C& channel, std::string command, CommandOptions options, CommandSettings settings) {
  const std::string token = random_token();
  const std::string spool = settings.spool_dir + "/.workspace-run-" + token;
  ResultBuilder result(command, options.on_output);
  RunnerOutput output([&](OutputStream s, std::uint64_t offset, std::string_view bytes) { result.take(s, offset, bytes); });
  const auto started = Deadline::clock::now();
  // Every call the command makes ends by this: the timeout, and the wait for the runner's result.
  const Deadline deadline = Deadline::after(options.timeout).plus(settings.result_wait);

  RunnerArgs args;
  args.spool = spool;
  args.cwd = settings.cwd;
  args.timeout = options.timeout;
  args.inline_limit = static_cast<long long>(settings.inline_output_limit);
  args.token = token;
  args.command = command;
  args.environment = &options.env;
  args.keep_spool_seconds = options.on_output ? 10 : 0;  // a live reader may still be reading
  args.new_session = settings.new_session;
  args.make_cwd = settings.cwd_is_working_dir;
  const std::string line = runner_command(args);

  // What the loop ends with: the runner's last line, or nothing (it outlived every deadline, or
  // never printed it), or a failure.
  std::optional<RunnerTrailer> trailer;
  bool abandoned = false;
  std::exception_ptr failure;
  try {
    bool ended = false;
    RunnerSink sink = [&output](std::string_view text) { output.feed(text); };
    co_await channel.start(line, sink, deadline);
    auto next_stream = started + settings.first_stream;
    while (!ended) {
      if (deadline.passed()) break;
      auto until = deadline.when();
      if (options.on_output) until = std::min(until, next_stream);
      ended = co_await channel.follow(until, deadline);
      if (!ended && options.on_output && Deadline::clock::now() >= next_stream) {
        co_await detail::read_spool(channel, spool, result, false, deadline);
        next_stream = Deadline::clock::now() + settings.stream_interval;
      }
    }
    trailer = output.trailer();
    abandoned = !trailer;
    if (abandoned && ended) {
      // The runner did not finish its line: it never started, or the server's own timeout killed
      // it (the runner's watchdog should have acted first).
      if (const std::string why = channel.failure(); !why.empty())
        throw Error(errc::spawn_failed, std::string(channel.name()) + " could not run the command: " + why);
    }
    if (trailer) {
      switch (trailer->mode) {
        case 'c':
          throw Error(errc::not_found, "execute_command: cwd " + workspace::detail::quote(settings.cwd) +
                                           " does not exist " + channel.where());
        case 'd':
          throw Error(errc::io_error, std::string(channel.name()) + ": cannot write the spool files " +
                                          workspace::detail::quote(spool) + ".*");
        case 'f':
          co_await detail::read_spool(channel, spool, result, true, deadline);
          co_await channel.spawn(cleanup_command(spool, token, false));
          break;
        default:
          break;
      }
    }
  } catch (...) {
    failure = std::current_exception();
  }

  if (abandoned && !failure) {
    // The command outlived every deadline: kill it, keep what it wrote.
    try {
      co_await detail::read_spool(channel, spool, result, false, deadline);
    } catch (const Error& e) {
      if (e.code() == errc::authentication_failed) failure = std::current_exception();
    }
  }
  if (failure) {
    // A cancellation (or an output callback that threw) ends the command as a timeout does:
    // every process of it is killed, whatever the caller's slot says from now on.
    const bool by_cancel = workspace::detail::cancelled(co_await asio::this_coro::cancellation_state);
    co_await asio::this_coro::reset_cancellation_state();
    co_await channel.spawn(cleanup_command(spool, token, true));
    co_await channel.finish();
    if (by_cancel) throw Error(asio::error::operation_aborted, "execute_command: cancelled");
    try {
      std::rethrow_exception(failure);
    } catch (const Error& e) {
      // Protocol faults of the runner's output say which back end they came from.
      if (e.code() == errc::protocol_error && std::string_view(e.what()).find(channel.name()) == std::string_view::npos)
        throw Error(errc::protocol_error, std::string(channel.name()) + ": " + workspace::detail::message_of(e));
      throw;
    }
  }
  if (abandoned) {
    co_await channel.spawn(cleanup_command(spool, token, true));
    co_await channel.finish();
    co_return std::move(result).timed_out();
  }
  co_await channel.finish();
  co_return std::move(result).finish(*trailer);
}

}  // namespace shell
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
