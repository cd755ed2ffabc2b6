// http::WebSocket against a scripted loopback server (raw frames, byte for byte: tests/support/
// scripted_server.hpp), and against the real OpenHands agent server's /sockets/bash-events when
// scripts/run-tests started one (AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY).
#include <workspace/http.hpp>
#include <workspace/http/websocket.hpp>

#include "../support/scripted_server.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

using namespace workspace;
using namespace std::chrono_literals;
namespace ts = workspace_test;

namespace {

using Clock = std::chrono::steady_clock;
using WebSocket = http::WebSocket<http::Tcp>;

http::ClientOptions loopback_options() {
  http::ClientOptions o;
  o.proxy = http::ProxySettings::none();
  o.timeouts.connect = 5s;
  o.timeouts.idle = 10s;
  return o;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// ---------------------------------------------------------------------------------------------
// The server side of the protocol, written here from RFC 6455 independently of the client.

// A server frame: unmasked unless `mask` is given, with the shortest length encoding unless
// `length_bytes` (0, 2 or 8) forces one. `first_byte_extra` ORs bits (RSV) into the first byte.
std::string server_frame(unsigned opcode, std::string_view payload, bool fin = true,
                         std::optional<std::array<unsigned char, 4>> mask = std::nullopt, unsigned first_byte_extra = 0) {
  std::string out;
  out += static_cast<char>((fin ? 0x80u : 0u) | opcode | first_byte_extra);
  const unsigned mask_bit = mask ? 0x80u : 0u;
  const std::uint64_t n = payload.size();
  if (n <= 125) {
    out += static_cast<char>(mask_bit | static_cast<unsigned>(n));
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(mask_bit | 126u);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(mask_bit | 127u);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFF);
  }
  if (mask) {
    for (unsigned char m : *mask) out += static_cast<char>(m);
    for (std::size_t i = 0; i < payload.size(); ++i)
      out += static_cast<char>(static_cast<unsigned char>(payload[i]) ^ (*mask)[i % 4]);
  } else {
    out.append(payload);
  }
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xFF);
  p.append(reason);
  return p;
}

// A frame as the client sent it, unmasked for the test.
struct ClientFrame {
  bool fin = false;
  unsigned rsv = 0;
  unsigned opcode = 0;
  bool masked = false;
  std::array<unsigned char, 4> mask{};
  std::string payload;  // unmasked
  std::string raw;      // exactly as received
};

ClientFrame read_client_frame(ts::Peer& peer) {
  ClientFrame f;
  f.raw = peer.read_exact(2);
  const auto b0 = static_cast<unsigned char>(f.raw[0]);
  const auto b1 = static_cast<unsigned char>(f.raw[1]);
  f.fin = (b0 & 0x80) != 0;
  f.rsv = (b0 >> 4) & 0x7u;
  f.opcode = b0 & 0x0Fu;
  f.masked = (b1 & 0x80) != 0;
  std::uint64_t n = b1 & 0x7Fu;
  if (n == 126 || n == 127) {
    const std::string ext = peer.read_exact(n == 126 ? 2 : 8);
    f.raw += ext;
    n = 0;
    for (char c : ext) n = (n << 8) | static_cast<unsigned char>(c);
  }
  if (f.masked) {
    const std::string key = peer.read_exact(4);
    f.raw += key;
    for (std::size_t i = 0; i < 4; ++i) f.mask[i] = static_cast<unsigned char>(key[i]);
  }
  const std::string body = peer.read_exact(static_cast<std::size_t>(n));
  f.raw += body;
  f.payload = body;
  if (f.masked)
    for (std::size_t i = 0; i < f.payload.size(); ++i)
      f.payload[i] = static_cast<char>(static_cast<unsigned char>(f.payload[i]) ^ f.mask[i % 4]);
  return f;
}

// What the server saw, for the test thread to wait on. The handler never blocks on it.
struct Log {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<ts::RequestHead> request;
  std::vector<ClientFrame> frames;
  std::atomic<int> go{0};  // test thread -> handler: the stage it may move on to

  void set_request(ts::RequestHead head) {
    std::lock_guard lock(mutex);
    request = std::move(head);
    changed.notify_all();
  }
  void add(ClientFrame f) {
    std::lock_guard lock(mutex);
    frames.push_back(std::move(f));
    changed.notify_all();
  }
  // Waits until `n` client frames arrived; false on timeout.
  bool wait_frames(std::size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return frames.size() >= n; });
  }
  ClientFrame frame(std::size_t i) {
    std::lock_guard lock(mutex);
    return frames.at(i);
  }
  ts::RequestHead head() {
    std::lock_guard lock(mutex);
    return request.value();
  }
};

// Handler side: waits (stopping-aware) until the test thread allows `stage`.
bool wait_stage(ts::Peer& peer, Log& log, int stage) {
  while (log.go.load() < stage)
    if (!peer.sleep_for(2ms)) return false;
  return true;
}

// Reads client frames into the log until the client closes the connection.
void record_frames(ts::Peer& peer, Log& log) {
  try {
    for (;;) log.add(read_client_frame(peer));
  } catch (const ts::PeerDisconnected&) {
  }
}

struct HandshakeAnswer {
  std::string accept{};         // empty: the correct one
  std::string extra_headers{};  // "Name: value\r\n"...
  std::string early_bytes{};    // sent in the same write as the 101
  bool omit_upgrade = false;
};

// Reads the upgrade request into the log and answers 101 (correct unless `answer` says otherwise).
bool accept_upgrade(ts::Peer& peer, Log& log, const HandshakeAnswer& answer = {}) {
  auto head = peer.read_request();
  if (!head) return false;
  const std::string key = head->header("Sec-WebSocket-Key");
  log.set_request(*head);
  const std::string accept = answer.accept.empty() ? http::detail::websocket_accept(key) : answer.accept;
  std::string response = "HTTP/1.1 101 Switching Protocols\r\n";
  if (!answer.omit_upgrade) response += "Upgrade: websocket\r\n";
  response += "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n" + answer.extra_headers + "\r\n";
  peer.write(response + answer.early_bytes);
  return true;
}

// A server that upgrades, then runs `script`, then records what the client sends until it
// closes.
struct WsServer {
  std::shared_ptr<Log> log = std::make_shared<Log>();
  ts::ScriptedServer server;
  http::Client<http::Tcp> client;

  explicit WsServer(std::function<void(ts::Peer&, Log&)> script, HandshakeAnswer answer = {})
      : server([log = log, script = std::move(script), answer = std::move(answer)](ts::Peer& peer) {
          if (!accept_upgrade(peer, *log, answer)) return;
          if (script) script(peer, *log);
          record_frames(peer, *log);
        }),
        client(server.url(), loopback_options()) {}

  WebSocket connect(http::Headers headers = {}) {
    return WebSocket::connect(client, "/events", std::move(headers), Clock::now() + 5s);
  }
};

// Runs `call`, expects a workspace::Error with `code`, returns its message.
template <class Call>
std::string expect_error(Call&& call, errc code) {
  try {
    call();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no workspace::Error";
  return {};
}

std::uint16_t code_of(const ClientFrame& f) {
  if (f.payload.size() < 2) return 0;
  return static_cast<std::uint16_t>((static_cast<unsigned char>(f.payload[0]) << 8) |
                                    static_cast<unsigned char>(f.payload[1]));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pieces checked against RFC 6455's own examples.

TEST(WebSocket, AcceptMatchesTheRfcExample) {
  EXPECT_EQ(http::detail::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, ClientFrameMatchesTheRfcMaskedHelloExample) {
  const auto frame = http::detail::websocket_client_frame(http::detail::WebSocketOpcode::text, "Hello", true,
                                                          {0x37, 0xfa, 0x21, 0x3d});
  EXPECT_EQ(frame, std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11));
}

// ---------------------------------------------------------------------------------------------
// The opening handshake.

TEST(WebSocket, HandshakeSendsTheUpgradeRequestAndMessagesRoundTrip) {
  WsServer s([](ts::Peer& peer, Log& log) {
    // Echo two text messages, then stop echoing.
    for (int i = 0; i < 2; ++i) {
      ClientFrame f = read_client_frame(peer);
      log.add(f);
      peer.write(server_frame(0x1, "echo:" + f.payload));
    }
  });
  auto ws = s.connect({{"X-Extra", "yes"}, {"Sec-WebSocket-Key", "caller-chosen-must-be-replaced"}});
  EXPECT_TRUE(ws.is_open());
  EXPECT_EQ(ws.response().status, 101);
  EXPECT_EQ(ws.max_message_size(), std::size_t{64} << 20);

  const auto head = s.log->head();
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/events");
  EXPECT_EQ(head.version, "HTTP/1.1");
  EXPECT_EQ(ts::detail::to_lower(head.header("Upgrade")), "websocket");
  EXPECT_EQ(ts::detail::to_lower(head.header("Connection")), "upgrade");
  EXPECT_EQ(head.header("Sec-WebSocket-Version"), "13");
  EXPECT_EQ(head.header("X-Extra"), "yes");
  EXPECT_EQ(head.header_count("Sec-WebSocket-Key"), 1u);
  const std::string key = head.header("Sec-WebSocket-Key");
  // base64 of 16 bytes: 22 characters and "==".
  ASSERT_EQ(key.size(), 24u) << key;
  EXPECT_EQ(key.substr(22), "==");
  EXPECT_EQ(key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
            std::string::npos);

  ws.send_text("hello", Clock::now() + 5s);
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "echo:hello");
  EXPECT_FALSE(ws.last_message_binary());
  const std::string big(70'000, 'x');  // 64-bit length from the client
  ws.send_text(big, Clock::now() + 5s);
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "echo:" + big);

  ASSERT_TRUE(s.log->wait_frames(2));
  const ClientFrame first = s.log->frame(0);
  EXPECT_TRUE(first.fin);
  EXPECT_EQ(first.rsv, 0u);
  EXPECT_EQ(first.opcode, 0x1u);
  EXPECT_TRUE(first.masked);
  EXPECT_EQ(first.payload, "hello");
  const ClientFrame second = s.log->frame(1);
  EXPECT_EQ(static_cast<unsigned char>(second.raw[1]), 0x80 | 127);
  EXPECT_EQ(second.payload, big);
  EXPECT_NE(first.mask, second.mask);  // a fresh mask per frame (2^-32 chance of a false alarm)
}

TEST(WebSocket, EachConnectionSendsAFreshKey) {
  WsServer s(nullptr);
  auto a = s.connect();
  const std::string first = s.log->head().header("Sec-WebSocket-Key");
  auto b = s.connect();
  EXPECT_NE(first, s.log->head().header("Sec-WebSocket-Key"));
}

TEST(WebSocket, AWrongAcceptIsAProtocolError) {
  WsServer s(nullptr, {.accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="});
  const auto what = expect_error([&] { s.connect(); }, errc::protocol_error);
  EXPECT_TRUE(contains(what, "Sec-WebSocket-Accept does not match")) << what;
  EXPECT_TRUE(contains(what, "GET /events on http://127.0.0.1:")) << what;
}

TEST(WebSocket, A101WithoutUpgradeWebsocketIsAProtocolError) {
  WsServer s(nullptr, {.omit_upgrade = true});
  const auto what = expect_error([&] { s.connect(); }, errc::protocol_error);
  EXPECT_TRUE(contains(what, "does not upgrade to websocket")) << what;
}

TEST(WebSocket, AnExtensionTheClientDidNotOfferIsAProtocolError) {
  WsServer s(nullptr, {.extra_headers = "Sec-WebSocket-Extensions: permessage-deflate\r\n"});
  const auto what = expect_error([&] { s.connect(); }, errc::protocol_error);
  EXPECT_TRUE(contains(what, "permessage-deflate")) << what;
}

TEST(WebSocket, ASubprotocolMustBeOneOffered) {
  WsServer s(nullptr, {.extra_headers = "Sec-WebSocket-Protocol: chat\r\n"});
  expect_error([&] { s.connect(); }, errc::protocol_error);
  auto ws = s.connect({{"Sec-WebSocket-Protocol", "superchat, chat"}});
  EXPECT_EQ(ws.response().headers.get("Sec-WebSocket-Protocol"), "chat");
}

TEST(WebSocket, AnHttpErrorInsteadOf101CarriesTheStatus) {
  ts::ScriptedServer server(ts::respond_sequence(
      {ts::http_response(403, R"({"detail":"Authentication failed"})", {{"Content-Type", "application/json"}}),
       ts::http_response(200, "plain")}));
  http::Client<http::Tcp> client(server.url(), loopback_options());
  try {
    WebSocket::connect(client, "/events?session_api_key=secret-in-query", {}, Clock::now() + 5s);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
    EXPECT_EQ(e.http_status(), 403);
    EXPECT_EQ(e.server_message(), "Authentication failed");
    EXPECT_FALSE(contains(e.what(), "secret-in-query")) << e.what();
  }
  const auto what =
      expect_error([&] { WebSocket::connect(client, "/events", {}, Clock::now() + 5s); }, errc::protocol_error);
  EXPECT_TRUE(contains(what, "200 OK instead of 101")) << what;
}

TEST(WebSocket, APassedDeadlineFailsBeforeConnecting) {
  WsServer s(nullptr);
  expect_error([&] { WebSocket::connect(s.client, "/events", {}, Clock::now() - 1ms); }, errc::timed_out);
  EXPECT_EQ(s.server.connections(), 0u);
}

TEST(WebSocket, ConnectWebsocketDeducesTheTransport) {
  WsServer s([](ts::Peer& peer, Log&) { peer.write(server_frame(0x1, "hi")); });
  auto ws = http::connect_websocket(s.client, "/events", {}, Clock::now() + 5s);
  static_assert(std::is_same_v<decltype(ws), WebSocket>);
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "hi");
}

// ---------------------------------------------------------------------------------------------
// Receiving.

TEST(WebSocket, FramesSentRightBehindThe101AreNotLost) {
  WsServer s(nullptr, {.early_bytes = server_frame(0x1, "first") + server_frame(0x2, std::string("\0\1\2", 3))});
  auto ws = s.connect();
  EXPECT_TRUE(ws.wait_readable(Clock::now()));
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "first");
  EXPECT_FALSE(ws.last_message_binary());
  EXPECT_EQ(ws.receive(Clock::now() + 5s), std::string("\0\1\2", 3));
  EXPECT_TRUE(ws.last_message_binary());
  EXPECT_EQ(ws.receive(Clock::now() + 100ms), std::nullopt);
  EXPECT_TRUE(ws.is_open());
}

TEST(WebSocket, SevenSixteenAndSixtyFourBitLengths) {
  const std::vector<std::size_t> sizes{0, 1, 125, 126, 127, 65'535, 65'536, 300'000};
  WsServer s([&sizes](ts::Peer& peer, Log&) {
    std::string all;
    for (std::size_t n : sizes) all += server_frame(0x2, ts::pattern_bytes(n));
    peer.write_in_pieces(all, 7'777, 0ms);
  });
  auto ws = s.connect();
  for (std::size_t n : sizes) {
    const auto message = ws.receive(Clock::now() + 5s);
    ASSERT_TRUE(message) << n;
    EXPECT_EQ(message->size(), n);
    EXPECT_EQ(*message, ts::pattern_bytes(n));
  }
}

TEST(WebSocket, AFrameTrickledByteByByteArrivesWhole) {
  WsServer s([](ts::Peer& peer, Log&) {
    peer.write_in_pieces(server_frame(0x1, std::string(300, 'z')), 1, 0ms);
  });
  auto ws = s.connect();
  EXPECT_EQ(ws.receive(Clock::now() + 5s), std::string(300, 'z'));
}

TEST(WebSocket, FragmentsAreReassembledAndAPingBetweenThemIsPonged) {
  WsServer s([](ts::Peer& peer, Log&) {
    peer.write(server_frame(0x1, "Hel", false) + server_frame(0x9, "are you there?") +
               server_frame(0x0, std::string(200, 'l'), false) + server_frame(0xA, "unsolicited pong") +
               server_frame(0x0, "o!", true) + server_frame(0x1, "next"));
  });
  auto ws = s.connect();
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "Hel" + std::string(200, 'l') + "o!");
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "next");

  ASSERT_TRUE(s.log->wait_frames(1));
  const ClientFrame pong = s.log->frame(0);
  EXPECT_EQ(pong.opcode, 0xAu);
  EXPECT_TRUE(pong.fin);
  EXPECT_TRUE(pong.masked);
  EXPECT_EQ(pong.payload, "are you there?");
  ASSERT_EQ(pong.raw.size(), 2u + 4u + 14u);
  EXPECT_EQ(static_cast<unsigned char>(pong.raw[0]), 0x8A);
  EXPECT_EQ(static_cast<unsigned char>(pong.raw[1]), 0x80 | 14);
  ws.close();
  ASSERT_TRUE(s.log->wait_frames(2));
  EXPECT_EQ(s.log->frame(1).opcode, 0x8u);
}

TEST(WebSocket, ADeadlineMidMessageLosesNothing) {
  const std::string second = server_frame(0x0, std::string(1'000, 'b'), true);
  WsServer s([&second](ts::Peer& peer, Log& log) {
    // Stage 0: a first fragment and 3 bytes of the second frame's head (16-bit length: 4 bytes).
    peer.write(server_frame(0x1, std::string(500, 'a'), false) + second.substr(0, 3));
    // Stage 1: the rest of the head and part of the payload.
    if (!wait_stage(peer, log, 1)) return;
    peer.write(second.substr(3, 400));
    // Stage 2: the rest.
    if (!wait_stage(peer, log, 2)) return;
    peer.write(second.substr(403));
  });
  auto ws = s.connect();

  auto start = Clock::now();
  EXPECT_EQ(ws.receive(start + 200ms), std::nullopt);
  EXPECT_GE(Clock::now() - start, 200ms);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(ws.wait_readable(Clock::now() + 50ms));
  EXPECT_TRUE(ws.is_open());

  s.log->go = 1;
  start = Clock::now();
  EXPECT_EQ(ws.receive(start + 300ms), std::nullopt);
  EXPECT_GE(Clock::now() - start, 300ms);

  s.log->go = 2;
  EXPECT_TRUE(ws.wait_readable(Clock::now() + 5s));
  EXPECT_EQ(ws.receive(Clock::now() + 5s), std::string(500, 'a') + std::string(1'000, 'b'));
}

TEST(WebSocket, APassedDeadlineStillDeliversWhatHasArrivedAndAnswersPings) {
  WsServer s([](ts::Peer& peer, Log&) { peer.write(server_frame(0x9, "p") + server_frame(0x1, "ready")); });
  auto ws = s.connect();
  ASSERT_TRUE(ws.wait_readable(Clock::now() + 5s));
  ::usleep(50'000);  // let both frames land in the socket
  EXPECT_EQ(ws.receive(Clock::now() - 1s), "ready");
  EXPECT_TRUE(ws.is_open());
  ASSERT_TRUE(s.log->wait_frames(1));
  EXPECT_EQ(s.log->frame(0).opcode, 0xAu);
  EXPECT_EQ(s.log->frame(0).payload, "p");
}

// ---------------------------------------------------------------------------------------------
// Closing.

TEST(WebSocket, ACloseFrameIsAnsweredAndThrowsWithItsCode) {
  WsServer s([](ts::Peer& peer, Log&) {
    peer.write(server_frame(0x1, "last words") + server_frame(0x8, close_payload(4001, "Authentication failed")));
  });
  auto ws = s.connect();
  EXPECT_EQ(ws.receive(Clock::now() + 5s), "last words");
  EXPECT_EQ(ws.close_code(), std::nullopt);
  const auto what = expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::connection_failed);
  EXPECT_TRUE(contains(what, "websocket closed by the server: 4001 Authentication failed")) << what;
  EXPECT_EQ(ws.close_code(), 4001);
  EXPECT_EQ(ws.close_reason(), "Authentication failed");
  EXPECT_FALSE(ws.is_open());
  // Later calls keep saying why.
  const auto again = expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::connection_failed);
  EXPECT_TRUE(contains(again, "4001")) << again;
  expect_error([&] { ws.send_text("too late", Clock::now() + 5s); }, errc::connection_failed);
  EXPECT_TRUE(ws.wait_readable(Clock::now()));

  ASSERT_TRUE(s.log->wait_frames(1));
  const ClientFrame echo = s.log->frame(0);
  EXPECT_EQ(echo.opcode, 0x8u);
  EXPECT_TRUE(echo.masked);
  EXPECT_EQ(code_of(echo), 4001);
  EXPECT_EQ(echo.payload.size(), 2u);
  ws.close();  // nothing more is sent
  EXPECT_TRUE(s.server.errors().empty());
}

TEST(WebSocket, ACloseFrameWithoutACodeReads1005AndIsEchoedEmpty) {
  WsServer s([](ts::Peer& peer, Log&) { peer.write(server_frame(0x8, "")); });
  auto ws = s.connect();
  const auto what = expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::connection_failed);
  EXPECT_TRUE(contains(what, "websocket closed by the server: 1005")) << what;
  EXPECT_EQ(ws.close_code(), 1005);
  ASSERT_TRUE(s.log->wait_frames(1));
  EXPECT_EQ(s.log->frame(0).opcode, 0x8u);
  EXPECT_EQ(s.log->frame(0).payload, "");
}

TEST(WebSocket, TheConnectionEndingWithoutACloseFrameReads1006) {
  WsServer s([](ts::Peer& peer, Log&) {
    peer.write(server_frame(0x1, "part", false));
    peer.close();
  });
  auto ws = s.connect();
  const auto what = expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::connection_failed);
  EXPECT_TRUE(contains(what, "without a close frame")) << what;
  EXPECT_EQ(ws.close_code(), 1006);
}

TEST(WebSocket, CloseSendsACloseFrameWithTheCode) {
  WsServer s(nullptr);
  auto ws = s.connect();
  ws.close(4000);
  EXPECT_FALSE(ws.is_open());
  ws.close();  // idempotent
  ASSERT_TRUE(s.log->wait_frames(1));
  const ClientFrame f = s.log->frame(0);
  EXPECT_EQ(f.opcode, 0x8u);
  EXPECT_TRUE(f.masked);
  EXPECT_EQ(code_of(f), 4000);
  expect_error([&] { ws.receive(Clock::now() + 1s); }, errc::bad_state);
  expect_error([&] { ws.send_text("x", Clock::now() + 1s); }, errc::bad_state);
}

TEST(WebSocket, TheDestructorAndAMoveClose) {
  WsServer s(nullptr);
  {
    auto ws = s.connect();
    WebSocket moved = std::move(ws);
    EXPECT_TRUE(moved.is_open());
    EXPECT_FALSE(ws.is_open());  // NOLINT(bugprone-use-after-move): moved-from is closed
  }
  ASSERT_TRUE(s.log->wait_frames(1));
  EXPECT_EQ(code_of(s.log->frame(0)), 1000);
  EXPECT_FALSE(s.log->wait_frames(2, 200ms));  // exactly one close frame
}

// ---------------------------------------------------------------------------------------------
// What RFC 6455 forbids a server to send: protocol_error, close 1002, socket closed.

struct Violation {
  const char* name;
  std::string bytes;
  const char* message;
};

// Names the case in test listings (ctest shows GetParam()).
void PrintTo(const Violation& v, std::ostream* os) { *os << v.name; }

class WebSocketViolation : public ::testing::TestWithParam<Violation> {};

TEST_P(WebSocketViolation, IsAProtocolErrorAndClosesWith1002) {
  const Violation& v = GetParam();
  WsServer s([bytes = v.bytes](ts::Peer& peer, Log&) { peer.write(bytes); });
  auto ws = s.connect();
  const auto start = Clock::now();
  const auto what = expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::protocol_error);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_TRUE(contains(what, v.message)) << what;
  EXPECT_TRUE(contains(what, "GET /events on http://127.0.0.1:")) << what;
  EXPECT_FALSE(ws.is_open());
  ASSERT_TRUE(s.log->wait_frames(1));
  EXPECT_EQ(s.log->frame(0).opcode, 0x8u);
  EXPECT_EQ(code_of(s.log->frame(0)), 1002);
}

INSTANTIATE_TEST_SUITE_P(
    WebSocket, WebSocketViolation,
    ::testing::Values(
        Violation{"MaskedFrame", server_frame(0x1, "masked", true, std::array<unsigned char, 4>{1, 2, 3, 4}),
                  "masked frame"},
        Violation{"Rsv1", server_frame(0x1, "x", true, std::nullopt, 0x40), "reserved bits"},
        Violation{"Rsv3", server_frame(0x1, "x", true, std::nullopt, 0x10), "reserved bits"},
        Violation{"UnknownDataOpcode", server_frame(0x3, "x"), "unknown opcode 3"},
        Violation{"UnknownControlOpcode", server_frame(0xB, "x"), "unknown opcode 11"},
        Violation{"LongPing", server_frame(0x9, std::string(126, 'p')), "control frame over 125 bytes"},
        Violation{"FragmentedPing", server_frame(0x9, "p", false), "fragmented control frame"},
        Violation{"LoneContinuation", server_frame(0x0, "x"), "continuation frame outside a message"},
        Violation{"MessageInsideMessage", server_frame(0x1, "a", false) + server_frame(0x1, "b"),
                  "new message inside a fragmented one"},
        Violation{"LengthTopBitSet", std::string("\x82\x7f\x80\0\0\0\0\0\0\x01", 10), "top bit set"},
        Violation{"OneByteClosePayload", server_frame(0x8, "x"), "1-byte payload"}),
    [](const ::testing::TestParamInfo<Violation>& param) { return std::string(param.param.name); });

// ---------------------------------------------------------------------------------------------
// Size limits: io_error, close 1009.

TEST(WebSocket, AFrameOverTheLimitFailsFromItsHeadAlone) {
  // Only the head of a 64 MiB + 1 frame is sent: the client must not wait for the payload.
  std::string head("\x82\x7f", 2);
  const std::uint64_t n = (std::uint64_t{64} << 20) + 1;
  for (int shift = 56; shift >= 0; shift -= 8) head += static_cast<char>((n >> shift) & 0xFF);
  WsServer s([head](ts::Peer& peer, Log&) { peer.write(head); });
  auto ws = s.connect();
  const auto what = expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::io_error);
  EXPECT_TRUE(contains(what, "max_message_size (67108864 bytes)")) << what;
  ASSERT_TRUE(s.log->wait_frames(1));
  EXPECT_EQ(code_of(s.log->frame(0)), 1009);
}

TEST(WebSocket, FragmentsAddingUpOverTheLimitFail) {
  WsServer s([](ts::Peer& peer, Log& log) {
    if (!wait_stage(peer, log, 1)) return;
    peer.write(server_frame(0x1, std::string(600, 'a'), false) + server_frame(0x0, std::string(600, 'b'), true));
  });
  auto ws = s.connect();
  ws.set_max_message_size(1'000);
  EXPECT_EQ(ws.max_message_size(), 1'000u);
  s.log->go = 1;
  expect_error([&] { ws.receive(Clock::now() + 5s); }, errc::io_error);
  ASSERT_TRUE(s.log->wait_frames(1));
  EXPECT_EQ(code_of(s.log->frame(0)), 1009);
}

TEST(WebSocket, AMessageExactlyAtTheLimitPasses) {
  WsServer s([](ts::Peer& peer, Log& log) {
    if (!wait_stage(peer, log, 1)) return;
    peer.write(server_frame(0x1, std::string(400, 'a'), false) + server_frame(0x0, std::string(600, 'b'), true));
  });
  auto ws = s.connect();
  ws.set_max_message_size(1'000);
  s.log->go = 1;
  EXPECT_EQ(ws.receive(Clock::now() + 5s)->size(), 1'000u);
}

// ---------------------------------------------------------------------------------------------
// Interoperability: the real OpenHands agent server's /sockets/bash-events (Starlette/uvicorn).

TEST(WebSocketAgentServer, BashEventsDeliverACommandsOutput) {
  const char* url = std::getenv("AGENT_SERVER_URL");
  const char* key = std::getenv("AGENT_SERVER_SESSION_KEY");
  // scripts/run-tests starts the server; without it this test fails, it never skips.
  ASSERT_TRUE(url && *url && key && *key) << "AGENT_SERVER_URL / AGENT_SERVER_SESSION_KEY are not set";
  const std::string host = http::Url::parse(url).host;
  ASSERT_TRUE(host == "127.0.0.1" || host == "localhost" || host == "::1") << "tests talk only to loopback";

  http::Client<http::Tcp> client(url, loopback_options());
  const auto deadline = Clock::now() + 60s;
  auto ws = WebSocket::connect(client, "/sockets/bash-events", {}, deadline);
  ws.send_text(nlohmann::json{{"type", "auth"}, {"session_api_key", key}}.dump(), deadline);

  // The server subscribes this socket right after reading the auth frame, then reads requests
  // from it: a command sent over the socket runs only once events reach us, so seeing its output
  // proves the subscription before the command under test is started over HTTP.
  const std::string marker = "ws-sync-" + std::to_string(::getpid()) + "-" +
                             std::to_string(Clock::now().time_since_epoch().count());
  ws.send_text(nlohmann::json{{"command", "echo " + marker}, {"timeout", 5}}.dump(), deadline);
  int events = 0;
  const auto next_event = [&]() -> nlohmann::json {
    const auto message = ws.receive(deadline);
    if (!message) throw Error(errc::timed_out, "no bash event before the deadline");
    ++events;
    auto event = nlohmann::json::parse(*message, nullptr, false);
    EXPECT_FALSE(event.is_discarded()) << *message;
    return event;
  };
  for (;;) {
    const auto event = next_event();
    if (event.value("kind", "") == "BashOutput" && event.value("stdout", nlohmann::json()).is_string() &&
        contains(event["stdout"].get<std::string>(), marker))
      break;
  }

  const auto started = client.post("/api/bash/start_bash_command", R"({"command":"echo hi","timeout":5})",
                                   "application/json", {{"X-Session-API-Key", key}});
  http::check_status(started, "POST /api/bash/start_bash_command");
  const auto command = nlohmann::json::parse(started.body);
  const std::string command_id = command.at("id").get<std::string>();

  std::string stdout_text;
  for (;;) {
    const auto event = next_event();
    if (event.value("kind", "") != "BashOutput" || event.value("command_id", "") != command_id) continue;
    if (event["stdout"].is_string()) stdout_text += event["stdout"].get<std::string>();
    if (!event["exit_code"].is_null()) {
      EXPECT_EQ(event["exit_code"].get<int>(), 0) << event.dump();
      break;
    }
  }
  EXPECT_TRUE(contains(stdout_text, "hi")) << stdout_text;
  EXPECT_GE(events, 2);
  ws.close();
}
