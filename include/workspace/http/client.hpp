// http::Client<Transport, Policies...>: an HTTP/1.1 client with keep-alive, streamed bodies both
// ways, deadlines on every wait, and policies (retry, authentication) composed at compile time.
// Every request is one coroutine (co_request); async_request runs it with any completion token,
// on the client's executor or the handler's, and request() runs it to its end on the calling
// thread.
//
//   http::Client<http::UnixSocket> docker("/var/run/docker.sock");
//   auto info = docker.get_json("/v1.41/info");
//
//   http::Client<http::TcpOrTls, http::Retry, http::BearerAuth> daytona(
//       "https://app.daytona.io/api", {}, http::Retry{}, http::BearerAuth{key});
//
// A Client may be used from several threads and executors at once: each request takes its own
// connection, from the kept-alive ones of its execution context or a new one; a connection is
// never shared by two requests.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/connection.hpp>
#include <workspace/http/detail/io.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/detail/parser.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/options.hpp>
#include <workspace/http/policies.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/version.hpp>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

template <Transport T, Policy... Policies>
class Client {
 public:
  using transport_type = T;
  using connection_type = detail::Connection<T>;
  using executor_type = asio::any_io_executor;

  // `address`: a URL for Tcp, Tls and TcpOrTls (its path becomes a prefix of every target), a
  // socket path for UnixSocket. Throws invalid_argument for a bad address or TLS set-up.
  explicit Client(std::string_view address, ClientOptions options = {})
    requires(std::default_initializable<Policies> && ...)
      : state_(std::make_shared<State>(T::make_origin(address, options), std::move(options))) {}

  Client(std::string_view address, ClientOptions options, Policies... policies)
    requires(sizeof...(Policies) > 0)
      : state_(std::make_shared<State>(T::make_origin(address, options), std::move(options))),
        policies_(std::move(policies)...) {}

  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;

  // The executor asynchronous calls run on; none by default, and then each runs on its
  // completion handler's.
  void set_executor(executor_type executor) { executor_ = std::move(executor); }
  const executor_type& get_executor() const noexcept { return executor_; }

  // --- coroutines: the one implementation

  // Sends a request and returns the response, whatever its status (see check_status()).
  // Throws TransportError when the exchange fails, Error(invalid_argument) for a bad request.
  Task<Response> co_request(Request request, RequestOptions options = {}) {
    try {
      co_return co_await dispatch(request, options, nullptr);
    } catch (const std::system_error& e) {
      rethrow_cancelled(e, request);
      throw;
    }
  }

  // Sends a request asking to switch protocols (Connection: Upgrade, Upgrade: tcp unless the
  // request says otherwise) and returns the raw connection.
  Task<UpgradedConnection<T>> co_upgrade(Request request, RequestOptions options = {}) {
    if (!request.headers.contains("Connection")) request.headers.set("Connection", "Upgrade");
    if (!request.headers.contains("Upgrade")) request.headers.set("Upgrade", "tcp");
    std::unique_ptr<connection_type> raw;
    Response response;
    try {
      response = co_await dispatch(request, options, &raw);
    } catch (const std::system_error& e) {
      rethrow_cancelled(e, request);
      throw;
    }
    co_return UpgradedConnection<T>(std::move(response), std::move(raw));
  }

  // JSON in and out. A non-2xx answer throws an Error with the status and the server's message;
  // an empty 2xx body gives a null json. `headers` are added to the request (e.g. a credential
  // that is not a policy's).
  Task<nlohmann::json> co_request_json(std::string method, std::string target, std::optional<nlohmann::json> body = std::nullopt,
                                       RequestOptions options = {}, Headers headers = {}) {
    Request r{.method = std::move(method), .target = std::move(target), .headers = std::move(headers)};
    r.headers.set("Accept", "application/json");
    if (body) {
      r.headers.set("Content-Type", "application/json");
      r.body = body->dump();
    }
    const std::string what = describe(r);
    Response response = co_await co_request(std::move(r), std::move(options));
    check_status(response, what);
    if (response.body.empty()) co_return nullptr;
    auto parsed = detail::parse_json(response.body);
    if (parsed.is_discarded()) throw Error(errc::protocol_error, what + ": the response is not JSON", response.status, {});
    co_return parsed;
  }

  // --- asynchronous operations: any completion token, completing with (exception_ptr, T)

  template <class Token>
  auto async_request(Request request, RequestOptions options, Token&& token) {
    return workspace::detail::async_run(
        executor_, [this, request = std::move(request), options = std::move(options)]() mutable {
          return co_request(std::move(request), std::move(options));
        },
        std::forward<Token>(token));
  }
  template <class Token>
  auto async_upgrade(Request request, RequestOptions options, Token&& token) {
    return workspace::detail::async_run(
        executor_, [this, request = std::move(request), options = std::move(options)]() mutable {
          return co_upgrade(std::move(request), std::move(options));
        },
        std::forward<Token>(token));
  }
  template <class Token>
  auto async_request_json(std::string method, std::string target, std::optional<nlohmann::json> body,
                          RequestOptions options, Token&& token) {
    return workspace::detail::async_run(
        executor_, [this, method = std::move(method), target = std::move(target), body = std::move(body),
                    options = std::move(options)]() mutable {
          return co_request_json(std::move(method), std::move(target), std::move(body), std::move(options));
        },
        std::forward<Token>(token));
  }

  // --- blocking: the coroutines run to their end on the calling thread

  Response request(Request request, const RequestOptions& options = {}) {
    return workspace::detail::run_blocking([&] { return co_request(std::move(request), options); });
  }

  // The connection gets an io_context of its own, so that its blocking calls work from any
  // thread later.
  UpgradedConnection<T> upgrade(Request request, const RequestOptions& options = {}) {
    auto context = std::make_shared<asio::io_context>(1);
    auto connection = workspace::detail::run_blocking_on(*context, [&] { return co_upgrade(std::move(request), options); });
    return UpgradedConnection<T>(std::move(connection), std::move(context));
  }

  Response get(std::string target, Headers headers = {}, const RequestOptions& options = {}) {
    return request(Request{.method = "GET", .target = std::move(target), .headers = std::move(headers)}, options);
  }
  Response head(std::string target, Headers headers = {}, const RequestOptions& options = {}) {
    return request(Request{.method = "HEAD", .target = std::move(target), .headers = std::move(headers)}, options);
  }
  Response del(std::string target, Headers headers = {}, const RequestOptions& options = {}) {
    return request(Request{.method = "DELETE", .target = std::move(target), .headers = std::move(headers)}, options);
  }
  Response post(std::string target, std::string body, std::string content_type, Headers headers = {},
                const RequestOptions& options = {}) {
    headers.set("Content-Type", std::move(content_type));
    return request(Request{.method = "POST", .target = std::move(target), .headers = std::move(headers),
                           .body = std::move(body)},
                   options);
  }
  Response put(std::string target, std::string body, std::string content_type, Headers headers = {},
               const RequestOptions& options = {}) {
    headers.set("Content-Type", std::move(content_type));
    return request(Request{.method = "PUT", .target = std::move(target), .headers = std::move(headers),
                           .body = std::move(body)},
                   options);
  }

  nlohmann::json request_json(std::string method, std::string target,
                              const std::optional<nlohmann::json>& body = std::nullopt,
                              const RequestOptions& options = {}, Headers headers = {}) {
    return workspace::detail::run_blocking(
        [&] { return co_request_json(std::move(method), std::move(target), body, options, std::move(headers)); });
  }
  nlohmann::json get_json(std::string target, const RequestOptions& options = {}) {
    return request_json("GET", std::move(target), std::nullopt, options);
  }
  nlohmann::json post_json(std::string target, const nlohmann::json& body = nlohmann::json::object(),
                           const RequestOptions& options = {}) {
    return request_json("POST", std::move(target), body, options);
  }
  nlohmann::json put_json(std::string target, const nlohmann::json& body, const RequestOptions& options = {}) {
    return request_json("PUT", std::move(target), body, options);
  }
  nlohmann::json delete_json(std::string target, const RequestOptions& options = {}) {
    return request_json("DELETE", std::move(target), std::nullopt, options);
  }

  // "GET /path on http://host:port": for messages; no query (it may hold tokens), no secrets.
  std::string describe(const Request& request) const {
    const auto query = request.target.find('?');
    return request.method + " " + state_->origin.base_path + request.target.substr(0, query) + " on " +
           state_->origin.description;
  }

  // The server as messages name it: the URL without credentials, or unix:<path>.
  const std::string& endpoint() const noexcept { return state_->origin.description; }
  const ClientOptions& options() const noexcept { return state_->options; }

  template <class Policy>
  Policy& policy() noexcept {
    return std::get<Policy>(policies_);
  }

  // The kept-alive connections of this client that the calling thread's blocking calls use.
  std::size_t idle_connections() const {
    return detail::cache_of<T>(workspace::detail::thread_context().get_executor()).idle(state_->id);
  }
  void close_idle_connections() {
    detail::cache_of<T>(workspace::detail::thread_context().get_executor()).forget(state_->id);
  }

 private:
  struct State {
    State(Origin o, ClientOptions opts) : origin(std::move(o)), options(std::move(opts)) {}
    Origin origin;
    ClientOptions options;
    std::uint64_t id = next_id();  // names this client's connections in the caches

    static std::uint64_t next_id() {
      static std::atomic<std::uint64_t> counter{1};
      return counter.fetch_add(1);
    }
  };

  using Slot = std::unique_ptr<connection_type>;

  // A cancellation Asio raised between two operations (a coroutine's co_await once its
  // operation was cancelled) is a TransportError like one raised inside an operation.
  void rethrow_cancelled(const std::system_error& e, const Request& request) const {
    if (e.code() == asio::error::operation_aborted && dynamic_cast<const Error*>(&e) == nullptr)
      throw TransportError(e.code(), describe(request) + ": cancelled", {});
  }

  // Each attempt through the policies; between attempts a wait, within the caller's deadline.
  Task<Response> dispatch(Request& request, const RequestOptions& options, Slot* slot) {
    co_return co_await detail::run_policies(
        policies_, request, [&](Request& r) { return perform(r, options, slot); },
        [&](std::chrono::milliseconds wait) -> Task<bool> {
          if (options.deadline.when() - detail::Clock::now() <= wait) co_return false;
          asio::steady_timer timer(co_await asio::this_coro::executor, wait);
          auto [ec] = co_await timer.async_wait(compat::as_tuple(asio::use_awaitable));
          if (ec == asio::error::operation_aborted)
            throw TransportError(ec, describe(request) + ": cancelled between attempts", {});
          co_return true;
        });
  }

  Task<std::unique_ptr<connection_type>> open(detail::Clock::time_point deadline) {
    const auto executor = co_await asio::this_coro::executor;
    const auto state = state_;  // the client may be moved while this runs
    auto stream = co_await T::connect(executor, state->origin,
                                      detail::earliest(deadline, detail::deadline_after(state->options.timeouts.connect)));
    co_return std::make_unique<connection_type>(std::move(stream), state->options.limits);
  }

  Task<Response> perform(Request& request, const RequestOptions& options, Slot* slot) {
    validate(request);
    const auto deadline =
        detail::earliest(detail::deadline_after(options.timeout.value_or(state_->options.timeouts.request)),
                         options.deadline.when());
    auto& cache = detail::cache_of<T>(co_await asio::this_coro::executor);
    for (int attempt = 0;; ++attempt) {
      auto connection = slot ? nullptr : cache.take(state_->id);
      TransportError::Progress progress{};
      progress.connection_reused = connection != nullptr;
      if (!connection) {
        std::optional<Error> failed;
        try {
          connection = co_await open(deadline);
        } catch (const TransportError&) {
          throw;
        } catch (const Error& e) {
          failed.emplace(e);
        }
        if (failed) {
          const auto& e = *failed;
          const errc code = e.code().category() == error_category() ? static_cast<errc>(e.code().value())
                                                                     : errc::connection_failed;
          throw TransportError(code, describe(request) + ": " + workspace::detail::message_of(e), progress);
        }
      }
      std::exception_ptr failure;
      bool stale = false;
      try {
        co_return co_await exchange(std::move(connection), cache, request, options, deadline, progress, slot);
      } catch (const TransportError& e) {
        // A kept-alive connection the server had already dropped: once more on a fresh one, when
        // that cannot repeat a side effect (RFC 9110 §9.2.2).
        stale = progress.connection_reused && !progress.response_started && !progress.body_consumed &&
                (request.is_idempotent() || !progress.request_sent) &&
                e.code() == make_error_code(errc::connection_failed);
        failure = std::current_exception();
      }
      if (!(attempt == 0 && stale)) std::rethrow_exception(failure);
    }
  }

  static void validate(const Request& request) {
    const auto bad = [](std::string_view s) {
      return s.find_first_of("\r\n") != std::string_view::npos || s.find('\0') != std::string_view::npos;
    };
    if (request.method.empty() || bad(request.method) || request.method.find(' ') != std::string::npos)
      throw Error(errc::invalid_argument, "invalid HTTP method");
    if (request.target.empty() || bad(request.target) || request.target.find(' ') != std::string::npos)
      throw Error(errc::invalid_argument, "invalid request target (encode it with http::make_target)");
    for (const auto& [name, value] : request.headers) {
      if (name.empty() || bad(name) || bad(value))
        throw Error(errc::invalid_argument, "header " + (bad(name) ? std::string("name") : name) +
                                                " contains a line break");
      for (char c : name)
        if (!detail::is_token_char(c)) throw Error(errc::invalid_argument, "invalid header name " + name);
    }
  }

  std::string serialize_head(const Request& request, bool chunked) const {
    const auto& origin = state_->origin;
    std::string head;
    head.reserve(256 + request.target.size());
    head += request.method;
    head += ' ';
    if (origin.absolute_form) head += "http://" + origin.host_header;
    head += origin.base_path;
    head += request.target;
    head += " HTTP/1.1\r\n";
    if (!request.headers.contains("Host")) {
      head += "Host: ";
      head += origin.host_header;
      head += "\r\n";
    }
    if (!request.headers.contains("User-Agent") && !state_->options.user_agent.empty()) {
      head += "User-Agent: ";
      head += state_->options.user_agent;
      head += "\r\n";
    }
    if (origin.absolute_form && !origin.proxy_authorization.empty())
      head += "Proxy-Authorization: " + origin.proxy_authorization + "\r\n";
    for (const auto& [name, value] : request.headers) {
      if (detail::iequals(name, "Content-Length") || detail::iequals(name, "Transfer-Encoding")) continue;
      head += name;
      head += ": ";
      head += value;
      head += "\r\n";
    }
    if (chunked) {
      head += "Transfer-Encoding: chunked\r\n";
    } else if (request.source) {
      head += "Content-Length: " + std::to_string(*request.source_size) + "\r\n";
    } else if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
               request.method == "PATCH") {
      head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
    }
    head += "\r\n";
    return head;
  }

  [[noreturn]] void fail(errc code, const Request& request, const std::string& what,
                         const TransportError::Progress& progress) const {
    throw TransportError(code, describe(request) + ": " + what, progress);
  }

  static std::string idle_text(std::chrono::milliseconds idle) { return std::to_string(idle.count()) + " ms"; }

  // What a failed read or write says: the watchdog's deadline, a cancel, or the error.
  [[noreturn]] void fail_io(connection_type& c, const std::error_code& ec, const Request& request, const char* doing,
                            detail::Clock::time_point deadline, std::chrono::milliseconds idle,
                            const TransportError::Progress& progress) const {
    if (c.watchdog.fired()) {
      if (detail::Clock::now() >= deadline) fail(errc::timed_out, request, "the request's deadline passed", progress);
      fail(errc::timed_out, request,
           std::string(progress.response_started ? "no data from the server for "
                                                  : (progress.request_sent ? "no response from the server for "
                                                                           : "timed out sending the request after ")) +
               idle_text(idle),
           progress);
    }
    if (ec == asio::error::operation_aborted)
      throw TransportError(ec, describe(request) + ": cancelled while " + doing, progress);
    fail(errc::connection_failed, request, std::string(doing) + ": " + ec.message(), progress);
  }

  template <class Buffers>
  Task<void> send(connection_type& c, const Request& request, const Buffers& buffers, std::size_t size,
                  detail::Clock::time_point deadline, std::chrono::milliseconds idle, TransportError::Progress& progress) {
    auto [ec, n] = co_await asio::async_write(c.stream, buffers, compat::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) fail_io(c, ec, request, "sending the request", deadline, idle, progress);
    c.watchdog.progress();
    if (size > 0) progress.request_sent = true;
  }

  Task<void> send_body(connection_type& c, Request& request, const RequestOptions& options,
                       detail::Clock::time_point deadline, std::chrono::milliseconds idle,
                       TransportError::Progress& progress, bool chunked) {
    constexpr std::size_t slice = 1 << 20;  // in-memory bodies: progress reported per MiB
    const std::optional<std::uint64_t> total =
        request.source ? request.source_size : std::optional<std::uint64_t>(request.body.size());
    std::uint64_t done = 0;
    const auto report = [&] {
      if (options.on_upload && !options.on_upload(done, total)) {
        fail(errc::cancelled, request, "cancelled while sending the request body", progress);
      }
    };
    if (!request.source) {
      for (std::size_t at = 0; at < request.body.size(); at += slice) {
        const std::size_t n = std::min(slice, request.body.size() - at);
        co_await send(c, request, asio::buffer(request.body.data() + at, n), n, deadline, idle, progress);
        done += n;
        report();
      }
      co_return;
    }
    constexpr std::size_t capacity = 64 * 1024;
    std::vector<char> buffer(capacity);
    for (;;) {
      progress.body_consumed = true;
      std::size_t n = 0;
      try {
        n = request.source(buffer.data(), capacity);
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        fail(errc::io_error, request, std::string("reading the request body: ") + e.what(), progress);
      }
      if (n > capacity) fail(errc::invalid_argument, request, "body source overran its buffer", progress);
      if (n == 0) break;
      if (!chunked && done + n > *total)
        fail(errc::invalid_argument, request, "body source gave more than its declared size", progress);
      if (chunked) {
        char size_line[24];
        const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
        const std::array<asio::const_buffer, 3> parts{asio::buffer(size_line, static_cast<std::size_t>(len)),
                                                      asio::buffer(buffer.data(), n), asio::buffer("\r\n", 2)};
        co_await send(c, request, parts, n, deadline, idle, progress);
      } else {
        co_await send(c, request, asio::buffer(buffer.data(), n), n, deadline, idle, progress);
      }
      done += n;
      report();
    }
    if (chunked) {
      co_await send(c, request, asio::buffer("0\r\n\r\n", 5), 5, deadline, idle, progress);
    } else if (done != *total) {
      fail(errc::invalid_argument, request,
           "body source ended after " + std::to_string(done) + " of " + std::to_string(*total) + " declared bytes",
           progress);
    }
  }

  Task<Response> exchange(std::unique_ptr<connection_type> connection, detail::ConnectionCache<T>& cache,
                          Request& request, const RequestOptions& options, detail::Clock::time_point deadline,
                          TransportError::Progress& progress, Slot* slot) {
    auto& c = *connection;
    const auto idle = options.idle_timeout.value_or(state_->options.timeouts.idle);
    c.guard(deadline, idle);
    std::optional<Error> failed;
    try {
      const bool chunked = request.source && !request.source_size;
      const std::string head = serialize_head(request, chunked);
      if (!request.source && request.body.size() <= (64u << 10)) {
        // Head and small body in one write: one segment on the wire.
        const std::array<asio::const_buffer, 2> parts{asio::buffer(head), asio::buffer(request.body)};
        co_await send(c, request, parts, head.size() + request.body.size(), deadline, idle, progress);
        if (!request.body.empty() && options.on_upload &&
            !options.on_upload(request.body.size(), request.body.size()))
          fail(errc::cancelled, request, "cancelled while sending the request body", progress);
      } else {
        co_await send(c, request, asio::buffer(head), head.size(), deadline, idle, progress);
        co_await send_body(c, request, options, deadline, idle, progress, chunked);
      }
      Response response = co_await receive(c, request, options, deadline, idle, progress);
      c.watchdog.disarm();
      if (c.parser.upgraded()) {
        if (slot) *slot = std::move(connection);
        co_return response;
      }
      if (c.parser.keep_alive() && c.begin == c.end)
        cache.give_back(state_->id, std::move(connection), state_->options.max_idle_connections);
      co_return response;
    } catch (const TransportError&) {
      throw;
    } catch (const Error& e) {
      failed.emplace(e);
    } catch (const std::exception& e) {
      // Cancelled through the operation's slot while between two reads or writes.
      if (workspace::detail::is_aborted(e))
        throw TransportError(asio::error::operation_aborted, describe(request) + ": cancelled", progress);
      failed.emplace(errc::io_error, e.what());  // a throwing BodySink or Progress
    }
    // The parser's and the sink's errors, with the request they belong to.
    const auto& e = *failed;
    const errc code = e.code().category() == error_category() ? static_cast<errc>(e.code().value()) : errc::io_error;
    fail(code, request, workspace::detail::message_of(e), progress);
  }

  Task<Response> receive(connection_type& c, const Request& request, const RequestOptions& options,
                         detail::Clock::time_point deadline, std::chrono::milliseconds idle,
                         TransportError::Progress& progress) {
    Response response;
    auto& parser = c.parser;
    parser.start(request.method == "HEAD");
    const std::uint64_t memory_limit = state_->options.max_body_in_memory;
    const auto on_body = [&](std::string_view data) {
      // Only a 2xx body streams to the sink; an error's body is kept for its message.
      const int status = parser.head().status;
      if (options.on_body && status >= 200 && status < 300) {
        progress.body_delivered = true;
        if (!options.on_body(data)) fail(errc::cancelled, request, "cancelled while receiving the response body", progress);
      } else {
        if (response.body.empty()) {  // before the first append, so the body is never copied twice
          if (auto length = parser.content_length(); length && *length <= memory_limit)
            response.body.reserve(static_cast<std::size_t>(*length));
        }
        if (response.body.size() + data.size() > memory_limit)
          fail(errc::io_error, request,
               "response body exceeds max_body_in_memory (" + std::to_string(memory_limit) +
                   " bytes); stream it with RequestOptions::on_body",
               progress);
        response.body.append(data);
      }
    };
    const std::size_t buffer_limit = state_->options.limits.max_header_bytes + state_->options.limits.max_chunk_line + 4096;
    for (;;) {
      if (c.begin != c.end) {
        const std::uint64_t before = parser.body_bytes();
        c.begin += parser.parse(c.pending(), on_body);
        if (options.on_download && parser.body_bytes() != before &&
            !options.on_download(parser.body_bytes(), parser.content_length()))
          fail(errc::cancelled, request, "cancelled while receiving the response body", progress);
      }
      if (parser.done()) break;
      c.make_room(buffer_limit);
      auto [ec, n] = co_await c.stream.async_read_some(asio::buffer(c.buffer.data() + c.end, c.buffer.size() - c.end),
                                                       compat::as_tuple(asio::use_awaitable));
      if (ec == asio::error::eof && !c.watchdog.fired()) {
        parser.finish_eof();  // throws unless the body runs to the connection's end
        break;
      }
      if (ec) fail_io(c, ec, request, "receiving the response", deadline, idle, progress);
      c.watchdog.progress();
      progress.response_started = true;
      c.end += n;
    }
    auto& head = parser.head();
    response.status = head.status;
    response.reason = std::move(head.reason);
    response.headers = std::move(head.headers);
    co_return response;
  }

  std::shared_ptr<State> state_;
  std::tuple<Policies...> policies_;
  executor_type executor_{};
};

}  // namespace http
WORKSPACE_NAMESPACE_END
