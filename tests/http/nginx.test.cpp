// The client against a real nginx on loopback: plain, TLS (CA made by the test), mutual TLS, a
// Unix socket, keep-alive, chunked and large bodies, uploads, and a real proxy (tinyproxy).
#include <workspace/http.hpp>

#include "../support/nginx.hpp"
#include "../support/process.hpp"
#include "../support/tinyproxy.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <memory>
#include <vector>

using namespace workspace;
using workspace_test::Nginx;
using workspace_test::Tinyproxy;

namespace {

// One nginx for the whole file: starting it per test would dominate the run time.
Nginx& nginx() {
  static Nginx server;
  return server;
}

std::string random_bytes(std::size_t n, unsigned seed = 7) {
  std::mt19937 engine(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(engine() & 0xFF);
  return s;
}

void put_file(const std::string& name, const std::string& content) {
  workspace_test::write_file(nginx().files_dir() / name, content);
}

http::ClientOptions no_proxy() {
  http::ClientOptions o;
  o.proxy = http::ProxySettings::none();
  return o;
}

http::ClientOptions trusting_test_ca() {
  auto o = no_proxy();
  o.tls.ca_file = nginx().certs().ca_cert().string();
  return o;
}

std::string tls_url(std::uint16_t port, const char* host = "localhost") {
  return std::string("https://") + host + ":" + std::to_string(port);
}

}  // namespace

TEST(HttpNginx, GetsAStaticFileAndReusesTheConnection) {
  const auto content = random_bytes(100'000);
  put_file("keepalive.bin", content);
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  for (int i = 0; i < 5; ++i) {
    const auto r = client.get("/files/keepalive.bin");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, content);
    EXPECT_EQ(r.headers.get("content-length"), "100000");  // case-insensitive lookup
  }
  EXPECT_EQ(client.idle_connections(), 1u);  // five requests, one connection
}

// nginx numbers its connections: the same number means the same connection.
TEST(HttpNginx, KeepAliveReallyReusesTheConnection) {
  http::Client<http::Tcp> plain(nginx().base_url(), no_proxy());
  http::Client<http::Tls> tls(nginx().tls_base_url(), trusting_test_ca());
  http::Client<http::UnixSocket> unix_socket(nginx().unix_socket().string());
  const auto same_connection = [](auto& client) {
    const std::string first = client.get("/connection").body;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(client.get("/connection").body, first);
    client.close_idle_connections();
    EXPECT_NE(client.get("/connection").body, first);
  };
  same_connection(plain);
  same_connection(tls);
  same_connection(unix_socket);
}

TEST(HttpNginx, DecodesChunkedResponses) {
  const auto content = random_bytes(300'000, 11);
  put_file("chunked.bin", content);
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  for (int i = 0; i < 3; ++i) {
    const auto r = client.get("/chunked/chunked.bin");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.get("Transfer-Encoding"), "chunked");
    EXPECT_FALSE(r.headers.contains("Content-Length"));
    EXPECT_EQ(r.body, content);
  }
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST(HttpNginx, HeadAnd204HaveNoBodyAndKeepTheConnection) {
  put_file("head.bin", random_bytes(5000));
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  const auto head = client.head("/files/head.bin");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.get("Content-Length"), "5000");
  EXPECT_TRUE(head.body.empty());
  const auto empty = client.get("/status/204");
  EXPECT_EQ(empty.status, 204);
  const auto after = client.get("/files/head.bin");  // the same connection still frames correctly
  EXPECT_EQ(after.body.size(), 5000u);
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST(HttpNginx, ConnectionCloseIsNotReused) {
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  const auto r = client.get("/close");
  EXPECT_EQ(r.body, "bye");
  EXPECT_EQ(client.idle_connections(), 0u);
  EXPECT_EQ(client.get("/close").body, "bye");
}

TEST(HttpNginx, ErrorStatusesCarryTheServersMessage) {
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  try {
    client.get_json("/status/404");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::not_found);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_EQ(e.server_message(), "no such thing");
    EXPECT_NE(std::string(e.what()).find("GET /status/404 on http://127.0.0.1:"), std::string::npos) << e.what();
  }
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

TEST(HttpNginx, RetryHonoursRetryAfterThenGivesTheLastAnswer) {
  RecordedRetry retry(http::RetryOptions{.max_attempts = 3});
  const auto waits = retry.waits;
  http::Client<http::Tcp, RecordedRetry> client(nginx().base_url(), no_proxy(), retry);
  const auto start = std::chrono::steady_clock::now();
  const auto r = client.get("/status/503");
  EXPECT_EQ(r.status, 503);
  ASSERT_EQ(waits->size(), 2u);
  EXPECT_EQ((*waits)[0], std::chrono::seconds(1));  // nginx says Retry-After: 1
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));  // and it waited
}

TEST(HttpNginx, AuthPoliciesSendTheirHeaders) {
  http::Client<http::Tcp, http::BearerAuth, http::ApiKeyAuth, http::SessionApiKeyAuth> client(
      nginx().base_url(), no_proxy(), http::BearerAuth("tok"), http::ApiKeyAuth("key"),
      http::SessionApiKeyAuth("session"));
  const auto echo = client.get_json("/headers");
  EXPECT_EQ(echo["authorization"], "Bearer tok");
  EXPECT_EQ(echo["x_api_key"], "key");
  EXPECT_EQ(echo["x_session_api_key"], "session");
  EXPECT_EQ(echo["host"], "127.0.0.1:" + std::to_string(nginx().port()));
}

TEST(HttpNginx, UnixSocket) {
  put_file("unix.txt", "over a unix socket");
  http::Client<http::UnixSocket> client(nginx().unix_socket().string());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.get("/files/unix.txt").body, "over a unix socket");
  EXPECT_EQ(client.get_json("/headers")["host"], "localhost");
  EXPECT_EQ(client.idle_connections(), 1u);
  http::Client<http::UnixSocket> with_scheme("unix://" + nginx().unix_socket().string());
  EXPECT_EQ(with_scheme.get("/files/unix.txt").status, 200);
}

TEST(HttpNginx, StreamsADownloadToASinkWithProgress) {
  const auto content = random_bytes(2'000'000, 3);
  put_file("stream.bin", content);
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  std::string received;
  std::uint64_t last_done = 0;
  std::optional<std::uint64_t> total;
  http::RequestOptions options;
  options.on_body = [&](std::string_view piece) {
    received.append(piece);
    return true;
  };
  options.on_download = [&](std::uint64_t done, std::optional<std::uint64_t> t) {
    EXPECT_GE(done, last_done);
    last_done = done;
    total = t;
    return true;
  };
  const auto r = client.get("/files/stream.bin", {}, options);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(received, content);
  EXPECT_EQ(last_done, content.size());
  EXPECT_EQ(total, content.size());
}

TEST(HttpNginx, CancellingADownloadStopsItAndDropsTheConnection) {
  put_file("cancel.bin", random_bytes(4'000'000, 5));
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  std::uint64_t seen = 0;
  http::RequestOptions options;
  options.on_body = [&](std::string_view piece) {
    seen += piece.size();
    return seen < 100'000;
  };
  try {
    client.get("/files/cancel.bin", {}, options);
    FAIL() << "no error";
  } catch (const http::TransportError& e) {
    EXPECT_EQ(e.code(), errc::cancelled);
    EXPECT_TRUE(e.progress().body_delivered);
  }
  EXPECT_LT(seen, 4'000'000u);
  EXPECT_EQ(client.idle_connections(), 0u);  // half-read: never reused
  EXPECT_EQ(client.get("/files/cancel.bin").body.size(), 4'000'000u);
}

TEST(HttpNginx, UploadsStreamedSizedAndChunkedBodies) {
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  const auto content = random_bytes(3'000'000, 9);

  const auto local = nginx().dir() / "to-upload.bin";
  workspace_test::write_file(local, content);
  http::Request sized{.method = "PUT", .target = http::make_target("/upload/dir one/sized.bin")};
  http::set_file_body(sized, local.string());
  std::uint64_t uploaded = 0;
  http::RequestOptions options;
  options.on_upload = [&](std::uint64_t done, std::optional<std::uint64_t> total) {
    EXPECT_EQ(total, content.size());
    uploaded = done;
    return true;
  };
  const auto r1 = client.request(std::move(sized), options);
  EXPECT_EQ(r1.status, 201) << r1.body;
  EXPECT_EQ(uploaded, content.size());
  EXPECT_EQ(workspace_test::read_file(nginx().upload_dir() / "dir one" / "sized.bin"), content);

  // Unknown length: chunked transfer coding, which nginx 1.22 accepts for PUT.
  std::size_t at = 0;
  http::Request chunked{.method = "PUT", .target = "/upload/chunked.bin"};
  chunked.source = [&](char* buffer, std::size_t capacity) {
    const std::size_t n = std::min<std::size_t>({capacity, content.size() - at, 10'000});
    std::memcpy(buffer, content.data() + at, n);
    at += n;
    return n;
  };
  const auto r2 = client.request(std::move(chunked));
  EXPECT_EQ(r2.status, 201) << r2.body;
  EXPECT_EQ(workspace_test::read_file(nginx().upload_dir() / "chunked.bin"), content);
  EXPECT_EQ(client.get("/upload/chunked.bin").body, content);
}

TEST(HttpNginx, ASourceThatLiesAboutItsSizeIsRefused) {
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  http::Request r{.method = "PUT", .target = "/upload/liar.bin"};
  r.source = [sent = false](char* buffer, std::size_t) mutable -> std::size_t {
    if (sent) return 0;
    sent = true;
    std::memset(buffer, 'x', 10);
    return 10;
  };
  r.source_size = 100;
  try {
    client.request(std::move(r));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
}

TEST(HttpNginx, ConcurrentRequestsFromSeveralThreads) {
  put_file("threads.txt", "shared client");
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (client.get("/files/threads.txt").body == "shared client") ++good;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 200);
  EXPECT_LE(client.idle_connections(), 4u);
}

TEST(HttpNginxTls, TrustedCaAndHostName) {
  put_file("tls.bin", random_bytes(200'000, 4));
  http::Client<http::Tls> client(nginx().tls_base_url(), trusting_test_ca());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.get("/files/tls.bin").body.size(), 200'000u);
  EXPECT_EQ(client.get("/chunked/tls.bin").body, random_bytes(200'000, 4));
  EXPECT_EQ(client.idle_connections(), 1u);
  // An IP address is checked against the certificate's IP entries.
  http::Client<http::Tls> by_ip(tls_url(nginx().tls_port(), "127.0.0.1"), trusting_test_ca());
  EXPECT_EQ(by_ip.get("/files/tls.bin").status, 200);
}

TEST(HttpNginxTls, TcpOrTlsPicksByScheme) {
  put_file("either.txt", "either");
  http::Client<http::TcpOrTls> secure(nginx().tls_base_url(), trusting_test_ca());
  http::Client<http::TcpOrTls> plain(nginx().base_url(), no_proxy());
  EXPECT_EQ(secure.get("/files/either.txt").body, "either");
  EXPECT_EQ(plain.get("/files/either.txt").body, "either");
}

TEST(HttpNginxTls, AnyTransportReachesHttpsOnceTlsIsEnabled) {
  put_file("any.txt", "over TLS, chosen at run time");
  // Without the TLS hook (each test runs in a process of its own), https:// says how to get it.
  try {
    http::Client<http::AnyTransport> client(nginx().tls_base_url(), trusting_test_ca());
    FAIL() << "https without TLS";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("enable_tls"), std::string::npos) << e.what();
  }
  http::enable_tls();
  http::Client<http::AnyTransport> client(nginx().tls_base_url(), trusting_test_ca());
  const auto r = client.get("/files/any.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "over TLS, chosen at run time");
}

TEST(HttpNginxTls, UnknownCaIsRefusedByDefault) {
  // Neither the system store nor our test CA trusts the self-signed certificate.
  for (auto options : {no_proxy(), trusting_test_ca()}) {
    http::Client<http::Tls> client(tls_url(nginx().unknown_ca_tls_port()), options);
    try {
      client.get("/files/");
      FAIL() << "an untrusted certificate was accepted";
    } catch (const http::TransportError& e) {
      EXPECT_EQ(e.code(), errc::connection_failed);
      EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
      EXPECT_FALSE(e.progress().request_sent);
    }
  }
}

TEST(HttpNginxTls, WrongHostNameIsRefusedByDefault) {
  http::Client<http::Tls> client(tls_url(nginx().wrong_host_tls_port()), trusting_test_ca());
  try {
    client.get("/files/");
    FAIL() << "a certificate for another host was accepted";
  } catch (const http::TransportError& e) {
    EXPECT_EQ(e.code(), errc::connection_failed);
    EXPECT_NE(std::string(e.what()).find("mismatch"), std::string::npos) << e.what();
  }
  // server_name says which name to expect: the same certificate is then fine.
  auto options = trusting_test_ca();
  options.tls.server_name = "wrong.example";
  http::Client<http::Tls> named(tls_url(nginx().wrong_host_tls_port()), options);
  EXPECT_EQ(named.get("/status/204").status, 204);
}

TEST(HttpNginxTls, VerificationCanBeTurnedOff) {
  auto options = no_proxy();
  options.tls.verify_peer = false;
  http::Client<http::Tls> client(tls_url(nginx().unknown_ca_tls_port()), options);
  EXPECT_EQ(client.get("/status/204").status, 204);
}

TEST(HttpNginxTls, ClientCertificate) {
  http::Client<http::Tls> without(tls_url(nginx().mtls_port()), trusting_test_ca());
  EXPECT_EQ(without.get("/status/204").status, 400);  // nginx: "No required SSL certificate"
  auto options = trusting_test_ca();
  options.tls.client_cert_file = nginx().certs().client_cert().string();
  options.tls.client_key_file = nginx().certs().client_key().string();
  http::Client<http::Tls> with(tls_url(nginx().mtls_port()), options);
  EXPECT_EQ(with.get("/status/204").status, 204);
}

TEST(HttpNginxTls, MissingCaFileIsAClearError) {
  auto options = no_proxy();
  options.tls.ca_file = "/nonexistent/ca.pem";
  try {
    http::Client<http::Tls> client(nginx().tls_base_url(), options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.pem"), std::string::npos);
  }
}

class HttpProxy : public ::testing::Test {
 protected:
  static Tinyproxy& proxy() {
    static Tinyproxy server;
    return server;
  }
};

TEST_F(HttpProxy, PlainRequestsGoThroughTheProxy) {
  put_file("proxied.txt", "via proxy");
  auto options = no_proxy();
  options.proxy = http::ProxySettings{.http_proxy = proxy().url()};
  http::Client<http::Tcp> client(nginx().base_url(), options);
  EXPECT_EQ(client.get("/files/proxied.txt?marker=plain1").body, "via proxy");
  EXPECT_NE(proxy().log().find("GET http://127.0.0.1:" + std::to_string(nginx().port()) +
                               "/files/proxied.txt?marker=plain1"),
            std::string::npos)
      << proxy().log();
}

TEST_F(HttpProxy, HttpsTunnelsWithConnect) {
  put_file("tunnel.txt", "through a tunnel");
  auto options = trusting_test_ca();
  options.proxy = http::ProxySettings{.https_proxy = proxy().url()};
  http::Client<http::Tls> client(nginx().tls_base_url(), options);
  EXPECT_EQ(client.get("/files/tunnel.txt").body, "through a tunnel");
  EXPECT_EQ(client.get("/files/tunnel.txt").body, "through a tunnel");  // kept alive in the tunnel
  EXPECT_NE(proxy().log().find("CONNECT localhost:" + std::to_string(nginx().tls_port())), std::string::npos)
      << proxy().log();
}

TEST_F(HttpProxy, NoProxyIsHonoured) {
  put_file("direct.txt", "direct");
  auto options = no_proxy();
  options.proxy = http::ProxySettings{.http_proxy = proxy().url(), .no_proxy = "example.com, 127.0.0.0/8"};
  http::Client<http::Tcp> client(nginx().base_url(), options);
  EXPECT_EQ(client.get("/files/direct.txt?marker=bypassed7").body, "direct");
  EXPECT_EQ(proxy().log().find("marker=bypassed7"), std::string::npos) << proxy().log();
}

TEST_F(HttpProxy, EnvironmentVariablesAreReadByDefault) {
  put_file("env.txt", "env");
  ::setenv("http_proxy", proxy().url().c_str(), 1);
  ::unsetenv("no_proxy");
  ::unsetenv("NO_PROXY");
  http::Client<http::Tcp> client(nginx().base_url());
  ::unsetenv("http_proxy");
  EXPECT_EQ(client.get("/files/env.txt?marker=fromenv3").body, "env");
  EXPECT_NE(proxy().log().find("marker=fromenv3"), std::string::npos) << proxy().log();
}

TEST_F(HttpProxy, AProxyThatRefusesTheTunnelIsAClearError) {
  auto options = trusting_test_ca();
  options.proxy = http::ProxySettings{.https_proxy = nginx().base_url()};  // nginx is no proxy
  http::Client<http::Tls> client(nginx().tls_base_url(), options);
  try {
    client.get("/files/tunnel.txt");
    FAIL() << "no error";
  } catch (const http::TransportError& e) {
    EXPECT_EQ(e.code(), errc::connection_failed);
    EXPECT_NE(std::string(e.what()).find("CONNECT"), std::string::npos) << e.what();
    EXPECT_EQ(e.http_status(), 0);
  }
}
