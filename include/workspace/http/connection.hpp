// A connection of the client (detail::Connection: the stream, its read buffer and parser, and
// the watchdog that bounds its waits), where idle ones wait for reuse (detail::ConnectionCache,
// one per execution context), and what a request that switched protocols hands over
// (UpgradedConnection: Docker's attach and exec, websockets).
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/detail/io.hpp>
#include <workspace/http/detail/parser.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/options.hpp>
#include <workspace/version.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {

// One connection: the stream, bound to the executor that made it; the read buffer, which may
// hold bytes of the next message and so lives as long as the stream; and its watchdog.
template <class Transport>
struct Connection {
  typename Transport::Stream stream;
  Watchdog watchdog;
  std::vector<char> buffer = std::vector<char>(16 * 1024);
  std::size_t begin = 0;  // unconsumed bytes are [begin, end)
  std::size_t end = 0;
  ResponseParser parser;

  Connection(typename Transport::Stream s, const ParserLimits& limits)
      : stream(std::move(s)), watchdog(stream.get_executor()), parser(limits) {}

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
    pollfd p{stream.native_handle(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  // Bounds what follows by `deadline`, and every wait in it by `idle`.
  void guard(Clock::time_point deadline, std::chrono::milliseconds idle) {
    watchdog.arm([this] { stream.close(); }, deadline, idle);
  }
};

// Kept-alive connections waiting for reuse, per execution context (a socket serves only the
// context it was made on) and per client. A service of the context, so that they close with it.
template <class Transport>
class ConnectionCache final : public asio::execution_context::service {
 public:
  inline static asio::execution_context::id id;

  explicit ConnectionCache(asio::execution_context& context) : asio::execution_context::service(context) {}

  // An idle connection of client `owner` that still looks alive, or none.
  std::unique_ptr<Connection<Transport>> take(std::uint64_t owner) {
    std::lock_guard lock(mutex_);
    auto it = idle_.find(owner);
    if (it == idle_.end()) return nullptr;
    while (!it->second.empty()) {
      auto c = std::move(it->second.back());
      it->second.pop_back();
      if (c->looks_alive()) return c;
    }
    return nullptr;
  }

  void give_back(std::uint64_t owner, std::unique_ptr<Connection<Transport>> c, std::size_t max_idle) {
    std::lock_guard lock(mutex_);
    auto& list = idle_[owner];
    if (list.size() < max_idle) list.push_back(std::move(c));
    // Clients come and go; their idle connections do not pile up past a bound.
    while (idle_.size() > max_clients) idle_.erase(idle_.begin());
  }

  std::size_t idle(std::uint64_t owner) const {
    std::lock_guard lock(mutex_);
    const auto it = idle_.find(owner);
    return it == idle_.end() ? 0 : it->second.size();
  }
  void forget(std::uint64_t owner) {
    std::lock_guard lock(mutex_);
    idle_.erase(owner);
  }

 private:
  static constexpr std::size_t max_clients = 64;
  void shutdown() override {
    std::lock_guard lock(mutex_);
    idle_.clear();
  }

  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::vector<std::unique_ptr<Connection<Transport>>>> idle_;
};

template <class Transport, class Executor>
ConnectionCache<Transport>& cache_of(const Executor& executor) {
  return asio::use_service<ConnectionCache<Transport>>(asio::query(executor, asio::execution::context));
}

}  // namespace detail

// The connection after 101 Switching Protocols: the raw stream, with any bytes the server sent
// right behind the response head (they arrive first from a read). Docker's attach and exec and
// websockets use this. Coroutines use the co_ calls; the blocking calls work on a connection that
// a blocking upgrade made (it has an io_context of its own). One reader and one writer at a time.
template <class Transport>
class UpgradedConnection {
 public:
  UpgradedConnection(Response response, std::unique_ptr<detail::Connection<Transport>> connection,
                     std::shared_ptr<asio::io_context> own_context = nullptr)
      : response_(std::move(response)), own_context_(std::move(own_context)), connection_(std::move(connection)) {}
  // None: what an asynchronous operation that failed completes with beside its exception.
  UpgradedConnection() = default;
  // The same connection, with the io_context its blocking calls run on.
  UpgradedConnection(UpgradedConnection&& other, std::shared_ptr<asio::io_context> own_context)
      : UpgradedConnection(std::move(other)) {
    own_context_ = std::move(own_context);
  }
  UpgradedConnection(UpgradedConnection&&) noexcept = default;
  // The connection goes before the io_context its timer and socket belong to.
  UpgradedConnection& operator=(UpgradedConnection&& other) noexcept {
    if (this != &other) {
      close();
      write_watchdog_.reset();
      connection_.reset();
      response_ = std::move(other.response_);
      own_context_ = std::move(other.own_context_);
      connection_ = std::move(other.connection_);
      write_watchdog_ = std::move(other.write_watchdog_);
    }
    return *this;
  }
  ~UpgradedConnection() { close(); }

  // The 101 response, or the final response when the server did not switch protocols.
  const Response& response() const noexcept { return response_; }
  bool upgraded() const noexcept { return connection_ != nullptr; }

  // Reads what is available, waiting until the deadline: 0 means the peer closed its side.
  // Error(timed_out) when the deadline passed (the connection is then closed),
  // Error(connection_failed) when the read failed.
  Task<std::size_t> co_read_some(char* data, std::size_t size, Deadline::time_point deadline) {
    auto& c = require();
    if (c.begin != c.end) {
      const std::size_t n = std::min(size, c.end - c.begin);
      std::memcpy(data, c.buffer.data() + c.begin, n);
      c.begin += n;
      co_return n;
    }
    c.watchdog.arm([&c] { c.stream.close(); }, deadline);
    auto [ec, n] = co_await c.stream.async_read_some(asio::buffer(data, size), compat::as_tuple(asio::use_awaitable));
    c.watchdog.disarm();
    if (c.watchdog.fired()) throw Error(errc::timed_out, "reading an upgraded connection: timed out");
    if (ec == asio::error::eof) co_return 0;
    if (ec == asio::error::operation_aborted) throw Error(ec, "reading an upgraded connection: cancelled");
    if (ec) throw Error(errc::connection_failed, "reading an upgraded connection: " + ec.message());
    co_return n;
  }

  // Waits until data can be read (or the peer closed) without consuming anything or closing the
  // connection; false when `until` passed first. Bytes waiting inside a TLS layer count.
  Task<bool> co_wait_readable(Deadline::time_point until) {
    auto& c = require();
    if (c.begin != c.end) co_return true;
    if (c.stream.has_buffered()) co_return true;
    asio::steady_timer timer(c.stream.get_executor(), until);
    // Whichever ends first cancels the other; both are awaited, so nothing outlives this frame.
    auto [order, readable, expired] = co_await compat::make_parallel_group(
                                          c.stream.async_wait_readable(compat::deferred),
                                          timer.async_wait(compat::deferred))
                                          .async_wait(compat::wait_for_one(), asio::use_awaitable);
    (void)readable;  // an error counts as readable: the read reports it
    (void)expired;
    co_return order[0] == 0;
  }

  // A write has a watchdog of its own, so that one read and one write may run at once.
  Task<void> co_write(std::string_view data, Deadline::time_point deadline) {
    auto& c = require();
    if (!write_watchdog_) write_watchdog_.emplace(c.stream.get_executor());
    auto& watchdog = *write_watchdog_;
    watchdog.arm([&c] { c.stream.close(); }, deadline);
    auto [ec, n] = co_await asio::async_write(c.stream, asio::buffer(data.data(), data.size()),
                                              compat::as_tuple(asio::use_awaitable));
    (void)n;
    watchdog.disarm();
    if (watchdog.fired()) throw Error(errc::timed_out, "writing an upgraded connection: timed out");
    if (ec) throw Error(errc::connection_failed, "writing an upgraded connection: " + ec.message());
  }

  // The blocking forms, for a connection a blocking upgrade made. read_some gives the error as
  // ec: errc::timed_out (== std::errc::timed_out) when the deadline passed.
  std::size_t read_some(char* data, std::size_t size, Deadline::time_point deadline, std::error_code& ec) {
    ec.clear();
    try {
      return run([&] { return co_read_some(data, size, deadline); });
    } catch (const Error& e) {
      ec = e.code();
      return 0;
    }
  }
  std::size_t read_some(char* data, std::size_t size, Deadline::time_point deadline) {
    return run([&] { return co_read_some(data, size, deadline); });
  }
  bool wait_readable(Deadline::time_point until) {
    return run([&] { return co_wait_readable(until); });
  }
  void write(std::string_view data, Deadline::time_point deadline) {
    run([&] { return co_write(data, deadline); });
  }

  // Runs the coroutine `make()` gives to its end: for the blocking calls of layers above
  // (websockets), on a connection a blocking upgrade made.
  template <class Make>
  auto blocking(Make&& make) {
    return run(std::forward<Make>(make));
  }
  bool has_own_context() const noexcept { return own_context_ != nullptr; }

  // Tells the peer we have nothing more to send (Docker then ends the exec's stdin).
  void shutdown_send() { require().stream.shutdown_send(); }
  void close() noexcept {
    if (connection_) connection_->stream.close();
  }
  int native_handle() { return require().stream.native_handle(); }
  asio::any_io_executor get_executor() { return require().stream.get_executor(); }

 private:
  detail::Connection<Transport>& require() {
    if (!connection_) throw Error(errc::bad_state, "the server did not switch protocols");
    return *connection_;
  }

  template <class Make>
  auto run(Make&& make) {
    if (!own_context_)
      throw Error(errc::bad_state, "a connection an asynchronous upgrade made takes the co_ calls only");
    return workspace::detail::run_blocking_on(*own_context_, std::forward<Make>(make));
  }

  Response response_;
  // Declared before the connection, so destroyed after it: its timer and socket belong to it.
  std::shared_ptr<asio::io_context> own_context_;
  std::unique_ptr<detail::Connection<Transport>> connection_;
  std::optional<detail::Watchdog> write_watchdog_;  // goes before the connection
};

}  // namespace http
WORKSPACE_NAMESPACE_END
