// One command on a shell the back end does not own, from start to result: the runner
// (shell/runner.hpp) is started through a Channel, its output followed until its last line, the
// spool files read while it runs (when the caller streams) and after it (when the output was too
// big to come inline), and everything it left removed. The back ends differ only in their
// channel: the agent server's REST and websocket API, a Daytona session and the toolbox.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/shell/output.hpp>
#include <workspace/shell/runner.hpp>
#include <workspace/version.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace shell {

// Receives the runner's own output (its last line) as the channel gets it.
using RunnerSink = std::function<void(std::string_view)>;
// Receives bytes of a file at `offset`.
using FileSink = std::function<void(std::uint64_t offset, std::string_view bytes)>;

// How a back end runs the runner and reads what it left. Every call that can wait is bounded by
// `deadline` (the command's); none may outlive it.
//   start(line, sink, deadline)      starts `line` with /bin/sh; the runner's output goes to sink
//   follow(until, deadline) -> bool  waits until `until` for news; true once the line ended
//   read(path, from, sink, live, deadline)
//                                    the file from byte `from` (or from 0, sink gets offsets);
//                                    `live`: the command may still be writing it
//   spawn(line)                      runs `line` and does not wait (cleanup): never throws
//   finish()                         the command's own resources (a socket, a session): never
//                                    throws
//   failure() -> string              the server's words when the runner could not be started
//   where() -> string                "on http://host" or "in sandbox X", for messages
//   name() -> string_view            the back end's one name in messages ("agent server")
template <class C>
concept Channel = requires(C& c, const C& cc, const std::string& line, RunnerSink runner, FileSink file,
                           Deadline deadline, Deadline::time_point until, std::uint64_t from) {
  { c.start(line, runner, deadline) } -> std::same_as<void>;
  { c.follow(until, deadline) } -> std::same_as<bool>;
  { c.read(line, from, file, true, deadline) } -> std::same_as<void>;
  { c.spawn(line) } -> std::same_as<void>;
  { c.finish() } -> std::same_as<void>;
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

// Runs `command` through `channel`. Arguments are validated by the caller.
template <Channel C>
CommandResult run_command(C& channel, const std::string& command, const CommandOptions& options,
                          const CommandSettings& settings) {
  const std::string token = random_token();
  const std::string spool = settings.spool_dir + "/.workspace-run-" + token;
  ResultBuilder result(command, options.on_output);
  RunnerOutput output([&](OutputStream s, std::uint64_t offset, std::string_view bytes) { result.take(s, offset, bytes); });
  const auto started = Deadline::clock::now();
  // Every call the command makes ends by this: the timeout, and the wait for the runner's result.
  const Deadline deadline = Deadline::after(options.timeout).plus(settings.result_wait);

  const auto cleanup = [&](bool kill) { channel.spawn(cleanup_command(spool, token, kill)); };
  const auto read_spool = [&](bool to_end) {
    for (const OutputStream s : {OutputStream::std_out, OutputStream::std_err}) {
      try {
        channel.read(spool + (s == OutputStream::std_out ? ".o" : ".e"), result.taken(s),
                     [&](std::uint64_t offset, std::string_view bytes) { result.take(s, offset, bytes); }, !to_end,
                     deadline);
      } catch (const Error& e) {
        // While the command runs a read may find no file yet, or race its growth: the next read
        // resumes where this one stopped.
        if (to_end || e.code() == errc::authentication_failed) throw;
      }
    }
  };
  // The command outlived every deadline: kill it, keep what it wrote.
  const auto abandon = [&] {
    try {
      read_spool(false);
    } catch (const Error& e) {
      if (e.code() == errc::authentication_failed) throw;
    }
    cleanup(true);
    channel.finish();
    return std::move(result).timed_out();
  };

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
  try {
    channel.start(runner_command(args), [&](std::string_view text) { output.feed(text); }, deadline);
    auto next_stream = started + settings.first_stream;
    for (bool ended = false; !ended;) {
      if (deadline.passed()) return abandon();
      auto until = deadline.when();
      if (options.on_output) until = std::min(until, next_stream);
      ended = channel.follow(until, deadline);
      if (!ended && options.on_output && Deadline::clock::now() >= next_stream) {
        read_spool(false);
        next_stream = Deadline::clock::now() + settings.stream_interval;
      }
    }
    const auto trailer = output.trailer();
    if (!trailer) {
      // The runner did not finish its line: it never started, or the server's own timeout killed
      // it (the runner's watchdog should have acted first).
      if (const std::string why = channel.failure(); !why.empty())
        throw Error(errc::spawn_failed, std::string(channel.name()) + " could not run the command: " + why);
      return abandon();
    }
    switch (trailer->mode) {
      case 'c':
        throw Error(errc::not_found, "execute_command: cwd " + workspace::detail::quote(settings.cwd) +
                                         " does not exist " + channel.where());
      case 'd':
        throw Error(errc::io_error, std::string(channel.name()) + ": cannot write the spool files " +
                                        workspace::detail::quote(spool) + ".*");
      case 'f':
        read_spool(true);
        cleanup(false);
        break;
      default:
        break;
    }
    channel.finish();
    return std::move(result).finish(*trailer);
  } catch (const Error& e) {
    cleanup(true);
    channel.finish();
    // Protocol faults of the runner's output say which back end they came from.
    if (e.code() == errc::protocol_error && std::string_view(e.what()).find(channel.name()) == std::string_view::npos)
      throw Error(errc::protocol_error, std::string(channel.name()) + ": " + workspace::detail::message_of(e));
    throw;
  } catch (...) {
    cleanup(true);
    channel.finish();
    throw;
  }
}

}  // namespace shell
WORKSPACE_NAMESPACE_END
