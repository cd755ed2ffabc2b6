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
// Not thread-safe: one thread at a time (as UpgradedConnection). Over TLS, records already
// read from the socket but still inside the TLS layer count as readable (see
// UpgradedConnection::wait_readable).
#pragma once

#include <workspace/core/detail/base64.hpp>
#include <workspace/core/detail/random.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/version.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
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

namespace detail {

// RFC 6455 §5.2 opcodes.
enum class WebSocketOpcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// base64(SHA-1(key + GUID)): the Sec-WebSocket-Accept a server must answer to `key`.
inline std::string websocket_accept(std::string_view key) {
  std::string input(key);
  input += websocket_guid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1)
    throw Error(errc::io_error, "websocket handshake: SHA-1 is not available");
  return workspace::detail::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), size));
}

// n random bytes: masks and keys must be unpredictable to the network path (RFC 6455 §10.3).
inline void websocket_random(unsigned char* out, std::size_t n) { workspace::detail::random_fill(out, n); }

// One client frame: masked with `mask`, FIN set when `fin`.
inline std::string websocket_client_frame(WebSocketOpcode opcode, std::string_view payload, bool fin,
                                          const std::array<unsigned char, 4>& mask) {
  std::string frame;
  frame.reserve(payload.size() + 14);
  frame += static_cast<char>((fin ? 0x80u : 0x00u) | static_cast<unsigned>(opcode));
  const std::uint64_t size = payload.size();
  if (size <= 125) {
    frame += static_cast<char>(0x80u | static_cast<unsigned>(size));
  } else if (size <= 0xFFFF) {
    frame += static_cast<char>(0x80u | 126u);
    frame += static_cast<char>((size >> 8) & 0xFF);
    frame += static_cast<char>(size & 0xFF);
  } else {
    frame += static_cast<char>(0x80u | 127u);
    for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>((size >> shift) & 0xFF);
  }
  for (const unsigned char m : mask) frame += static_cast<char>(m);
  const std::size_t at = frame.size();
  frame.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i)
    frame[at + i] = static_cast<char>(static_cast<unsigned char>(frame[at + i]) ^ mask[i & 3]);
  return frame;
}

inline std::string websocket_close_payload(std::uint16_t code, std::string_view reason = {}) {
  // 1005, 1006 and 1015 name the absence of a code; they never go on the wire (RFC 6455 §7.4.1).
  if (code == 1005 || code == 1006 || code == 1015) return {};
  std::string payload;
  payload += static_cast<char>((code >> 8) & 0xFF);
  payload += static_cast<char>(code & 0xFF);
  payload.append(reason.substr(0, 123));
  return payload;
}

}  // namespace detail

template <class Transport>
class WebSocket {
 public:
  using Clock = std::chrono::steady_clock;

  static constexpr std::size_t default_max_message_size = std::size_t{64} << 20;
  // How far past the caller's deadline a started read or a control reply may run (see above).
  static constexpr std::chrono::seconds io_grace{10};
  // How long close() waits to hand its close frame to the socket.
  static constexpr std::chrono::seconds close_grace{2};

  // The opening handshake through client.upgrade(): GET `target` with Upgrade: websocket,
  // Connection: Upgrade, Sec-WebSocket-Version: 13 and a random Sec-WebSocket-Key, plus `headers`
  // (any Sec-WebSocket-Key, -Version, -Accept or -Extensions among them is replaced or dropped: no
  // extension is supported). Sec-WebSocket-Protocol passes through and the server's choice is
  // checked against it. Throws the client's TransportError when the exchange fails,
  // check_status()'s Error for a non-2xx answer, Error(protocol_error) for a 2xx other than 101
  // or a 101 that is not a valid WebSocket accept, Error(timed_out) when the deadline has passed.
  template <class HttpClient>
  static WebSocket connect(HttpClient& client, std::string target, Headers headers, Clock::time_point deadline) {
    static_assert(std::is_same_v<typename HttpClient::transport_type, Transport>,
                  "WebSocket<Transport> needs a Client<Transport, ...> of the same transport");
    std::array<unsigned char, 16> nonce{};
    detail::websocket_random(nonce.data(), nonce.size());
    const std::string key = workspace::detail::base64_encode(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));

    headers.erase("Sec-WebSocket-Extensions");
    headers.erase("Sec-WebSocket-Accept");
    headers.set("Upgrade", "websocket");
    headers.set("Connection", "Upgrade");
    headers.set("Sec-WebSocket-Version", "13");
    headers.set("Sec-WebSocket-Key", key);
    const std::string offered_protocols = headers.get("Sec-WebSocket-Protocol");
    Request request{.method = "GET", .target = std::move(target), .headers = std::move(headers)};
    const std::string where = "websocket " + client.describe(request);

    RequestOptions options;
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) throw Error(errc::timed_out, where + ": the deadline passed before the handshake");
      options.timeout = left;
    }
    UpgradedConnection<Transport> connection = client.upgrade(std::move(request), options);
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
    const std::string* accept = response.headers.find("Sec-WebSocket-Accept");
    if (!accept) refuse("the 101 response lacks Sec-WebSocket-Accept");
    if (detail::trim_ows(*accept) != detail::websocket_accept(key))
      refuse("Sec-WebSocket-Accept does not match the key sent (got \"" + *accept + "\")");
    if (const std::string* extensions = response.headers.find("Sec-WebSocket-Extensions");
        extensions && !detail::trim_ows(*extensions).empty())
      refuse("the server enabled extensions that were not offered: " + *extensions);
    if (const std::string* chosen = response.headers.find("Sec-WebSocket-Protocol"); chosen) {
      const std::string_view protocol = detail::trim_ows(*chosen);
      if (offered_protocols.empty() || !detail::has_token(offered_protocols, protocol))
        refuse("the server chose subprotocol \"" + std::string(protocol) + "\", which was not offered");
    }
    return WebSocket(std::move(connection), where);
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
  void send_text(std::string_view text, Clock::time_point deadline) {
    send_frame(detail::WebSocketOpcode::text, text, deadline, "sending a text message");
  }
  void send_binary(std::string_view data, Clock::time_point deadline) {
    send_frame(detail::WebSocketOpcode::binary, data, deadline, "sending a binary message");
  }
  // A ping (payload up to 125 bytes); the server's pong is skipped by receive().
  void send_ping(std::string_view payload, Clock::time_point deadline) {
    if (payload.size() > 125) throw Error(errc::invalid_argument, "websocket ping payload over 125 bytes");
    send_frame(detail::WebSocketOpcode::ping, payload, deadline, "sending a ping");
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
  std::optional<std::string> receive(Clock::time_point deadline) {
    auto& s = require_open();
    for (;;) {
      while (s.end - s.begin >= 2) {
        if (auto message = take_frame(deadline)) return message;
        if (!impl_->open) throw_closed();
        if (!frame_ready()) break;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  // Whether receive() may make progress now: a complete frame is buffered, or the socket is
  // readable (or the socket is closed, so receive() reports why) before the deadline. True does
  // not promise a message: the frame may be a ping or a pong, or a part of a message.
  bool wait_readable(Clock::time_point deadline) {
    if (!impl_ || !impl_->open) return true;
    if (frame_ready()) return true;
    return impl_->connection.wait_readable(deadline);
  }

  // Best effort: sends a close frame with `code` (unless one was sent), waiting at most
  // close_grace for the socket to take it, then closes the stream. Idempotent; never throws.
  void close(std::uint16_t code = 1000) noexcept {
    if (!impl_ || !impl_->open) return;
    send_close(code);
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
  };

  struct FrameHead {
    bool fin = false;
    detail::WebSocketOpcode opcode{};
    std::uint64_t length = 0;
    std::size_t head_size = 0;
  };

  WebSocket(UpgradedConnection<Transport> connection, std::string where)
      : impl_(std::make_unique<State>(std::move(connection), std::move(where))) {}

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
  void send_close(std::uint16_t code) noexcept {
    if (impl_->close_sent) return;
    impl_->close_sent = true;
    try {
      write_frame(detail::WebSocketOpcode::close, detail::websocket_close_payload(code), Clock::now() + close_grace);
    } catch (...) {  // best effort
    }
  }

  // Fails the connection (RFC 6455 §7.1.7): close frame with `code`, then the stream.
  [[noreturn]] void fail(errc error, std::uint16_t code, const std::string& why) {
    auto& s = *impl_;
    send_close(code);
    end_with(error, s.where + ": " + why);
  }

  void write_frame(detail::WebSocketOpcode opcode, std::string_view payload, Clock::time_point deadline) {
    std::array<unsigned char, 4> mask{};
    detail::websocket_random(mask.data(), mask.size());
    impl_->connection.write(detail::websocket_client_frame(opcode, payload, true, mask), deadline);
  }

  void send_frame(detail::WebSocketOpcode opcode, std::string_view payload, Clock::time_point deadline,
                  const char* what) {
    auto& s = require_open();
    try {
      write_frame(opcode, payload, deadline);
    } catch (const Error& e) {
      const errc code = e.code() == errc::timed_out ? errc::timed_out : errc::connection_failed;
      end_with(code, s.where + ": " + what + ": " + workspace::detail::message_of(e));
    }
  }

  // A control reply (pong, close) from inside receive(): may run io_grace past `deadline`.
  void reply(detail::WebSocketOpcode opcode, std::string_view payload, Clock::time_point deadline) {
    try {
      write_frame(opcode, payload, std::max(deadline, Clock::now() + io_grace));
    } catch (const Error& e) {
      const errc code = e.code() == errc::timed_out ? errc::timed_out : errc::connection_failed;
      end_with(code, impl_->where + ": answering a " +
                         (opcode == detail::WebSocketOpcode::pong ? std::string("ping") : std::string("close")) + ": " +
                         workspace::detail::message_of(e));
    }
  }

  // The head of the buffered frame, validated; nullopt while incomplete.
  std::optional<FrameHead> parse_head() {
    auto& s = *impl_;
    const std::size_t available = s.end - s.begin;
    if (available < 2) return std::nullopt;
    const auto* p = reinterpret_cast<const unsigned char*>(s.buffer.data() + s.begin);
    FrameHead head;
    head.fin = (p[0] & 0x80) != 0;
    const unsigned opcode = p[0] & 0x0Fu;
    if ((p[0] & 0x70) != 0) fail(errc::protocol_error, 1002, "the server set reserved bits (no extension was negotiated)");
    if ((p[1] & 0x80) != 0) fail(errc::protocol_error, 1002, "the server sent a masked frame");
    switch (opcode) {
      case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA: break;
      default: fail(errc::protocol_error, 1002, "the server sent a frame with unknown opcode " + std::to_string(opcode));
    }
    head.opcode = static_cast<detail::WebSocketOpcode>(opcode);
    const bool control = (opcode & 0x8u) != 0;
    const unsigned short_length = p[1] & 0x7Fu;
    if (control) {
      if (!head.fin) fail(errc::protocol_error, 1002, "the server sent a fragmented control frame");
      if (short_length > 125) fail(errc::protocol_error, 1002, "the server sent a control frame over 125 bytes");
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
      if ((p[2] & 0x80) != 0) fail(errc::protocol_error, 1002, "the server sent a frame length with the top bit set");
      for (std::size_t i = 2; i < 10; ++i) head.length = (head.length << 8) | p[i];
      head.head_size = 10;
    }
    if (!control) {
      if (head.opcode == detail::WebSocketOpcode::continuation && !s.in_message)
        fail(errc::protocol_error, 1002, "the server sent a continuation frame outside a message");
      if (head.opcode != detail::WebSocketOpcode::continuation && s.in_message)
        fail(errc::protocol_error, 1002, "the server started a new message inside a fragmented one");
      const std::uint64_t total = std::uint64_t{s.message.size()} + head.length;
      if (head.length > s.max_message_size || total > s.max_message_size)
        fail(errc::io_error, 1009,
             "the server sent a message over max_message_size (" + std::to_string(s.max_message_size) + " bytes)");
    }
    return head;
  }

  bool frame_ready() {
    auto& s = *impl_;
    if (s.end - s.begin < 2) return false;
    const auto head = parse_head();
    return head && s.end - s.begin - head->head_size >= head->length;
  }

  // Handles the buffered frame if it is complete: a finished message is returned; false-y and
  // unconsumed when the frame is incomplete (then frame_ready() is false).
  std::optional<std::string> take_frame(Clock::time_point deadline) {
    auto& s = *impl_;
    const auto head = parse_head();
    if (!head || s.end - s.begin - head->head_size < head->length) return std::nullopt;
    const auto length = static_cast<std::size_t>(head->length);  // bounded by the buffer
    const std::string_view payload(s.buffer.data() + s.begin + head->head_size, length);
    s.begin += head->head_size + length;
    switch (head->opcode) {
      case detail::WebSocketOpcode::ping:
        reply(detail::WebSocketOpcode::pong, payload, deadline);
        return std::nullopt;
      case detail::WebSocketOpcode::pong:
        return std::nullopt;
      case detail::WebSocketOpcode::close:
        on_close(payload, deadline);
      default: break;
    }
    if (head->opcode != detail::WebSocketOpcode::continuation) {
      s.in_message = true;
      s.message_binary = head->opcode == detail::WebSocketOpcode::binary;
      s.message.clear();
    }
    s.message.append(payload);
    if (!head->fin) return std::nullopt;
    s.in_message = false;
    s.last_binary = s.message_binary;
    std::string message = std::move(s.message);
    s.message = std::string();
    return message;
  }

  [[noreturn]] void on_close(std::string_view payload, Clock::time_point deadline) {
    auto& s = *impl_;
    if (payload.size() == 1) fail(errc::protocol_error, 1002, "the server sent a close frame with a 1-byte payload");
    std::uint16_t code = 1005;
    if (payload.size() >= 2) {
      code = static_cast<std::uint16_t>((static_cast<unsigned>(static_cast<unsigned char>(payload[0])) << 8) |
                                        static_cast<unsigned char>(payload[1]));
      s.close_reason = std::string(payload.substr(2));
    }
    s.close_code = code;
    if (!s.close_sent) {
      s.close_sent = true;
      try {
        reply(detail::WebSocketOpcode::close, detail::websocket_close_payload(code), deadline);
      } catch (const Error&) {  // the server is leaving anyway; report its close, not our echo
      }
    }
    std::string why = "websocket closed by the server: " + std::to_string(code);
    if (!s.close_reason.empty()) why += " " + s.close_reason;
    end_with(errc::connection_failed, why + " (" + s.where + ")");
  }

  // Reads more bytes once the socket is readable; false when the deadline passed first.
  bool fill(Clock::time_point deadline) {
    auto& s = *impl_;
    if (!s.connection.wait_readable(deadline)) return false;
    if (s.begin == s.end) {
      s.begin = s.end = 0;
      if (s.buffer.size() > (std::size_t{4} << 20)) s.buffer = std::vector<char>(64 * 1024);
    } else if (s.begin > 0 && (s.buffer.size() - s.end < 64 * 1024 || s.begin >= s.buffer.size() / 2)) {
      std::memmove(s.buffer.data(), s.buffer.data() + s.begin, s.end - s.begin);
      s.end -= s.begin;
      s.begin = 0;
    }
    if (s.buffer.size() - s.end < 64 * 1024) s.buffer.resize(std::max(s.end + 64 * 1024, s.buffer.size() * 2));
    std::error_code ec;
    const std::size_t n = s.connection.read_some(s.buffer.data() + s.end, s.buffer.size() - s.end,
                                                 std::max(deadline, Clock::now() + io_grace), ec);
    if (ec == errc::timed_out)
      end_with(errc::timed_out, s.where + ": a read that had started did not finish (the deadline and io_grace passed)");
    if (ec) end_with(errc::connection_failed, s.where + ": reading: " + ec.message());
    if (n == 0) {
      s.close_code = 1006;
      end_with(errc::connection_failed, s.where + ": the server closed the connection without a close frame");
    }
    s.end += n;
    return true;
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
