// http::Client<Transport, Policies...>: a blocking HTTP/1.1 client with keep-alive, streamed
// bodies both ways, deadlines on every wait, and policies (retry, authentication) composed at
// compile time.
//
//   http::Client<http::UnixSocket> docker("/var/run/docker.sock");
//   auto info = docker.get_json("/v1.41/info");
//
//   http::Client<http::TcpOrTls, http::Retry, http::BearerAuth> daytona(
//       "https://app.daytona.io/api", {}, http::Retry{}, http::BearerAuth{key});
//
// A Client may be used from several threads at once: each request takes its own connection from
// the pool (or opens one); a connection is never shared by two requests.
#pragma once

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

  // `address`: a URL for Tcp, Tls and TcpOrTls (its path becomes a prefix of every target), a
  // socket path for UnixSocket. Throws invalid_argument for a bad address or TLS set-up.
  explicit Client(std::string_view address, ClientOptions options = {})
    requires(std::default_initializable<Policies> && ...)
      : state_(std::make_unique<State>(T::make_origin(address, options), std::move(options))) {}

  Client(std::string_view address, ClientOptions options, Policies... policies)
    requires(sizeof...(Policies) > 0)
      : state_(std::make_unique<State>(T::make_origin(address, options), std::move(options))),
        policies_(std::move(policies)...) {}

  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;

  // Sends a request and returns the response, whatever its status (see check_status()).
  // Throws TransportError when the exchange fails, Error(invalid_argument) for a bad request.
  Response request(Request request, const RequestOptions& options = {}) {
    return dispatch(request, options, nullptr);
  }

  // Sends a request asking to switch protocols (Connection: Upgrade, Upgrade: tcp unless the
  // request says otherwise) and returns the raw connection.
  UpgradedConnection<T> upgrade(Request request, const RequestOptions& options = {}) {
    if (!request.headers.contains("Connection")) request.headers.set("Connection", "Upgrade");
    if (!request.headers.contains("Upgrade")) request.headers.set("Upgrade", "tcp");
    std::unique_ptr<connection_type> raw;
    Response response = dispatch(request, options, &raw);
    return UpgradedConnection<T>(std::move(response), std::move(raw));
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

  // JSON in and out. A non-2xx answer throws an Error with the status and the server's message;
  // an empty 2xx body gives a null json.
  // `headers` are added to the request (e.g. a credential that is not a policy's).
  nlohmann::json request_json(std::string method, std::string target,
                              const std::optional<nlohmann::json>& body = std::nullopt,
                              const RequestOptions& options = {}, Headers headers = {}) {
    Request r{.method = std::move(method), .target = std::move(target), .headers = std::move(headers)};
    r.headers.set("Accept", "application/json");
    if (body) {
      r.headers.set("Content-Type", "application/json");
      r.body = body->dump();
    }
    const std::string what = describe(r);
    Response response = request(std::move(r), options);
    check_status(response, what);
    if (response.body.empty()) return nullptr;
    auto parsed = detail::parse_json(response.body);
    if (parsed.is_discarded()) throw Error(errc::protocol_error, what + ": the response is not JSON", response.status, {});
    return parsed;
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

  std::size_t idle_connections() const {
    std::lock_guard lock(state_->mutex);
    return state_->idle.size();
  }
  void close_idle_connections() {
    std::lock_guard lock(state_->mutex);
    state_->idle.clear();
  }

 private:
  struct State {
    State(Origin o, ClientOptions opts) : origin(std::move(o)), options(std::move(opts)) {}
    Origin origin;
    ClientOptions options;
    mutable std::mutex mutex;
    std::vector<std::unique_ptr<connection_type>> idle;
  };

  using Slot = std::unique_ptr<connection_type>;

  // Each attempt through the policies; between attempts a wait, within the caller's deadline.
  Response dispatch(Request& request, const RequestOptions& options, Slot* slot) {
    return detail::run_policies(
        policies_, request, [&](Request& r) { return perform(r, options, slot); },
        [&](std::chrono::milliseconds wait) {
          if (options.deadline.when() - detail::Clock::now() <= wait) return false;
          std::this_thread::sleep_for(wait);
          return true;
        });
  }

  std::unique_ptr<connection_type> take_idle() {
    std::lock_guard lock(state_->mutex);
    while (!state_->idle.empty()) {
      auto c = std::move(state_->idle.back());
      state_->idle.pop_back();
      if (c->looks_alive()) return c;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<connection_type> c) {
    std::lock_guard lock(state_->mutex);
    if (state_->idle.size() < state_->options.max_idle_connections) state_->idle.push_back(std::move(c));
  }

  std::unique_ptr<connection_type> open(detail::Clock::time_point deadline) {
    auto c = std::make_unique<connection_type>(state_->options.limits);
    c->stream.emplace(T::connect(c->ctx, state_->origin,
                                 detail::earliest(deadline, detail::deadline_after(state_->options.timeouts.connect))));
    return c;
  }

  Response perform(Request& request, const RequestOptions& options, Slot* slot) {
    validate(request);
    const auto deadline =
        detail::earliest(detail::deadline_after(options.timeout.value_or(state_->options.timeouts.request)),
                         options.deadline.when());
    for (int attempt = 0;; ++attempt) {
      auto connection = take_idle();
      TransportError::Progress progress{};
      progress.connection_reused = connection != nullptr;
      if (!connection) {
        try {
          connection = open(deadline);
        } catch (const TransportError&) {
          throw;
        } catch (const Error& e) {
          const errc code = e.code().category() == error_category() ? static_cast<errc>(e.code().value())
                                                                     : errc::connection_failed;
          throw TransportError(code, describe(request) + ": " + workspace::detail::message_of(e), progress);
        }
      }
      try {
        return exchange(std::move(connection), request, options, deadline, progress, slot);
      } catch (const TransportError& e) {
        // A kept-alive connection the server had already dropped: once more on a fresh one, when
        // that cannot repeat a side effect (RFC 9110 §9.2.2).
        const bool stale = progress.connection_reused && !progress.response_started && !progress.body_consumed &&
                           (request.is_idempotent() || !progress.request_sent) &&
                           e.code() == make_error_code(errc::connection_failed);
        if (attempt == 0 && stale) continue;
        throw;
      }
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

  static errc io_errc(const std::error_code& ec) {
    return ec == asio::error::timed_out ? errc::timed_out : errc::connection_failed;
  }

  static std::string idle_text(std::chrono::milliseconds idle) { return std::to_string(idle.count()) + " ms"; }

  template <class Buffers>
  void send(connection_type& c, const Request& request, const Buffers& buffers, std::size_t size,
            detail::Clock::time_point deadline, TransportError::Progress& progress) {
    std::error_code ec;
    const auto until = detail::earliest(deadline, detail::deadline_after(state_->options.timeouts.idle));
    detail::write_all(c.ctx, *c.stream, buffers, until, ec);
    if (ec) {
      fail(io_errc(ec), request,
           ec == asio::error::timed_out ? "timed out sending the request" : "sending the request: " + ec.message(),
           progress);
    }
    if (size > 0) progress.request_sent = true;
  }

  void send_body(connection_type& c, Request& request, const RequestOptions& options,
                 detail::Clock::time_point deadline, TransportError::Progress& progress, bool chunked) {
    constexpr std::size_t slice = 1 << 20;  // in-memory bodies: one idle deadline per MiB
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
        send(c, request, asio::buffer(request.body.data() + at, n), n, deadline, progress);
        done += n;
        report();
      }
      return;
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
        send(c, request, parts, n, deadline, progress);
      } else {
        send(c, request, asio::buffer(buffer.data(), n), n, deadline, progress);
      }
      done += n;
      report();
    }
    if (chunked) {
      send(c, request, asio::buffer("0\r\n\r\n", 5), 5, deadline, progress);
    } else if (done != *total) {
      fail(errc::invalid_argument, request,
           "body source ended after " + std::to_string(done) + " of " + std::to_string(*total) + " declared bytes",
           progress);
    }
  }

  Response exchange(std::unique_ptr<connection_type> connection, Request& request, const RequestOptions& options,
                    detail::Clock::time_point deadline, TransportError::Progress& progress, Slot* slot) {
    auto& c = *connection;
    try {
      const bool chunked = request.source && !request.source_size;
      const std::string head = serialize_head(request, chunked);
      if (!request.source && request.body.size() <= (64u << 10)) {
        // Head and small body in one write: one segment on the wire.
        const std::array<asio::const_buffer, 2> parts{asio::buffer(head), asio::buffer(request.body)};
        send(c, request, parts, head.size() + request.body.size(), deadline, progress);
        if (!request.body.empty() && options.on_upload &&
            !options.on_upload(request.body.size(), request.body.size()))
          fail(errc::cancelled, request, "cancelled while sending the request body", progress);
      } else {
        send(c, request, asio::buffer(head), head.size(), deadline, progress);
        send_body(c, request, options, deadline, progress, chunked);
      }
      Response response = receive(c, request, options, deadline, progress);
      if (c.parser.upgraded()) {
        if (slot) *slot = std::move(connection);
        return response;
      }
      if (c.parser.keep_alive() && c.begin == c.end) give_back(std::move(connection));
      return response;
    } catch (const TransportError&) {
      throw;
    } catch (const Error& e) {
      // The parser's and the sink's errors, with the request they belong to.
      errc code = e.code().category() == error_category() ? static_cast<errc>(e.code().value()) : errc::io_error;
      fail(code, request, workspace::detail::message_of(e), progress);
    } catch (const std::exception& e) {
      fail(errc::io_error, request, e.what(), progress);  // a throwing BodySink or Progress
    }
  }

  Response receive(connection_type& c, const Request& request, const RequestOptions& options,
                   detail::Clock::time_point deadline, TransportError::Progress& progress) {
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
      std::error_code ec;
      const auto idle = options.idle_timeout.value_or(state_->options.timeouts.idle);
      const auto until = detail::earliest(deadline, detail::deadline_after(idle));
      const std::size_t n = detail::read_some(c.ctx, *c.stream, c.buffer.data() + c.end, c.buffer.size() - c.end, until, ec);
      if (ec == asio::error::eof) {
        parser.finish_eof();  // throws unless the body runs to the connection's end
        break;
      }
      if (ec == asio::error::timed_out) {
        const bool whole = detail::Clock::now() >= deadline;
        fail(errc::timed_out, request,
             whole ? "the request's deadline passed"
                   : (progress.response_started ? "no data from the server for " : "no response from the server for ") + idle_text(idle),
             progress);
      }
      if (ec) fail(errc::connection_failed, request, "receiving the response: " + ec.message(), progress);
      progress.response_started = true;
      c.end += n;
    }
    auto& head = parser.head();
    response.status = head.status;
    response.reason = std::move(head.reason);
    response.headers = std::move(head.headers);
    return response;
  }

  std::unique_ptr<State> state_;
  std::tuple<Policies...> policies_;
};

}  // namespace http
WORKSPACE_NAMESPACE_END
