// Blocking I/O with deadlines on top of Asio's asynchronous operations: each connection owns an
// io_context that runs only while its caller waits, and a deadline closes the stream, which ends
// the pending operation (Beast's timeout model). No threads, no signals.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/write.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <stdexcept>
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

// Runs `ctx` until `done` is set by a completion handler. When the deadline passes first,
// cancel() must make the pending operation complete (closing the stream does); the handlers are
// still run so nothing refers to this frame afterwards. Returns false on the deadline.
template <class Cancel>
bool run_until(asio::io_context& ctx, const bool& done, Clock::time_point deadline, Cancel&& cancel) {
  ctx.restart();
  while (!done) {
    const std::size_t ran =
        deadline == no_deadline ? ctx.run_one() : ctx.run_one_until(deadline);
    if (done) break;
    if (ran == 0) {
      if (ctx.stopped() && Clock::now() < deadline)
        throw std::logic_error("workspace::http: io_context ran out of work with an operation pending");
      cancel();
      ctx.restart();
      while (!done) {
        if (ctx.run_one() == 0) throw std::logic_error("workspace::http: a cancelled operation never completed");
      }
      return false;
    }
  }
  return true;
}

// One read_some with a deadline; ec is asio::error::timed_out when it passed, eof at the end.
template <class Stream>
std::size_t read_some(asio::io_context& ctx, Stream& stream, char* data, std::size_t size,
                      Clock::time_point deadline, std::error_code& ec) {
  bool done = false;
  std::size_t n = 0;
  stream.async_read_some(asio::buffer(data, size), [&](const std::error_code& e, std::size_t k) {
    ec = e;
    n = k;
    done = true;
  });
  if (!run_until(ctx, done, deadline, [&] { stream.close(); })) ec = asio::error::timed_out;
  return n;
}

// Writes all of `buffers` with a deadline.
template <class Stream, class Buffers>
void write_all(asio::io_context& ctx, Stream& stream, const Buffers& buffers,
               Clock::time_point deadline, std::error_code& ec) {
  bool done = false;
  asio::async_write(stream, buffers, [&](const std::error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!run_until(ctx, done, deadline, [&] { stream.close(); })) ec = asio::error::timed_out;
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
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    socket_.async_read_some(buffers, std::forward<Handler>(handler));
  }
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    socket_.async_write_some(buffers, std::forward<Handler>(handler));
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
  Socket& socket() noexcept { return socket_; }

 private:
  Socket socket_;
};

}  // namespace http::detail
WORKSPACE_NAMESPACE_END
