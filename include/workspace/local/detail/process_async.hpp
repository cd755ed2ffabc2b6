// The same run as run_shell_command (process.hpp), waiting through an executor instead of poll():
// the pipes and the pidfd are watched by the executor's reactor, the phases' ends are a timer on
// it, and the thread is free between. The spawn, the phases and the reaping are process.hpp's.
//
// Each descriptor's wait completes into a small shared state and cancels one "wake" timer, which
// the coroutine awaits with the current phase's end as its expiry: one suspension per round,
// whichever of (output, exit, time) comes first. A cancellation through the operation's slot
// ends the running phase at once, so the group is killed exactly as on a timeout, and the
// operation then completes with operation_aborted.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/local/detail/process.hpp>
#include <workspace/version.hpp>

#include <asio/error.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <poll.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace detail {

class ShellWatch {
 public:
  explicit ShellWatch(const asio::any_io_executor& executor) : state_(std::make_shared<State>(executor)) {}
  ShellWatch(const ShellWatch&) = delete;
  ShellWatch& operator=(const ShellWatch&) = delete;
  // The descriptors stay the run's: they are released, not closed, and no wait outlives this.
  ~ShellWatch() {
    for (auto& w : state_->watched) {
      if (!w.descriptor) continue;
      w.descriptor->cancel();
      w.descriptor->release();
    }
  }

  enum Slot { out = 0, err = 1, exit = 2 };

  // Watches `fd` in `slot` from now on (-1: nothing there).
  void watch(Slot slot, int fd) {
    if (fd < 0) return;
    state_->watched[slot].descriptor.emplace(state_->wake.get_executor(), fd);
  }
  // Stops watching `slot`: its descriptor was closed by the run (end of file).
  void forget(Slot slot) {
    auto& w = state_->watched[slot];
    if (!w.descriptor) return;
    w.descriptor->cancel();
    w.descriptor->release();
    w.descriptor.reset();
    w.ready = false;
  }
  bool watching(Slot slot) const noexcept { return state_->watched[slot].descriptor.has_value(); }

  // Waits until one watched descriptor is readable or `until` passes; returns whether a slot is
  // ready. Throws (operation_aborted) when the operation was cancelled meanwhile.
  Task<void> wait(std::chrono::steady_clock::time_point until) {
    auto& s = *state_;
    for (int i = 0; i < 3; ++i) arm(static_cast<Slot>(i));
    if (any_ready()) co_return;
    s.wake.expires_at(until);
    auto [ec] = co_await s.wake.async_wait(compat::as_tuple(asio::use_awaitable));
    (void)ec;  // expired, or cancelled by a ready descriptor (or by the operation's slot)
  }

  // Counts `slot` as readable (what a read left behind), without waiting for the reactor.
  void mark(Slot slot) noexcept { state_->watched[slot].ready = true; }

  // Whether `slot` became readable since the last take(slot).
  bool take(Slot slot) noexcept {
    auto& w = state_->watched[slot];
    const bool ready = w.ready;
    w.ready = false;
    return ready;
  }

 private:
  struct Watched {
    std::optional<asio::posix::stream_descriptor> descriptor;
    bool pending = false;
    bool ready = false;
  };
  struct State {
    explicit State(const asio::any_io_executor& ex) : wake(ex) {}
    asio::steady_timer wake;
    Watched watched[3];
  };

  bool any_ready() const noexcept {
    for (const auto& w : state_->watched)
      if (w.ready) return true;
    return false;
  }

  void arm(Slot slot) {
    auto& w = state_->watched[slot];
    if (!w.descriptor || w.pending || w.ready) return;
    w.pending = true;
    w.descriptor->async_wait(asio::posix::descriptor_base::wait_read,
                             [weak = std::weak_ptr<State>(state_), slot](std::error_code ec) {
                               const auto s = weak.lock();
                               if (!s) return;
                               auto& watched = s->watched[slot];
                               watched.pending = false;
                               if (ec == asio::error::operation_aborted) return;
                               watched.ready = true;
                               s->wake.cancel();
                             });
  }

  std::shared_ptr<State> state_;
};

// run_shell_command on the coroutine's executor.
inline Task<CommandResult> co_run_shell_command(std::string command, std::string cwd, CommandOptions options,
                                                ProcessTimings timings) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto run = spawn_shell(command, cwd, options);
  OutputPipe& out = run->out;
  OutputPipe& err = run->err;
  ChildGroup& child = *run->child;
  ShellPhases phases(start, options.timeout, timings);
  // The executor's reactor watches the pidfd; without one (kernel < 5.3) the exit is polled.
  const bool has_pidfd = child.pidfd() >= 0;
  bool cancelled = false;

  constexpr std::size_t buffer_size = 64 * 1024;
  std::unique_ptr<char[]> buffer(new char[buffer_size]);
  {
    ShellWatch watch(co_await asio::this_coro::executor);
    watch.watch(ShellWatch::out, out.fd.get());
    watch.watch(ShellWatch::err, err.fd.get());
    watch.watch(ShellWatch::exit, child.pidfd());
    const auto read = [&](ShellWatch::Slot slot, OutputPipe& pipe) {
      if (!watch.take(slot)) return;
      read_available(pipe, buffer.get(), buffer_size, options);
      if (!pipe.fd) {
        watch.forget(slot);
        return;
      }
      // A read that stopped at its budget left bytes that no new edge will announce.
      pollfd probe{pipe.fd.get(), POLLIN, 0};
      if (::poll(&probe, 1, 0) > 0) watch.mark(slot);
    };
    for (;;) {
      if (phases.exited() && !out.fd && !err.fd) break;
      auto now = Clock::now();
      if (now >= phases.until()) {
        if (phases.on_time(child, run->result, now)) continue;
        break;
      }
      auto until = phases.until();
      if (!phases.exited() && !has_pidfd) until = std::min(until, now + std::chrono::milliseconds(5));
      std::exception_ptr failure;
      try {
        co_await watch.wait(until);
      } catch (...) {
        failure = std::current_exception();
      }
      if (failure || workspace::detail::cancelled(co_await asio::this_coro::cancellation_state)) {
        // Cancelled: from here on the run ends as a timeout does, then reports the cancellation.
        co_await asio::this_coro::reset_cancellation_state();
        cancelled = true;
        phases.expire(Clock::now());
        continue;
      }
      // An output callback that throws unwinds through here: ChildGroup's destructor kills the
      // group and reaps it, and the watch releases the descriptors before the run closes them.
      read(ShellWatch::out, out);
      read(ShellWatch::err, err);
      const bool exit_ready = watch.take(ShellWatch::exit);
      if (!phases.exited() && (exit_ready || !has_pidfd) && child.has_exited()) {
        watch.forget(ShellWatch::exit);
        phases.on_exit(Clock::now());
      }
    }
  }
  CommandResult result = finish_shell(*run, phases);
  if (cancelled) throw Error(asio::error::operation_aborted, "execute_command: cancelled");
  co_return result;
}

}  // namespace detail
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
