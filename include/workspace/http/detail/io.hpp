// Asynchronous I/O with deadlines for the client's coroutines. A deadline closes the stream,
// which ends the pending operation with an error (Beast's timeout model): one timer per
// connection (a Watchdog) bounds a whole exchange and every wait in it, and is re-armed lazily,
// so a read or a write costs no timer call of its own.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
namespace http::detail {

using Clock = Deadline::clock;
inline constexpr Clock::time_point no_deadline = Deadline::none().when();

// `d` from now; no_timeout is none.
inline Clock::time_point deadline_after(std::chrono::milliseconds d) noexcept { return Deadline::after(d).when(); }

inline Clock::time_point earliest(Clock::time_point a, Clock::time_point b) noexcept {
  return a < b ? a : b;
}

// Closes what it guards when a deadline passes or a wait makes no progress for `idle`.
class Watchdog {
 public:
  explicit Watchdog(const asio::any_io_executor& executor) : shared_(std::make_shared<Shared>(executor)) {}
  Watchdog(Watchdog&&) noexcept = default;
  Watchdog& operator=(Watchdog&&) noexcept = default;
  ~Watchdog() { disarm(); }

  // From now on: `close` runs at `deadline`, or once `idle` passes without progress().
  void arm(std::function<void()> close, Clock::time_point deadline, std::chrono::milliseconds idle = no_timeout) {
    auto& s = *shared_;
    ++s.generation;
    s.close = std::move(close);
    s.deadline = deadline;
    s.idle = idle;
    s.last = Clock::now();
    s.fired = false;
    schedule(shared_);
  }
  void progress() noexcept {
    if (shared_) shared_->last = Clock::now();
  }
  // Stops guarding; safe to call when not armed.
  void disarm() noexcept {
    if (!shared_ || !shared_->close) return;
    ++shared_->generation;
    shared_->close = nullptr;
    shared_->timer.cancel();
  }
  // Whether it closed what it guarded, and whether for the deadline (else for idleness).
  bool fired() const noexcept { return shared_ && shared_->fired; }
  bool deadline_passed() const noexcept { return shared_ && Clock::now() >= shared_->deadline; }

 private:
  struct Shared {
    explicit Shared(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::function<void()> close;
    Clock::time_point deadline = no_deadline;
    Clock::time_point last{};
    std::chrono::milliseconds idle = no_timeout;
    unsigned generation = 0;
    bool fired = false;
  };

  static Clock::time_point next_check(const Shared& s) {
    if (s.idle == no_timeout) return s.deadline;
    return earliest(s.deadline, s.last + s.idle);
  }

  static void schedule(const std::shared_ptr<Shared>& shared) {
    const auto when = next_check(*shared);
    if (when == no_deadline) return;
    shared->timer.expires_at(when);
    shared->timer.async_wait([weak = std::weak_ptr<Shared>(shared), generation = shared->generation](std::error_code ec) {
      if (ec) return;
      const auto s = weak.lock();
      if (!s || s->generation != generation || !s->close) return;
      const auto now = Clock::now();
      if (now >= s->deadline || (s->idle != no_timeout && now - s->last >= s->idle)) {
        s->fired = true;
        auto close = std::move(s->close);
        s->close = nullptr;
        close();
        return;
      }
      schedule(s);
    });
  }

  std::shared_ptr<Shared> shared_;
};

// Runs the awaitable `op` with `close` called at `deadline` (connects, handshakes, tunnels):
// true when the deadline ended it.
template <class Op>
Task<bool> bounded(Op op, std::function<void()> close, Clock::time_point deadline) {
  Watchdog watchdog(co_await asio::this_coro::executor);
  watchdog.arm(std::move(close), deadline);
  co_await std::move(op);
  watchdog.disarm();
  co_return watchdog.fired();
}

// Asio's sockets are not close-on-exec; ours are, atomically, so a LocalWorkspace spawning in
// another thread never inherits a connection.
template <class Socket, class Protocol>
void open_cloexec(Socket& socket, const Protocol& protocol) {
  const int fd = ::socket(protocol.family(), SOCK_STREAM | SOCK_CLOEXEC, protocol.protocol());
  if (fd < 0) throw Error(std::error_code(errno, std::system_category()), "socket()");
  std::error_code ec;
  socket.assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    throw Error(ec, "socket()");
  }
}

// A plain socket as a stream the client can use.
template <class Socket>
class PlainStream {
 public:
  explicit PlainStream(Socket socket) : socket_(std::move(socket)) {}

  template <class Buffers, class Handler>
  auto async_read_some(const Buffers& buffers, Handler&& handler) {
    return socket_.async_read_some(buffers, std::forward<Handler>(handler));
  }
  template <class Buffers, class Handler>
  auto async_write_some(const Buffers& buffers, Handler&& handler) {
    return socket_.async_write_some(buffers, std::forward<Handler>(handler));
  }
  // Waits until the socket is readable (non-destructive).
  template <class Handler>
  auto async_wait_readable(Handler&& handler) {
    return socket_.async_wait(Socket::wait_read, std::forward<Handler>(handler));
  }

  using executor_type = typename Socket::executor_type;
  executor_type get_executor() { return socket_.get_executor(); }

  void close() noexcept {
    std::error_code ignored;
    socket_.close(ignored);
  }
  // Half-close: the peer sees the end of our data and may still answer.
  void shutdown_send() noexcept {
    std::error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
  }
  int native_handle() { return socket_.native_handle(); }
  bool has_buffered() const noexcept { return false; }
  Socket& socket() noexcept { return socket_; }

 private:
  Socket socket_;
};

}  // namespace http::detail
WORKSPACE_NAMESPACE_END
