// A connection of the client: its own io_context, the stream and the read buffer
// (detail::Connection), and what a request that switched protocols hands over
// (UpgradedConnection: Docker's attach and exec, websockets).
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/http/detail/io.hpp>
#include <workspace/http/detail/parser.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/options.hpp>
#include <workspace/version.hpp>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {

// One connection: its own io_context (run only by the thread using it), the stream, and the
// read buffer, which may hold bytes of the next message and so lives as long as the stream.
template <class Transport>
struct Connection {
  asio::io_context ctx{1};
  std::optional<typename Transport::Stream> stream{};
  std::vector<char> buffer = std::vector<char>(16 * 1024);
  std::size_t begin = 0;  // unconsumed bytes are [begin, end)
  std::size_t end = 0;
  ResponseParser parser;

  explicit Connection(const ParserLimits& limits) : parser(limits) {}

  std::string_view pending() const noexcept { return {buffer.data() + begin, end - begin}; }

  // Room to read into: compacts, and grows while a header block or chunk line needs it.
  void make_room(std::size_t limit) {
    if (begin == end) begin = end = 0;
    if (end < buffer.size()) return;
    if (begin > 0) {
      std::memmove(buffer.data(), buffer.data() + begin, end - begin);
      end -= begin;
      begin = 0;
      return;
    }
    if (buffer.size() < limit) buffer.resize(std::min(limit, buffer.size() * 2));
  }

  // A kept-alive connection the server closed (or that has unexpected bytes) reads as ready.
  bool looks_alive() {
    if (begin != end) return false;
    pollfd p{stream->native_handle(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }
};

}  // namespace detail

// The connection after 101 Switching Protocols: the raw stream, with any bytes the server sent
// right behind the response head (they arrive first from read_some). Docker's attach and exec use
// this. Not thread-safe: one reader and one writer on the same thread.
template <class Transport>
class UpgradedConnection {
 public:
  UpgradedConnection(Response response, std::unique_ptr<detail::Connection<Transport>> connection)
      : response_(std::move(response)), connection_(std::move(connection)) {}

  // The 101 response, or the final response when the server did not switch protocols.
  const Response& response() const noexcept { return response_; }
  bool upgraded() const noexcept { return connection_ != nullptr; }

  // Reads what is available, waiting until the deadline; 0 means the peer closed its side.
  // ec is errc::timed_out (== std::errc::timed_out) when the deadline passed, and the
  // connection is then closed.
  std::size_t read_some(char* data, std::size_t size, std::chrono::steady_clock::time_point deadline,
                        std::error_code& ec) {
    ec.clear();
    auto& c = require();
    if (c.begin != c.end) {
      const std::size_t n = std::min(size, c.end - c.begin);
      std::memcpy(data, c.buffer.data() + c.begin, n);
      c.begin += n;
      return n;
    }
    const std::size_t n = detail::read_some(c.ctx, *c.stream, data, size, deadline, ec);
    if (ec == asio::error::eof) {
      ec.clear();
      return 0;
    }
    if (ec == asio::error::timed_out) ec = make_error_code(errc::timed_out);  // == std::errc::timed_out
    return n;
  }

  std::size_t read_some(char* data, std::size_t size, std::chrono::steady_clock::time_point deadline) {
    std::error_code ec;
    const std::size_t n = read_some(data, size, deadline, ec);
    if (ec == errc::timed_out) throw Error(errc::timed_out, "reading an upgraded connection: timed out");
    if (ec) throw Error(errc::connection_failed, "reading an upgraded connection: " + ec.message());
    return n;
  }

  // Waits until data can be read (or the peer closed) without consuming anything or closing the
  // connection; false when the deadline passed first. Bytes waiting inside a TLS layer count.
  bool wait_readable(std::chrono::steady_clock::time_point deadline) {
    auto& c = require();
    if (c.begin != c.end) return true;
    if constexpr (requires { c.stream->has_buffered(); }) {
      if (c.stream->has_buffered()) return true;
    }
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{c.stream->native_handle(), POLLIN, 0};
      const int timeout = left.count() <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left.count() + 1, 60'000));
      const int ready = ::poll(&p, 1, timeout);
      if (ready > 0) return true;
      if (ready < 0 && errno != EINTR) return true;  // let the read report it
      if (ready == 0 && std::chrono::steady_clock::now() >= deadline) return false;
    }
  }

  void write(std::string_view data, std::chrono::steady_clock::time_point deadline) {
    auto& c = require();
    std::error_code ec;
    detail::write_all(c.ctx, *c.stream, asio::buffer(data.data(), data.size()), deadline, ec);
    if (ec == asio::error::timed_out) throw Error(errc::timed_out, "writing an upgraded connection: timed out");
    if (ec) throw Error(errc::connection_failed, "writing an upgraded connection: " + ec.message());
  }

  // Tells the peer we have nothing more to send (Docker then ends the exec's stdin).
  void shutdown_send() { require().stream->shutdown_send(); }
  void close() noexcept {
    if (connection_) connection_->stream->close();
  }
  int native_handle() { return require().stream->native_handle(); }

 private:
  detail::Connection<Transport>& require() {
    if (!connection_) throw Error(errc::bad_state, "the server did not switch protocols");
    return *connection_;
  }

  Response response_;
  std::unique_ptr<detail::Connection<Transport>> connection_;
};

}  // namespace http
WORKSPACE_NAMESPACE_END
