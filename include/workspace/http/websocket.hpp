// http::WebSocket<Transport>: a small RFC 6455 client over Client::upgrade(), enough to subscribe to
// a server's event stream (the OpenHands agent server's /sockets/bash-events, for one).
//
//   http::Client<http::Tcp> client("http://127.0.0.1:8000");
//   auto ws = http::WebSocket<http::Tcp>::connect(client, "/sockets/bash-events", {}, deadline);
//   ws.send_text(R"({"type":"auth","session_api_key":"..."})", deadline);
//   while (auto message = ws.receive(Clock::now() + 1s)) handle(*message);
//
// What it does: the opening handshake (checked: 101, Upgrade, Connection, Sec-WebSocket-Accept, no
// extension the client did not offer), masked client frames, server frames of any length
// (7-, 16- and 64-bit), fragmented messages, pings answered with pongs (also between fragments),
// pongs skipped, the closing handshake, and limits (max_message_size()). What it does not:
// extensions (permessage-deflate), UTF-8 validation of text messages, sending fragmented
// messages.
//
// Deadlines never lose bytes: receive() keeps a partial frame and a partial message buffered
// when its deadline passes, and the next call goes on from there. A read starts only once the
// socket is readable, and a read or a control reply (pong, close) that has started may run up to
// io_grace past the caller's deadline rather than drop the connection half-way.
//
// Coroutines use co_connect() and the co_ calls; connect() makes a socket for the blocking calls.
// Not thread-safe: one thread at a time (as UpgradedConnection). Over TLS, records already
// read from the socket but still inside the TLS layer count as readable (see
// UpgradedConnection::wait_readable).
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/detail/base64.hpp>
#include <workspace/core/detail/random.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/detail/websocket_frame.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/version.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {


template <class Transport>
class WebSocket {
 public:
  using Clock = std::chrono::steady_clock;

  static constexpr std::size_t default_max_message_size = std::size_t{64} << 20;
  // How far past the caller's deadline a started read or a control reply may run (see above).
  static constexpr std::chrono::seconds io_grace{10};
  // How long close() waits to hand its close frame to the socket.
  static constexpr std::chrono::seconds close_grace{2};

  // The opening handshake through client.co_upgrade(): GET `target` with Upgrade: websocket,
  // Connection: Upgrade, Sec-WebSocket-Version: 13 and a random Sec-WebSocket-Key, plus `headers`
  // (any Sec-WebSocket-Key, -Version, -Accept or -Extensions among them is replaced or dropped: no
  // extension is supported). Sec-WebSocket-Protocol passes through and the server's choice is
  // checked against it. Throws the client's TransportError when the exchange fails,
  // check_status()'s Error for a non-2xx answer, Error(protocol_error) for a 2xx other than 101
  // or a 101 that is not a valid WebSocket accept, Error(timed_out) when the deadline has passed.
  // A socket made so takes the co_ calls; connect() makes one for the blocking calls.
  template <class HttpClient>
  static Task<WebSocket> co_connect(HttpClient& client, std::string target, Headers headers, Clock::time_point deadline) {
    auto [request, key, where, options] = handshake_request(client, std::move(target), std::move(headers), deadline);
    const std::string offered = request.headers.get("Sec-WebSocket-Protocol");
    auto connection = co_await client.co_upgrade(std::move(request), options);
    co_return accept(std::move(connection), key, offered, std::move(where));
  }
  template <class HttpClient>
  static WebSocket connect(HttpClient& client, std::string target, Headers headers, Clock::time_point deadline) {
    auto [request, key, where, options] = handshake_request(client, std::move(target), std::move(headers), deadline);
    const std::string offered = request.headers.get("Sec-WebSocket-Protocol");
    auto connection = client.upgrade(std::move(request), options);
    return accept(std::move(connection), key, offered, std::move(where));
  }

  WebSocket(WebSocket&&) noexcept = default;
  WebSocket& operator=(WebSocket&& other) noexcept {
    if (this != &other) {
      close();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;
  // Closes as close() does.
  ~WebSocket() { close(); }

  // One text message in one masked frame. Once the socket is closed, throws what closed it
  // (Error(bad_state) after close(), the server's close as receive() threw it, ...);
  // Error(timed_out) or Error(connection_failed) when the write fails (the socket is then closed).
  Task<void> co_send_text(std::string_view text, Clock::time_point deadline) {
    return send_frame(detail::WebSocketOpcode::text, text, deadline, "sending a text message");
  }
  Task<void> co_send_binary(std::string_view data, Clock::time_point deadline) {
    return send_frame(detail::WebSocketOpcode::binary, data, deadline, "sending a binary message");
  }
  // A ping (payload up to 125 bytes); the server's pong is skipped by receive().
  Task<void> co_send_ping(std::string_view payload, Clock::time_point deadline) {
    if (payload.size() > 125) throw Error(errc::invalid_argument, "websocket ping payload over 125 bytes");
    return send_frame(detail::WebSocketOpcode::ping, payload, deadline, "sending a ping");
  }

  // The next complete data message, text or binary (fragments reassembled; see
  // last_message_binary()), answering pings with pongs and skipping pongs on the way.
  // std::nullopt when the deadline passes first; what arrived of the message stays buffered for
  // the next call. Buffered frames are handled even when the deadline has already passed.
  // A close frame from the server is answered (unless close() already sent one), the socket
  // closed, and Error(connection_failed, "websocket closed by the server: <code> <reason> ...")
  // thrown; close_code() then holds the code (1005 when the frame had none). A connection that
  // ends without a close frame throws connection_failed too, with close_code() 1006.
  // Error(protocol_error) for a frame RFC 6455 forbids (masked, reserved bits, unknown opcode,
  // fragmented or over-125-byte control frame, a continuation with no message, a new message
  // inside another) and Error(io_error) for a message over max_message_size(): the client then
  // sends close 1002 or 1009 and closes the socket. Error(timed_out) only when a read that had
  // started could not finish within io_grace.
  Task<std::optional<std::string>> co_receive(Clock::time_point deadline) {
    auto& s = require_open();
    for (;;) {
      while (s.end - s.begin >= 2) {
        std::optional<Violation> violation;
        Frame frame;
        try {
          frame = take_frame();
        } catch (const Violation& v) {
          violation = v;
        }
        if (violation) co_await fail(violation->error, violation->close_code, violation->why);
        switch (frame.kind) {
          case Frame::incomplete: break;
          case Frame::message: co_return std::move(frame.payload);
          case Frame::ping: co_await reply(detail::WebSocketOpcode::pong, frame.payload, deadline); continue;
          case Frame::close: co_await on_close(frame.payload, deadline); break;
          case Frame::other: continue;
        }
        break;
      }
      if (!co_await fill(deadline)) co_return std::nullopt;
    }
  }

  // Whether receive() may make progress now: a complete frame is buffered, or the socket is
  // readable (or the socket is closed, so receive() reports why) before the deadline. True does
  // not promise a message: the frame may be a ping or a pong, or a part of a message.
  Task<bool> co_wait_readable(Clock::time_point deadline) {
    if (!impl_ || !impl_->open) co_return true;
    if (frame_ready()) co_return true;
    co_return co_await impl_->connection.co_wait_readable(deadline);
  }

  // Sends a close frame with `code` (unless one was sent), waiting at most close_grace for the
  // socket to take it, then closes the stream. Idempotent; never throws.
  Task<void> co_close(std::uint16_t code = 1000) {
    if (!impl_ || !impl_->open) co_return;
    co_await send_close(code);
    impl_->open = false;
    impl_->connection.close();
  }

  // The blocking forms, for a socket connect() made.
  void send_text(std::string_view text, Clock::time_point deadline) {
    blocking([&] { return co_send_text(text, deadline); });
  }
  void send_binary(std::string_view data, Clock::time_point deadline) {
    blocking([&] { return co_send_binary(data, deadline); });
  }
  void send_ping(std::string_view payload, Clock::time_point deadline) {
    blocking([&] { return co_send_ping(payload, deadline); });
  }
  std::optional<std::string> receive(Clock::time_point deadline) {
    require_open();
    return blocking([&] { return co_receive(deadline); });
  }
  bool wait_readable(Clock::time_point deadline) {
    if (!impl_ || !impl_->open || frame_ready()) return true;
    return blocking([&] { return co_wait_readable(deadline); });
  }
  // Best effort: as co_close() on a socket connect() made; on one co_connect() made (whose I/O
  // needs its own executor) the stream is closed without a close frame: co_close() sends one.
  void close(std::uint16_t code = 1000) noexcept {
    if (!impl_ || !impl_->open) return;
    if (impl_->connection.has_own_context()) {
      try {
        blocking([&] { return co_close(code); });
      } catch (...) {  // best effort
      }
    }
    impl_->open = false;
    impl_->connection.close();
  }

  bool is_open() const noexcept { return impl_ && impl_->open; }
  // The code of the server's close frame (1005 when it had none; 1006 when the connection ended
  // without one); nullopt while none arrived.
  std::optional<std::uint16_t> close_code() const noexcept { return impl_ ? impl_->close_code : std::nullopt; }
  // The reason text of the server's close frame ("" when none).
  const std::string& close_reason() const noexcept {
    static const std::string none;
    return impl_ ? impl_->close_reason : none;
  }
  // Whether the message receive() returned last was binary (false: text).
  bool last_message_binary() const noexcept { return impl_ && impl_->last_binary; }
  // The 101 response (headers such as Sec-WebSocket-Protocol).
  const Response& response() const noexcept { return impl_->connection.response(); }

  std::size_t max_message_size() const noexcept { return impl_->max_message_size; }
  void set_max_message_size(std::size_t bytes) noexcept { impl_->max_message_size = bytes; }

 private:
  struct State {
    State(UpgradedConnection<Transport> c, std::string w) : connection(std::move(c)), where(std::move(w)) {}
    UpgradedConnection<Transport> connection;
    std::string where;  // "websocket GET /path on http://host:port", for messages
    bool open = true;
    bool close_sent = false;
    std::optional<std::uint16_t> close_code{};
    std::string close_reason{};
    std::string closed_message{};  // why the socket closed, repeated by later calls
    errc closed_errc = errc::bad_state;
    std::size_t max_message_size = default_max_message_size;
    // Unparsed bytes are [begin, end) of buffer.
    std::vector<char> buffer = std::vector<char>(64 * 1024);
    std::size_t begin = 0;
    std::size_t end = 0;
    // The message being reassembled from fragments.
    bool in_message = false;
    bool message_binary = false;
    bool last_binary = false;
    std::string message{};
    // Frames go one at a time (a reply from receive() may meet a send): writers wait on write_done.
    bool writing = false;
    std::optional<asio::steady_timer> write_done{};
  };

  struct FrameHead {
    bool fin = false;
    detail::WebSocketOpcode opcode{};
    std::uint64_t length = 0;
    std::size_t head_size = 0;
  };

  // What the buffered bytes held.
  struct Frame {
    enum Kind { incomplete, message, ping, close, other } kind = incomplete;
    std::string payload{};
  };

  // A frame RFC 6455 forbids: the socket fails with close code `close_code`.
  struct Violation {
    errc error;
    std::uint16_t close_code;
    std::string why;
  };

  struct Handshake {
    Request request;
    std::string key;
    std::string where;
    RequestOptions options;
  };

  WebSocket(UpgradedConnection<Transport> connection, std::string where)
      : impl_(std::make_unique<State>(std::move(connection), std::move(where))) {}

  template <class HttpClient>
  static Handshake handshake_request(HttpClient& client, std::string target, Headers headers, Clock::time_point deadline) {
    static_assert(std::is_same_v<typename HttpClient::transport_type, Transport>,
                  "WebSocket<Transport> needs a Client<Transport, ...> of the same transport");
    std::array<unsigned char, 16> nonce{};
    detail::websocket_random(nonce.data(), nonce.size());
    std::string key = workspace::detail::base64_encode(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
    headers.erase("Sec-WebSocket-Extensions");
    headers.erase("Sec-WebSocket-Accept");
    headers.set("Upgrade", "websocket");
    headers.set("Connection", "Upgrade");
    headers.set("Sec-WebSocket-Version", "13");
    headers.set("Sec-WebSocket-Key", key);
    Request request{.method = "GET", .target = std::move(target), .headers = std::move(headers)};
    std::string where = "websocket " + client.describe(request);
    RequestOptions options;
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) throw Error(errc::timed_out, where + ": the deadline passed before the handshake");
      options.timeout = left;
    }
    return Handshake{std::move(request), std::move(key), std::move(where), std::move(options)};
  }

  static WebSocket accept(UpgradedConnection<Transport> connection, const std::string& key,
                          const std::string& offered_protocols, std::string where) {
    const Response& response = connection.response();
    if (!connection.upgraded()) {
      check_status(response, where);  // throws for a non-2xx answer
      throw Error(errc::protocol_error,
                  where + ": the server answered " + std::to_string(response.status) +
                      (response.reason.empty() ? "" : " " + response.reason) + " instead of 101 Switching Protocols",
                  response.status, detail::server_message(response));
    }
    const auto refuse = [&](const std::string& why) {
      connection.close();
      throw Error(errc::protocol_error, where + ": " + why, response.status, {});
    };
    if (!detail::has_token(response.headers.get("Upgrade"), "websocket"))
      refuse("the 101 response does not upgrade to websocket (Upgrade: " + response.headers.get("Upgrade") + ")");
    if (!detail::has_token(response.headers.get("Connection"), "upgrade"))
      refuse("the 101 response lacks Connection: Upgrade");
    const std::string* accepted = response.headers.find("Sec-WebSocket-Accept");
    if (!accepted) refuse("the 101 response lacks Sec-WebSocket-Accept");
    if (detail::trim_ows(*accepted) != detail::websocket_accept(key))
      refuse("Sec-WebSocket-Accept does not match the key sent (got \"" + *accepted + "\")");
    if (const std::string* extensions = response.headers.find("Sec-WebSocket-Extensions");
        extensions && !detail::trim_ows(*extensions).empty())
      refuse("the server enabled extensions that were not offered: " + *extensions);
    if (const std::string* chosen = response.headers.find("Sec-WebSocket-Protocol"); chosen) {
      const std::string_view protocol = detail::trim_ows(*chosen);
      if (offered_protocols.empty() || !detail::has_token(offered_protocols, protocol))
        refuse("the server chose subprotocol \"" + std::string(protocol) + "\", which was not offered");
    }
    return WebSocket(std::move(connection), std::move(where));
  }

  template <class Make>
  auto blocking(Make&& make) {
    if (!impl_) throw Error(errc::bad_state, "websocket: used after being moved from");
    return impl_->connection.blocking(std::forward<Make>(make));
  }

  State& require_open() {
    if (!impl_) throw Error(errc::bad_state, "websocket: used after being moved from");
    if (!impl_->open) throw_closed();
    return *impl_;
  }

  [[noreturn]] void throw_closed() const {
    const auto& s = *impl_;
    if (s.closed_message.empty()) throw Error(errc::bad_state, s.where + ": the websocket is closed");
    throw Error(s.closed_errc, s.closed_message);
  }

  // Marks the socket closed for `why`, closes the stream and throws.
  [[noreturn]] void end_with(errc code, std::string why) {
    auto& s = *impl_;
    s.open = false;
    s.connection.close();
    s.closed_errc = code;
    s.closed_message = std::move(why);
    throw Error(code, s.closed_message);
  }

  // A close frame with `code`, unless one was sent; best effort, waiting at most close_grace.
  Task<void> send_close(std::uint16_t code) {
    if (impl_->close_sent) co_return;
    impl_->close_sent = true;
    try {
      co_await write_frame(detail::WebSocketOpcode::close, detail::websocket_close_payload(code), Clock::now() + close_grace);
    } catch (...) {  // best effort
    }
  }

  // Fails the connection (RFC 6455 §7.1.7): close frame with `code`, then the stream.
  Task<void> fail(errc error, std::uint16_t code, const std::string& why) {
    co_await send_close(code);
    end_with(error, impl_->where + ": " + why);
  }

  Task<void> write_frame(detail::WebSocketOpcode opcode, std::string_view payload, Clock::time_point deadline) {
    std::array<unsigned char, 4> mask{};
    detail::websocket_random(mask.data(), mask.size());
    const std::string frame = detail::websocket_client_frame(opcode, payload, true, mask);
    State& s = *impl_;
    while (s.writing) {  // woken by the writer before, or cancelled (the state says which)
      const auto executor = co_await asio::this_coro::executor;
      if (!s.write_done) s.write_done.emplace(executor);
      s.write_done->expires_at(Clock::time_point::max());
      co_await s.write_done->async_wait(compat::as_tuple(asio::use_awaitable));
      const auto state = co_await asio::this_coro::cancellation_state;
      if (workspace::detail::cancelled(state)) throw Error(asio::error::operation_aborted, s.where + ": cancelled");
    }
    s.writing = true;
    std::exception_ptr failure;
    try {
      co_await s.connection.co_write(frame, deadline);
    } catch (...) {
      failure = std::current_exception();
    }
    s.writing = false;
    if (s.write_done) s.write_done->cancel();
    if (failure) std::rethrow_exception(failure);
  }

  Task<void> send_frame(detail::WebSocketOpcode opcode, std::string_view payload, Clock::time_point deadline,
                        const char* what) {
    auto& s = require_open();
    std::optional<Error> failed;
    try {
      co_await write_frame(opcode, payload, deadline);
    } catch (const Error& e) {
      failed.emplace(e);
    }
    if (failed) {
      const errc code = failed->code() == errc::timed_out ? errc::timed_out : errc::connection_failed;
      end_with(code, s.where + ": " + what + ": " + workspace::detail::message_of(*failed));
    }
  }

  // A control reply (pong, close) from inside receive(): may run io_grace past `deadline`.
  Task<void> reply(detail::WebSocketOpcode opcode, std::string payload, Clock::time_point deadline) {
    std::optional<Error> failed;
    try {
      co_await write_frame(opcode, payload, std::max(deadline, Clock::now() + io_grace));
    } catch (const Error& e) {
      failed.emplace(e);
    }
    if (failed) {
      const errc code = failed->code() == errc::timed_out ? errc::timed_out : errc::connection_failed;
      end_with(code, impl_->where + ": answering a " +
                         (opcode == detail::WebSocketOpcode::pong ? std::string("ping") : std::string("close")) + ": " +
                         workspace::detail::message_of(*failed));
    }
  }

  [[noreturn]] static void violate(errc error, std::uint16_t close_code, std::string why) {
    throw Violation{error, close_code, std::move(why)};
  }

  // The head of the buffered frame, validated (throws Violation); nullopt while incomplete.
  std::optional<FrameHead> parse_head() {
    auto& s = *impl_;
    const std::size_t available = s.end - s.begin;
    if (available < 2) return std::nullopt;
    const auto* p = reinterpret_cast<const unsigned char*>(s.buffer.data() + s.begin);
    FrameHead head;
    head.fin = (p[0] & 0x80) != 0;
    const unsigned opcode = p[0] & 0x0Fu;
    if ((p[0] & 0x70) != 0) violate(errc::protocol_error, 1002, "the server set reserved bits (no extension was negotiated)");
    if ((p[1] & 0x80) != 0) violate(errc::protocol_error, 1002, "the server sent a masked frame");
    switch (opcode) {
      case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA: break;
      default: violate(errc::protocol_error, 1002, "the server sent a frame with unknown opcode " + std::to_string(opcode));
    }
    head.opcode = static_cast<detail::WebSocketOpcode>(opcode);
    const bool control = (opcode & 0x8u) != 0;
    const unsigned short_length = p[1] & 0x7Fu;
    if (control) {
      if (!head.fin) violate(errc::protocol_error, 1002, "the server sent a fragmented control frame");
      if (short_length > 125) violate(errc::protocol_error, 1002, "the server sent a control frame over 125 bytes");
    }
    if (short_length < 126) {
      head.length = short_length;
      head.head_size = 2;
    } else if (short_length == 126) {
      if (available < 4) return std::nullopt;
      head.length = (std::uint64_t{p[2]} << 8) | p[3];
      head.head_size = 4;
    } else {
      if (available < 10) return std::nullopt;
      if ((p[2] & 0x80) != 0) violate(errc::protocol_error, 1002, "the server sent a frame length with the top bit set");
      for (std::size_t i = 2; i < 10; ++i) head.length = (head.length << 8) | p[i];
      head.head_size = 10;
    }
    if (!control) {
      if (head.opcode == detail::WebSocketOpcode::continuation && !s.in_message)
        violate(errc::protocol_error, 1002, "the server sent a continuation frame outside a message");
      if (head.opcode != detail::WebSocketOpcode::continuation && s.in_message)
        violate(errc::protocol_error, 1002, "the server started a new message inside a fragmented one");
      const std::uint64_t total = std::uint64_t{s.message.size()} + head.length;
      if (head.length > s.max_message_size || total > s.max_message_size)
        violate(errc::io_error, 1009,
                "the server sent a message over max_message_size (" + std::to_string(s.max_message_size) + " bytes)");
    }
    return head;
  }

  // A complete frame is buffered. A violation counts as ready: receive() reports it.
  bool frame_ready() {
    auto& s = *impl_;
    if (s.end - s.begin < 2) return false;
    try {
      const auto head = parse_head();
      return head && s.end - s.begin - head->head_size >= head->length;
    } catch (const Violation&) {
      return true;
    }
  }

  // Takes the buffered frame if it is complete (else Frame::incomplete, nothing consumed).
  Frame take_frame() {
    auto& s = *impl_;
    const auto head = parse_head();
    if (!head || s.end - s.begin - head->head_size < head->length) return {};
    const auto length = static_cast<std::size_t>(head->length);  // bounded by the buffer
    const std::string_view payload(s.buffer.data() + s.begin + head->head_size, length);
    s.begin += head->head_size + length;
    switch (head->opcode) {
      case detail::WebSocketOpcode::ping: return {Frame::ping, std::string(payload)};
      case detail::WebSocketOpcode::pong: return {Frame::other, {}};
      case detail::WebSocketOpcode::close: return {Frame::close, std::string(payload)};
      default: break;
    }
    if (head->opcode != detail::WebSocketOpcode::continuation) {
      s.in_message = true;
      s.message_binary = head->opcode == detail::WebSocketOpcode::binary;
      s.message.clear();
    }
    s.message.append(payload);
    if (!head->fin) return {Frame::other, {}};
    s.in_message = false;
    s.last_binary = s.message_binary;
    Frame frame{Frame::message, std::move(s.message)};
    s.message = std::string();
    return frame;
  }

  Task<void> on_close(std::string payload, Clock::time_point deadline) {
    auto& s = *impl_;
    if (payload.size() == 1) co_await fail(errc::protocol_error, 1002, "the server sent a close frame with a 1-byte payload");
    std::uint16_t code = 1005;
    if (payload.size() >= 2) {
      code = static_cast<std::uint16_t>((static_cast<unsigned>(static_cast<unsigned char>(payload[0])) << 8) |
                                        static_cast<unsigned char>(payload[1]));
      s.close_reason = payload.substr(2);
    }
    s.close_code = code;
    if (!s.close_sent) {
      s.close_sent = true;
      try {
        co_await reply(detail::WebSocketOpcode::close, detail::websocket_close_payload(code), deadline);
      } catch (const Error&) {  // the server is leaving anyway; report its close, not our echo
      }
    }
    std::string why = "websocket closed by the server: " + std::to_string(code);
    if (!s.close_reason.empty()) why += " " + s.close_reason;
    end_with(errc::connection_failed, why + " (" + s.where + ")");
  }

  // Reads more bytes once the socket is readable; false when the deadline passed first.
  Task<bool> fill(Clock::time_point deadline) {
    auto& s = *impl_;
    if (!co_await s.connection.co_wait_readable(deadline)) co_return false;
    if (s.begin == s.end) {
      s.begin = s.end = 0;
      if (s.buffer.size() > (std::size_t{4} << 20)) s.buffer = std::vector<char>(64 * 1024);
    } else if (s.begin > 0 && (s.buffer.size() - s.end < 64 * 1024 || s.begin >= s.buffer.size() / 2)) {
      std::memmove(s.buffer.data(), s.buffer.data() + s.begin, s.end - s.begin);
      s.end -= s.begin;
      s.begin = 0;
    }
    if (s.buffer.size() - s.end < 64 * 1024) s.buffer.resize(std::max(s.end + 64 * 1024, s.buffer.size() * 2));
    std::optional<Error> failed;
    std::size_t n = 0;
    try {
      n = co_await s.connection.co_read_some(s.buffer.data() + s.end, s.buffer.size() - s.end,
                                             std::max(deadline, Clock::now() + io_grace));
    } catch (const Error& e) {
      failed.emplace(e);
    }
    if (failed && failed->code() == errc::timed_out)
      end_with(errc::timed_out, s.where + ": a read that had started did not finish (the deadline and io_grace passed)");
    if (failed) end_with(errc::connection_failed, s.where + ": reading: " + workspace::detail::message_of(*failed));
    if (n == 0) {
      s.close_code = 1006;
      end_with(errc::connection_failed, s.where + ": the server closed the connection without a close frame");
    }
    s.end += n;
    co_return true;
  }

  std::unique_ptr<State> impl_;
};

// WebSocket<T>::connect for a Client<T, ...>, without naming T.
template <class HttpClient>
WebSocket<typename HttpClient::transport_type> connect_websocket(HttpClient& client, std::string target,
                                                                 Headers headers,
                                                                 std::chrono::steady_clock::time_point deadline) {
  return WebSocket<typename HttpClient::transport_type>::connect(client, std::move(target), std::move(headers),
                                                                 deadline);
}

}  // namespace http
WORKSPACE_NAMESPACE_END
