// The client against a misbehaving server of our own (tests/support/scripted_server.hpp): every
// fault must end in a clear Error within its deadline, and nothing may hang or crash.
#include <workspace/http.hpp>

#include "../support/process.hpp"
#include "../support/scripted_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace workspace;
using namespace std::chrono_literals;
namespace ts = workspace_test;

namespace {

using Clock = std::chrono::steady_clock;

http::ClientOptions fast(std::chrono::milliseconds idle = 5s) {
  http::ClientOptions o;
  o.proxy = http::ProxySettings::none();
  o.timeouts.idle = idle;
  o.timeouts.connect = 5s;
  return o;
}

// Runs `call`, expects a TransportError with `code`, and returns it. The elapsed time must stay
// under `within`: a fault must not cost more than its deadline (and some scheduling slack).
template <class Call>
http::TransportError expect_failure(Call&& call, errc code, std::chrono::milliseconds within = 3s) {
  const auto start = Clock::now();
  try {
    call();
  } catch (const http::TransportError& e) {
    const auto took = Clock::now() - start;
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_LT(took, within) << e.what();
    return e;
  }
  ADD_FAILURE() << "no TransportError";
  return http::TransportError(errc::invalid_argument, "none", {});
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(HttpFaults, ResetInTheMiddleOfTheBody) {
  ts::ScriptedServer server(ts::reset_mid_body(100'000, 30'000));
  http::Client<http::Tcp> client(server.url(), fast());
  const auto e = expect_failure([&] { client.get("/"); }, errc::connection_failed);
  EXPECT_TRUE(contains(e.what(), "GET / on http://127.0.0.1:")) << e.what();
  EXPECT_TRUE(e.progress().response_started);
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST(HttpFaults, BodyShorterThanContentLengthThenClose) {
  ts::ScriptedServer server(ts::respond_sequence(
      {ts::RawResponse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly fifty bytes", ts::RawResponse::After::close)}));
  http::Client<http::Tcp> client(server.url(), fast());
  const auto e = expect_failure([&] { client.get("/"); }, errc::connection_failed);
  EXPECT_TRUE(contains(e.what(), "closed in the middle of the response body")) << e.what();
}

TEST(HttpFaults, MalformedChunkSizes) {
  for (const char* bad : {"zz", "ffffffffffffffffffff", "-1", "", "5 junk"}) {
    SCOPED_TRACE(bad);
    ts::ScriptedServer server(ts::malformed_chunk_size(bad));
    http::Client<http::Tcp> client(server.url(), fast());
    const auto e = expect_failure([&] { client.get("/"); }, errc::protocol_error);
    EXPECT_TRUE(contains(e.what(), "chunk")) << e.what();
  }
}

TEST(HttpFaults, OversizedHeaderBlock) {
  ts::ScriptedServer server(ts::oversized_headers(200'000));
  http::Client<http::Tcp> client(server.url(), fast());
  const auto e = expect_failure([&] { client.get("/"); }, errc::protocol_error);
  EXPECT_TRUE(contains(e.what(), "header block larger than")) << e.what();
}

TEST(HttpFaults, GarbageInsteadOfAResponse) {
  ts::ScriptedServer server(ts::respond_sequence({ts::RawResponse("SSH-2.0-OpenSSH_9.2\r\n\r\n")}));
  http::Client<http::Tcp> client(server.url(), fast());
  expect_failure([&] { client.get("/"); }, errc::protocol_error);
}

TEST(HttpFaults, ServerStallsBeforeAnswering) {
  ts::ScriptedServer server(ts::stall_before_response());
  http::Client<http::Tcp> client(server.url(), fast(300ms));
  const auto start = Clock::now();
  const auto e = expect_failure([&] { client.get("/"); }, errc::timed_out);
  EXPECT_GE(Clock::now() - start, 300ms);
  EXPECT_TRUE(contains(e.what(), "no response from the server for 300 ms")) << e.what();
  EXPECT_FALSE(e.progress().response_started);
}

TEST(HttpFaults, ServerStallsAfterTheHead) {
  ts::ScriptedServer server(ts::stall_after_head());
  http::Client<http::Tcp> client(server.url(), fast(300ms));
  const auto e = expect_failure([&] { client.get("/"); }, errc::timed_out);
  EXPECT_TRUE(contains(e.what(), "no data from the server for 300 ms")) << e.what();
}

TEST(HttpFaults, WholeRequestDeadlineCatchesADribblingServer) {
  // A byte every 50 ms never trips the idle timeout; the request's own deadline must.
  ts::ScriptedServer server([](ts::Peer& peer) {
    peer.read_request();
    peer.write_in_pieces("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + ts::pattern_bytes(100'000), 1, 50ms);
  });
  http::Client<http::Tcp> client(server.url(), fast(2s));
  http::RequestOptions options;
  options.timeout = 700ms;
  const auto start = Clock::now();
  const auto e = expect_failure([&] { client.get("/", {}, options); }, errc::timed_out);
  EXPECT_GE(Clock::now() - start, 700ms);
  EXPECT_TRUE(contains(e.what(), "deadline")) << e.what();
}

TEST(HttpFaults, NothingListening) {
  const auto port = ts::free_tcp_port();
  http::Client<http::Tcp> client("http://127.0.0.1:" + std::to_string(port), fast());
  const auto e = expect_failure([&] { client.post("/x", "{}", "application/json"); }, errc::connection_failed);
  EXPECT_FALSE(e.progress().request_sent);
  EXPECT_TRUE(contains(e.what(), "connect to 127.0.0.1:" + std::to_string(port))) << e.what();
}

TEST(HttpFaults, NoSuchUnixSocket) {
  http::Client<http::UnixSocket> client("/nonexistent/dir/docker.sock");
  const auto e = expect_failure([&] { client.get("/_ping"); }, errc::connection_failed);
  EXPECT_TRUE(contains(e.what(), "unix:/nonexistent/dir/docker.sock")) << e.what();
}

TEST(HttpFaults, KeptAliveConnectionClosedByTheServerIsReplacedQuietly) {
  ts::ScriptedServer server(ts::close_after_each_response("fresh"));
  http::Client<http::Tcp> client(server.url(), fast());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(client.get("/").body, "fresh");
    // Let the server's FIN arrive, so the pool sees the connection is dead before reusing it.
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server.connections(), 5u);
  // A POST too: the dead connection is noticed before anything is sent.
  EXPECT_EQ(client.post("/", "data", "text/plain").body, "fresh");
}

TEST(HttpFaults, ServerDropsAReusedConnectionAfterReadingTheRequest) {
  // The hard case: the connection looks alive, the request goes out, the server closes without
  // answering. A GET is repeated once on a fresh connection; a POST is not (it may have acted).
  ts::ScriptedServer server(ts::close_after_response_without_reading_next("answer"));
  http::Client<http::Tcp> client(server.url(), fast());
  EXPECT_EQ(client.get("/").body, "answer");
  EXPECT_EQ(client.get("/").body, "answer");
  EXPECT_EQ(server.connections(), 2u);

  const auto e = expect_failure([&] { client.post("/", "data", "text/plain"); }, errc::connection_failed);
  EXPECT_TRUE(e.progress().connection_reused);
  EXPECT_TRUE(e.progress().request_sent);
  EXPECT_FALSE(e.progress().response_started);
}

TEST(HttpFaults, CloseDelimitedBodyIsReadToTheEndAndNotReused) {
  ts::ScriptedServer server(ts::close_delimited(ts::pattern_bytes(50'000)));
  http::Client<http::Tcp> client(server.url(), fast());
  EXPECT_EQ(client.get("/").body, ts::pattern_bytes(50'000));
  EXPECT_EQ(client.idle_connections(), 0u);
  EXPECT_EQ(client.get("/").body, ts::pattern_bytes(50'000));
}

TEST(HttpFaults, ChunkExtensionsAndTrailersAreIgnored) {
  ts::ScriptedServer server(ts::chunked_response({"hello, ", "chunked ", "world"}, {{"X-Checksum", "abc"}}));
  http::Client<http::Tcp> client(server.url(), fast());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.get("/").body, "hello, chunked world");
  EXPECT_EQ(server.connections(), 1u);
}

TEST(HttpFaults, InterimResponsesAreSkipped) {
  ts::ScriptedServer server(ts::interim_100_continue("final"));
  http::Client<http::Tcp> client(server.url(), fast());
  const auto r = client.get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "final");
}

TEST(HttpFaults, UpgradeHandsOverTheRawStreamWithEarlyBytes) {
  ts::ScriptedServer server(ts::upgrade_101(ts::raw_echo(), "early-bytes"));
  http::Client<http::Tcp> client(server.url(), fast());
  auto raw = client.upgrade(http::Request{.method = "POST", .target = "/exec/abc/start"});
  ASSERT_TRUE(raw.upgraded());
  EXPECT_EQ(raw.response().status, 101);
  const auto deadline = Clock::now() + 5s;
  std::string got;
  char buffer[64];
  while (got.size() < 11) got.append(buffer, raw.read_some(buffer, sizeof buffer, deadline));
  EXPECT_EQ(got, "early-bytes");
  raw.write("ping", deadline);
  got.clear();
  while (got.size() < 4) got.append(buffer, raw.read_some(buffer, sizeof buffer, deadline));
  EXPECT_EQ(got, "ping");
  // Nothing more comes: a read with a deadline returns timed_out instead of blocking.
  std::error_code ec;
  raw.read_some(buffer, sizeof buffer, Clock::now() + 100ms, ec);
  EXPECT_EQ(ec, std::errc::timed_out);
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST(HttpFaults, RetryRidesOutServiceUnavailable) {
  ts::ScriptedServer server(ts::respond_sequence({
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  }));
  http::Retry retry(http::RetryOptions{.initial_backoff = 1ms});
  http::Client<http::Tcp, http::Retry> client(server.url(), fast(), retry);
  const auto r = client.get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server.requests(), 3u);
}

TEST(HttpFaults, RetryDoesNotRepeatAPostTheServerMayHaveSeen) {
  ts::ScriptedServer server(ts::stall_before_response());
  http::Retry retry(http::RetryOptions{.initial_backoff = 1ms});
  http::Client<http::Tcp, http::Retry> client(server.url(), fast(200ms), retry);
  expect_failure([&] { client.post("/containers/create", "{}", "application/json"); }, errc::timed_out);
  EXPECT_EQ(server.requests(), 1u);
}

// Retry, recording the waits it asks for (every copy shares the record).
struct RecordedRetry : http::Retry {
  explicit RecordedRetry(http::RetryOptions options) : http::Retry(std::move(options)) {}
  http::Decision decide(const http::Request& request, const http::Outcome& outcome) const {
    const auto decision = http::Retry::decide(request, outcome);
    if (decision.retries()) waits->push_back(*decision.retry_after);
    return decision;
  }
  std::shared_ptr<std::vector<std::chrono::milliseconds>> waits =
      std::make_shared<std::vector<std::chrono::milliseconds>>();
};

TEST(HttpFaults, RetryRepeatsWhatNeverLeft) {
  const auto port = ts::free_tcp_port();
  RecordedRetry retry(http::RetryOptions{.max_attempts = 3, .initial_backoff = 10ms, .jitter = false});
  const auto waits = retry.waits;
  http::Client<http::Tcp, RecordedRetry> client("http://127.0.0.1:" + std::to_string(port), fast(), retry);
  expect_failure([&] { client.post("/x", "{}", "application/json"); }, errc::connection_failed);
  EXPECT_EQ(*waits, (std::vector<std::chrono::milliseconds>{10ms, 20ms}));
}

TEST(HttpFaults, SecretsNeverAppearInErrors) {
  ts::ScriptedServer server(ts::reset_mid_body(1000, 10));
  http::Client<http::Tcp, http::BearerAuth> client(server.url(), fast(), http::BearerAuth("s3cr3t-token"));
  const auto e = expect_failure([&] { client.get("/path?token=s3cr3t-query"); }, errc::connection_failed);
  EXPECT_FALSE(contains(e.what(), "s3cr3t")) << e.what();
  EXPECT_TRUE(contains(e.what(), "GET /path on")) << e.what();
}

TEST(HttpFaults, RequestsTheServerSeesAreWellFormed) {
  ts::ScriptedServer server(ts::echo_request());
  http::Client<http::Tcp> client(server.url() + "/api/v1", fast());
  http::Multipart form;
  form.add_field("path", "/workspace/a \"quoted\" name.txt");
  form.add_file("file", "a.txt", "file content\r\n--not-a-boundary\r\n");
  http::Request r{.method = "POST", .target = http::make_target("/files/upload dir", {{"q", "a&b=c"}})};
  std::move(form).attach_to(r);
  const auto echo = nlohmann::json::parse(client.request(std::move(r)).body);
  EXPECT_EQ(echo["target"], "/api/v1/files/upload%20dir?q=a%26b%3Dc");
  EXPECT_EQ(echo["framing"], "content-length");
  const std::string body = echo["body"];
  EXPECT_TRUE(contains(body, "name=\"path\"\r\n\r\n/workspace/a \"quoted\" name.txt\r\n")) << body;
  EXPECT_TRUE(contains(body, "filename=\"a.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nfile content")) << body;
  EXPECT_EQ(echo["header_map"]["host"], "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_FALSE(echo["header_map"].contains("accept-encoding"));  // we could not decode it
  EXPECT_TRUE(server.errors().empty()) << server.errors().front();  // the server is strict HTTP/1.1
}

// A transport that breaks every connection after N bytes received: the client is tested with a
// fault injected at the transport, the same template parameter the real transports fill.
template <std::size_t Limit>
struct BreaksAfter {
  struct Stream : http::Tcp::Stream {
    explicit Stream(http::Tcp::Stream s) : http::Tcp::Stream(std::move(s)) {}
    template <class Buffers, class Token>
    auto async_read_some(const Buffers& buffers, Token&& token) {
      return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
          [this](auto handler, const Buffers& b) {
            http::Tcp::Stream& base = *this;
            if (received >= Limit) {
              close();
              base.async_read_some(b, std::move(handler));  // fails: closed
              return;
            }
            // Never read past the limit, so the break falls where it is meant to.
            const auto capped = asio::buffer(asio::mutable_buffer(*asio::buffer_sequence_begin(b)), Limit - received);
            base.async_read_some(capped, [this, h = std::move(handler)](std::error_code ec, std::size_t n) mutable {
              received += n;
              std::move(h)(ec, n);
            });
          },
          token, buffers);
    }
    std::size_t received = 0;
  };
  static auto make_origin(std::string_view url, const http::ClientOptions& o) { return http::Tcp::make_origin(url, o); }
  template <class Executor>
  static workspace::Task<Stream> connect(Executor executor, const http::Origin& origin, http::detail::Clock::time_point d) {
    co_return Stream(co_await http::Tcp::connect(executor, origin, d));
  }
};
static_assert(http::Transport<BreaksAfter<10>>);

TEST(HttpFaults, InjectedTransportFault) {
  ts::ScriptedServer server(ts::respond_ok(ts::pattern_bytes(10'000)));
  http::Client<BreaksAfter<1000>> client(server.url(), fast());
  expect_failure([&] { client.get("/"); }, errc::connection_failed);
  http::Client<BreaksAfter<100'000>> enough(server.url(), fast());
  EXPECT_EQ(enough.get("/").body.size(), 10'000u);
}

TEST(HttpFaults, ErrorBodiesAreKeptEvenWhenStreaming) {
  // A sink expecting file data must not receive an error document; check_status quotes it.
  ts::ScriptedServer server(ts::respond_sequence(
      {"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"message\":\"no such file\"}"}));
  http::Client<http::Tcp> client(server.url(), fast());
  bool sink_called = false;
  http::RequestOptions options;
  options.on_body = [&](std::string_view) { return sink_called = true; };
  const auto r = client.get("/archive", {}, options);
  EXPECT_FALSE(sink_called);
  EXPECT_EQ(r.status, 404);
  try {
    http::check_status(r, "GET /archive");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.server_message(), "no such file");
  }
}

TEST(HttpFaults, AnyTransportReachesUnixAndTcp) {
  ts::ScriptedServer tcp(ts::respond_ok("over tcp"));
  ts::TempDir dir;
  auto unix_server = ts::ScriptedServer::unix_socket((dir.path() / "s.sock").string(), ts::respond_ok("over unix"));
  http::Client<http::AnyTransport> a(tcp.url(), fast());
  http::Client<http::AnyTransport> b("unix://" + (dir.path() / "s.sock").string(), fast());
  EXPECT_EQ(a.get("/").body, "over tcp");
  EXPECT_EQ(b.get("/").body, "over unix");
}
