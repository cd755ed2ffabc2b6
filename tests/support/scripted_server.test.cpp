// Self-test of the scripted HTTP server used by the HTTP client's tests: every handler emits what
// it claims, checked with raw POSIX client sockets (never the client under test).
#include "scripted_server.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace {

using namespace std::chrono_literals;
using workspace_test::Checksum;
using workspace_test::Peer;
using workspace_test::RawResponse;
using workspace_test::ScriptedServer;
using Clock = std::chrono::steady_clock;

// --- a raw client ---------------------------------------------------------------------------

class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { close(); }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  void send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0) << std::strerror(errno);
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  struct Read {
    std::string data;
    bool eof = false;
    int error = 0;  // errno of a failed recv (ECONNRESET...)
    bool timed_out = false;
  };
  // Reads until `done(data)` holds, EOF, an error, or the timeout.
  Read read_until(const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds timeout = 5s) {
    Read r;
    const auto deadline = Clock::now() + timeout;
    char buf[65536];
    while (!done(r.data)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        r.timed_out = true;
        break;
      }
      pollfd p{fd_, POLLIN, 0};
      const int pr = ::poll(&p, 1, static_cast<int>(left.count()));
      if (pr == 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        r.data.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        r.eof = true;
        break;
      } else if (errno != EINTR) {
        r.error = errno;
        break;
      }
    }
    return r;
  }
  Read read_to_end(std::chrono::milliseconds timeout = 5s) {
    return read_until([](const std::string&) { return false; }, timeout);
  }
  Read read_bytes(std::size_t n, std::chrono::milliseconds timeout = 5s) {
    return read_until([n](const std::string& d) { return d.size() >= n; }, timeout);
  }
  Read read_head(std::chrono::milliseconds timeout = 5s) {
    return read_until([](const std::string& d) { return d.find("\r\n\r\n") != std::string::npos; },
                      timeout);
  }

  // One Content-Length-framed response: {head (with blank line), body}.
  std::pair<std::string, std::string> read_response() {
    Read r = read_until(
        [](const std::string& d) {
          const auto end = d.find("\r\n\r\n");
          if (end == std::string::npos) return false;
          const auto cl = lower(d.substr(0, end)).find("content-length:");
          if (cl == std::string::npos) return true;
          const std::size_t n = std::strtoull(d.c_str() + cl + 15, nullptr, 10);
          return d.size() >= end + 4 + n;
        });
    pending_ += r.data;
    const auto end = pending_.find("\r\n\r\n");
    if (end == std::string::npos) return {pending_, ""};
    std::string head = pending_.substr(0, end + 4);
    const auto cl = lower(head).find("content-length:");
    const std::size_t n =
        cl == std::string::npos ? 0 : std::strtoull(head.c_str() + cl + 15, nullptr, 10);
    std::string body = pending_.substr(end + 4, n);
    pending_.erase(0, end + 4 + n);
    return {head, body};
  }

  // No byte and no EOF arrives within `d`.
  bool quiet_for(std::chrono::milliseconds d) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(d.count())) == 0;
  }

  static std::string lower(std::string s) {
    for (char& c : s) c = workspace_test::detail::lower(c);
    return s;
  }

 private:
  int fd_;
  std::string pending_;
};

Conn connect_tcp(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  return Conn(fd);
}

Conn connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  return Conn(fd);
}

const std::string get = "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 2s) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// --- tests ----------------------------------------------------------------------------------

TEST(ScriptedServer, ChecksumIsFnv1a64) {
  EXPECT_EQ(Checksum{}.hex(), "cbf29ce484222325");
  EXPECT_EQ(Checksum::of("a").hex(), "af63dc4c8601ec8c");
  EXPECT_EQ(Checksum::of("foobar").hex(), "85944171f73967e8");
  Checksum split;
  split.update("foo");
  split.update("bar");
  EXPECT_EQ(split.fnv1a, Checksum::of("foobar").fnv1a);
}

TEST(ScriptedServer, RespondOkServesKeepAliveRequestsIncludingChunkedBodies) {
  ScriptedServer server(workspace_test::respond_ok("hello"));
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto [head1, body1] = c.read_response();
  EXPECT_EQ(head1.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head1;
  EXPECT_EQ(body1, "hello");
  c.send_all("POST /y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n");
  auto [head2, body2] = c.read_response();
  EXPECT_EQ(body2, "hello");
  c.send_all("HEAD /z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  auto r = c.read_to_end();
  EXPECT_TRUE(r.eof);
  EXPECT_NE(r.data.find("Content-Length: 5\r\n"), std::string::npos) << r.data;
  EXPECT_NE(r.data.find("Connection: close\r\n"), std::string::npos) << r.data;
  EXPECT_EQ(r.data.substr(r.data.size() - 4), "\r\n\r\n") << "HEAD response must carry no body";
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(server.requests(), 3u);
  EXPECT_TRUE(server.errors().empty());
}

TEST(ScriptedServer, ProtocolErrorsAreRecordedAndAnswered400) {
  ScriptedServer server(workspace_test::respond_ok());
  Conn c = connect_tcp(server.port());
  c.send_all("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
  auto r = c.read_to_end();
  EXPECT_EQ(r.data.rfind("HTTP/1.1 400 ", 0), 0u) << r.data;
  ASSERT_TRUE(wait_for([&] { return !server.errors().empty(); }));
  EXPECT_NE(server.errors()[0].find("both Transfer-Encoding and Content-Length"),
            std::string::npos);

  Conn c2 = connect_tcp(server.port());
  c2.send_all("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  EXPECT_EQ(c2.read_to_end().data.rfind("HTTP/1.1 400 ", 0), 0u);
  ASSERT_TRUE(wait_for([&] { return server.errors().size() == 2; }));
  EXPECT_NE(server.errors()[1].find("chunk size line without a size"), std::string::npos);
}

TEST(ScriptedServer, ResetMidBodyDeliversThePrefixThenConnectionReset) {
  ScriptedServer server(workspace_test::reset_mid_body(1000, 300));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto r = c.read_to_end();
  EXPECT_EQ(r.error, ECONNRESET) << std::strerror(r.error);
  const auto end = r.data.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  EXPECT_NE(r.data.find("Content-Length: 1000\r\n"), std::string::npos);
  EXPECT_EQ(r.data.substr(end + 4), workspace_test::pattern_bytes(300));
}

TEST(ScriptedServer, MalformedChunkSizeSendsTheBadLineAndKeepsTheConnectionOpen) {
  ScriptedServer server(workspace_test::malformed_chunk_size("ffffffffffffffffffff"));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto r = c.read_until(
      [](const std::string& d) { return d.find("0123456789\r\n") != std::string::npos; });
  EXPECT_NE(r.data.find("Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nffffffffffffffffffff\r\n"),
            std::string::npos)
      << r.data;
  EXPECT_TRUE(c.quiet_for(100ms)) << "no EOF: the client must fail from parsing";
}

TEST(ScriptedServer, OversizedHeadersNeverEndTheHead) {
  ScriptedServer server(workspace_test::oversized_headers(64 * 1024));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  const std::string status = "HTTP/1.1 200 OK\r\n";
  auto r = c.read_bytes(status.size() + 64 * 1024 + 1);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.data.rfind(status + "X-Filler-0: aaa", 0), 0u);
  EXPECT_EQ(r.data.find("\r\n\r\n"), std::string::npos);
  auto rest = c.read_to_end(100ms);  // the rest of the last batch, then nothing: no blank line
  EXPECT_TRUE(rest.timed_out);
  EXPECT_EQ((r.data + rest.data).find("\r\n\r\n"), std::string::npos);
}

TEST(ScriptedServer, StallAfterHeadSendsOnlyTheHead) {
  ScriptedServer server(workspace_test::stall_after_head());
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto r = c.read_head();
  EXPECT_EQ(r.data, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  EXPECT_TRUE(c.quiet_for(150ms));
}

TEST(ScriptedServer, StallBeforeResponseSendsNothing) {
  ScriptedServer server(workspace_test::stall_before_response());
  Conn c = connect_tcp(server.port());
  c.send_all("PUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
  ASSERT_TRUE(wait_for([&] { return server.requests() == 1; }));
  EXPECT_TRUE(c.quiet_for(150ms));
}

TEST(ScriptedServer, StallReturnsWhenTheClientCloses) {
  std::atomic<bool> returned{false};
  ScriptedServer server([&](Peer& peer) {
    peer.stall();
    returned = true;
  });
  Conn c = connect_tcp(server.port());
  c.send_all("junk that stall discards");
  ASSERT_TRUE(wait_for([&] { return server.connections() == 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(returned.load()) << "stall must block while the client is connected";
  c.close();
  EXPECT_TRUE(wait_for([&] { return returned.load(); }, 1s));
}

TEST(ScriptedServer, WaitClosedByClient) {
  std::atomic<int> result{-1};
  ScriptedServer server([&](Peer& peer) {
    const bool first = peer.wait_closed_by_client(50ms);  // still open: false
    const bool second = peer.wait_closed_by_client(3s);   // closed below: true
    result = (first ? 10 : 0) + (second ? 1 : 0);
  });
  Conn c = connect_tcp(server.port());
  std::this_thread::sleep_for(150ms);
  c.close();
  ASSERT_TRUE(wait_for([&] { return result.load() >= 0; }));
  EXPECT_EQ(result.load(), 1);
}

TEST(ScriptedServer, DestructionWhileHandlersStallReadOrWriteIsPrompt) {
  std::optional<ScriptedServer> stalling(std::in_place, workspace_test::stall_before_response());
  std::optional<ScriptedServer> writing(std::in_place, [](Peer& peer) {
    const std::string mb(1 << 20, 'x');
    for (;;) peer.write(mb);  // the client never reads: blocks once the buffers are full
  });
  std::optional<ScriptedServer> sleeping(std::in_place, [](Peer& peer) { peer.sleep_for(1h); });
  Conn c1 = connect_tcp(stalling->port());
  c1.send_all(get);
  Conn c2 = connect_tcp(writing->port());
  Conn c3 = connect_tcp(sleeping->port());
  ASSERT_TRUE(wait_for([&] { return stalling->requests() == 1 && writing->connections() == 1 &&
                                    sleeping->connections() == 1; }));
  std::this_thread::sleep_for(100ms);
  const auto start = Clock::now();
  stalling.reset();
  writing.reset();
  sleeping.reset();
  EXPECT_LT(Clock::now() - start, 1s);
  auto r = c1.read_to_end(1s);
  EXPECT_TRUE(r.eof || r.error != 0) << "the client sees the connection end";
}

TEST(ScriptedServer, CloseAfterEachResponseClosesWithoutConnectionClose) {
  ScriptedServer server(workspace_test::close_after_each_response("one"));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto r = c.read_to_end();
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.data.find("Connection"), std::string::npos) << r.data;
  EXPECT_EQ(r.data.substr(r.data.size() - 3), "one");
}

TEST(ScriptedServer, CloseAfterResponseWithoutReadingNextWaitsForTheNextRequest) {
  ScriptedServer server(workspace_test::close_after_response_without_reading_next("one"));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto [head, body] = c.read_response();
  EXPECT_EQ(body, "one");
  EXPECT_TRUE(c.quiet_for(150ms)) << "the connection looks alive while idle";
  c.send_all(get);
  auto r = c.read_to_end();
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.error, 0);
  EXPECT_TRUE(r.data.empty()) << r.data;
  EXPECT_EQ(server.requests(), 2u);
}

TEST(ScriptedServer, ChunkedResponseHasExtensionsAndTrailersAndKeepsAlive) {
  ScriptedServer server(
      workspace_test::chunked_response({"hello ", "", "world"}, {{"X-Checksum", "abc"}}));
  Conn c = connect_tcp(server.port());
  const std::string expected =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
      "6;ext=1\r\nhello \r\n5;ext=1\r\nworld\r\n0\r\nX-Checksum: abc\r\n\r\n";
  for (int i = 0; i < 2; ++i) {
    c.send_all(get);
    auto r = c.read_bytes(expected.size());
    EXPECT_EQ(r.data, expected);
  }
  EXPECT_EQ(server.connections(), 1u);
}

TEST(ScriptedServer, CloseDelimitedBodyEndsAtClose) {
  ScriptedServer server(workspace_test::close_delimited("until the end"));
  Conn c = connect_tcp(server.port());
  c.send_all(get);
  auto r = c.read_to_end();
  EXPECT_TRUE(r.eof);
  const std::string lowered = Conn::lower(r.data);
  EXPECT_EQ(lowered.find("content-length"), std::string::npos);
  EXPECT_EQ(lowered.find("transfer-encoding"), std::string::npos);
  EXPECT_EQ(r.data.substr(r.data.find("\r\n\r\n") + 4), "until the end");
}

TEST(ScriptedServer, Upgrade101SendsEarlyBytesInTheSameWriteThenEchoes) {
  ScriptedServer server(workspace_test::upgrade_101(workspace_test::raw_echo(), "EARLY"));
  Conn c = connect_tcp(server.port());
  c.send_all("POST /attach HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
  const std::string head = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
  auto r = c.read_bytes(head.size() + 5);
  EXPECT_EQ(r.data, head + "EARLY");
  c.send_all("ping");
  EXPECT_EQ(c.read_bytes(4).data, "ping");
  c.close();
}

TEST(ScriptedServer, SinkCountsA10MiBChunkedUpload) {
  ScriptedServer server(workspace_test::sink());
  Conn c = connect_tcp(server.port());
  const std::size_t total = 10u << 20;
  Checksum expected;
  std::thread writer([&] {
    c.send_all("PUT /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::size_t sent = 0;
    std::size_t size = 1;
    std::string block;
    while (sent < total) {
      const std::size_t n = std::min(size, total - sent);
      std::string chunk(n, '\0');
      for (std::size_t i = 0; i < n; ++i) chunk[i] = static_cast<char>((sent + i) * 131 % 251);
      expected.update(chunk);
      char line[32];
      std::snprintf(line, sizeof line, "%zx;n=v\r\n", n);
      block += line + chunk + "\r\n";
      if (block.size() > 256 * 1024) {
        c.send_all(block);
        block.clear();
      }
      sent += n;
      size = size * 3 + 7;
      if (size > 300'000) size = 1;
    }
    block += "0\r\nX-Trailer: t\r\n\r\n";
    c.send_all(block);
  });
  auto [head, body] = c.read_response();
  writer.join();
  const auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["bytes"].get<std::uint64_t>(), total);
  EXPECT_EQ(j["fnv1a"].get<std::string>(), expected.hex());

  // Content-Length framing on the same connection, with Expect: 100-continue answered.
  c.send_all("PUT /upload HTTP/1.1\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.read_head();
  EXPECT_EQ(interim.data, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send_all("foobar");
  auto [head2, body2] = c.read_response();
  EXPECT_EQ(nlohmann::json::parse(body2)["fnv1a"], Checksum::of("foobar").hex());
  EXPECT_TRUE(server.errors().empty());
}

TEST(ScriptedServer, EchoRequestReportsMethodTargetHeadersAndBody) {
  ScriptedServer server(workspace_test::echo_request());
  Conn c = connect_tcp(server.port());
  c.send_all("POST /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\n"
             "Content-Length: 5\r\n\r\nhe\xfflo");
  auto [head, body] = c.read_response();
  const auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["target"], "/a%20b?x=1");
  EXPECT_EQ(j["headers"][1][0], "X-Dup");
  EXPECT_EQ(j["headers"][2][0], "x-dup");
  EXPECT_EQ(j["header_map"]["x-dup"], "1, 2");
  EXPECT_EQ(j["framing"], "content-length");
  EXPECT_EQ(j["body_bytes"], 5);
  EXPECT_EQ(j["body_fnv1a"], Checksum::of("he\xfflo").hex());
  EXPECT_EQ(j["body"], "he\xef\xbf\xbdlo");
}

TEST(ScriptedServer, RespondSequenceCountsAcrossConnections) {
  ScriptedServer server(workspace_test::respond_sequence({
      workspace_test::http_response(503, "busy", {{"Retry-After", "0"}}),
      RawResponse(workspace_test::http_response(200, "first"), RawResponse::After::close),
      RawResponse("", RawResponse::After::reset),
  }));
  Conn c1 = connect_tcp(server.port());
  c1.send_all(get);
  auto [h1, b1] = c1.read_response();
  EXPECT_EQ(h1.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << h1;
  Conn c2 = connect_tcp(server.port());
  c2.send_all(get);
  auto r2 = c2.read_to_end();
  EXPECT_TRUE(r2.eof);
  EXPECT_EQ(r2.data.substr(r2.data.size() - 5), "first");
  c1.send_all(get);  // the third request, on the first connection
  auto r3 = c1.read_to_end();
  EXPECT_EQ(r3.error, ECONNRESET);
  EXPECT_TRUE(r3.data.empty());
  Conn c4 = connect_tcp(server.port());
  c4.send_all(get);
  EXPECT_EQ(c4.read_to_end().data.rfind("HTTP/1.1 500 ", 0), 0u);
  ASSERT_TRUE(wait_for([&] { return server.errors().size() == 1; }));
  EXPECT_NE(server.errors()[0].find("no scripted response for request #3"), std::string::npos);
  EXPECT_EQ(server.connections(), 3u);
}

TEST(ScriptedServer, Interim100ContinueThenTheRealResponse) {
  ScriptedServer server(workspace_test::interim_100_continue("done"));
  Conn c = connect_tcp(server.port());
  c.send_all("PUT /x HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.read_head().data, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send_all("abc");
  auto [head, body] = c.read_response();
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(body, "done");
}

TEST(ScriptedServer, UnixSocketVariant) {
  const std::string path =
      ::testing::TempDir() + "scripted-" + std::to_string(::getpid()) + ".sock";
  {
    auto server = ScriptedServer::unix_socket(path, workspace_test::respond_ok("over unix"));
    EXPECT_EQ(server.url(), "http://localhost");
    EXPECT_EQ(server.port(), 0);
    Conn c = connect_unix(path);
    c.send_all(get);
    auto [head, body] = c.read_response();
    EXPECT_EQ(body, "over unix");
    EXPECT_EQ(server.requests(), 1u);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file is removed on stop";
}

TEST(ScriptedServer, ManySequentialConnectionsAreReaped) {
  ScriptedServer server(workspace_test::close_after_each_response());
  for (int i = 0; i < 200; ++i) {
    Conn c = connect_tcp(server.port());
    c.send_all(get);
    EXPECT_TRUE(c.read_to_end().eof);
  }
  EXPECT_EQ(server.connections(), 200u);
  EXPECT_TRUE(server.errors().empty());
}

}  // namespace
