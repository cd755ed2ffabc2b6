// Self-tests of the server fixtures the HTTP client tests rely on. They talk raw HTTP/1.1 over
// POSIX sockets, so a fixture fault cannot hide behind (or be blamed on) the client under test.
#include "nginx.hpp"
#include "process.hpp"
#include "tinyproxy.hpp"
#include "tls_certs.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <sys/time.h>

namespace {

using namespace std::chrono_literals;
using namespace workspace_test;

// ---------------------------------------------------------------------------------------------
// Raw HTTP over a socket

UniqueFd connect_tcp(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  const sockaddr_in addr = loopback_v4(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("connect 127.0.0.1:" + std::to_string(port));
  return fd;
}

UniqueFd connect_unix(const fs::path& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  const sockaddr_un addr = unix_address(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("connect " + path.string());
  return fd;
}

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("send");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Reads until the peer closes, or until `stop_after` is seen (for responses on connections that
// stay open). A 10 s receive timeout turns a hang into a failure.
std::string receive(int fd, std::string_view stop_after = {}) {
  timeval tv{};
  tv.tv_sec = 10;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[16384];
  for (;;) {
    if (!stop_after.empty() && out.find(stop_after) != std::string::npos) return out;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("recv");
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

struct Response {
  std::string status_line;
  std::string head;  // header lines, each ending in \r\n
  std::string body;  // raw, not de-chunked

  bool has_header(std::string_view line) const {
    return head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
  }
  bool has_header_name(std::string_view name) const {
    return head.find("\r\n" + std::string(name) + ":") != std::string::npos;
  }
};

Response parse(const std::string& raw) {
  const auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) throw std::runtime_error("no end of headers in: " + raw);
  Response r;
  const auto first = raw.find("\r\n");
  r.status_line = raw.substr(0, first);
  r.head = raw.substr(first, end + 2 - first);
  r.body = raw.substr(end + 4);
  return r;
}

Response request(UniqueFd fd, const std::string& method, const std::string& target,
                 const std::string& extra_headers = {}, std::string_view body = {}) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers;
  if ((!body.empty() || method == "PUT") &&
      extra_headers.find("Transfer-Encoding") == std::string::npos)
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "Connection: close\r\n\r\n";
  req += body;
  send_all(fd.get(), req);
  return parse(receive(fd.get()));
}

Response get(std::uint16_t port, const std::string& target, const std::string& headers = {}) {
  return request(connect_tcp(port), "GET", target, headers);
}

// Decodes a chunked body strictly; throws on anything malformed.
std::string dechunk(std::string_view body) {
  std::string out;
  for (;;) {
    const auto eol = body.find("\r\n");
    if (eol == std::string_view::npos) throw std::runtime_error("chunk size line not terminated");
    const std::size_t size = std::stoul(std::string(body.substr(0, eol)), nullptr, 16);
    body.remove_prefix(eol + 2);
    if (size == 0) {
      if (body != "\r\n") throw std::runtime_error("bad chunked trailer");
      return out;
    }
    if (body.size() < size + 2 || body.substr(size, 2) != "\r\n")
      throw std::runtime_error("chunk data not terminated");
    out.append(body.substr(0, size));
    body.remove_prefix(size + 2);
  }
}

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

// Processes of a group that are not zombies. Killed orphans stay zombies until init reaps them,
// and kill(-group, 0) still finds those.
int live_members(pid_t group) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat;
    try {
      stat = read_file(entry.path() / "stat");
    } catch (const std::exception&) {
      continue;  // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces, so parse after the last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) continue;
    if (pgrp == group && state != 'Z' && state != 'X') ++n;
  }
  return n;
}

// Signals are delivered asynchronously: give a killed group a moment to become zombies.
bool group_dies(pid_t group) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (live_members(group) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// process.hpp

TEST(ProcessSupport, TempDirIsRemovedWithContents) {
  fs::path kept;
  {
    TempDir dir;
    kept = dir.path();
    write_file(dir.path() / "a" / "b.txt", "x");
    ASSERT_TRUE(fs::is_directory(kept));
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(ProcessSupport, ChildProcessReportsExitCode) {
  ChildProcess child({"sh", "-c", "exit 3"});
  EXPECT_EQ(child.wait_for_exit(5s), std::optional<int>(3));
  EXPECT_FALSE(child.running());
}

TEST(ProcessSupport, ChildProcessStopKillsTheWholeGroup) {
  pid_t group = 0;
  {
    ChildProcess child({"sh", "-c", "sleep 30 & sleep 30"});
    group = child.pid();
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(child.running());
  }
  EXPECT_TRUE(group_dies(group));
}

TEST(ProcessSupport, ChildProcessStopKillsWhatTheLeaderLeftBehind) {
  pid_t group = 0;
  {
    // The leader exits at once; its background child ignores SIGTERM and would run on.
    ChildProcess child({"sh", "-c", "trap '' TERM; sleep 30 & exit 0"});
    group = child.pid();
    ASSERT_EQ(child.wait_for_exit(5s), std::optional<int>(0));
    ASSERT_EQ(live_members(group), 1);  // the sleep is still there
  }
  EXPECT_TRUE(group_dies(group));
}

TEST(ProcessSupport, SparseFileTakesNoDisk) {
  TempDir dir;
  const fs::path file = dir.path() / "big";
  make_sparse_file(file, 1ull << 30);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, off_t{1} << 30);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
}

TEST(ProcessSupport, WaitForTcpThrowsWithLogTail) {
  TempDir dir;
  write_file(dir.path() / "log", "the server said: bind failed\n");
  const std::uint16_t port = free_tcp_port();
  try {
    wait_for_tcp(port, 100ms, dir.path() / "log");
    FAIL() << "expected a timeout";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bind failed"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// tls_certs.hpp

TEST(TlsCertsFixture, ChainsVerifyAsIntended) {
  const auto certs = TlsCerts::shared();
  const fs::path log = certs->dir() / "verify.log";
  auto verify = [&](const fs::path& cert, const char* purpose) {
    ChildProcess child({"openssl", "verify", "-CAfile", certs->ca_cert().string(), "-purpose",
                        purpose, cert.string()},
                       log);
    return child.wait_for_exit(30s);
  };
  EXPECT_EQ(verify(certs->server_cert(), "sslserver"), std::optional<int>(0)) << file_tail(log);
  EXPECT_EQ(verify(certs->wrong_host_cert(), "sslserver"), std::optional<int>(0));
  EXPECT_EQ(verify(certs->client_cert(), "sslclient"), std::optional<int>(0));
  EXPECT_NE(verify(certs->unknown_ca_cert(), "sslserver"), std::optional<int>(0));
  for (const auto& key : {certs->server_key(), certs->wrong_host_key(), certs->unknown_ca_key(),
                          certs->client_key()})
    EXPECT_GT(fs::file_size(key), 0u) << key;
}

// ---------------------------------------------------------------------------------------------
// nginx.hpp

class NginxFixture : public ::testing::Test {
 protected:
  Nginx nginx_;
};

TEST_F(NginxFixture, ServesStaticFileWithContentLength) {
  const std::string data = pattern(100000);
  write_file(nginx_.files_dir() / "dir" / "data.bin", data);
  const Response r = get(nginx_.port(), "/files/dir/data.bin");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.has_header("Content-Length: 100000")) << r.head;
  EXPECT_FALSE(r.has_header_name("Transfer-Encoding"));
  EXPECT_EQ(r.body, data);
}

TEST_F(NginxFixture, ChunkedLocationReallyChunks) {
  const std::string data = pattern(300000);  // several chunks
  write_file(nginx_.files_dir() / "data.bin", data);
  const Response r = get(nginx_.port(), "/chunked/data.bin");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.has_header("Transfer-Encoding: chunked")) << r.head;
  EXPECT_FALSE(r.has_header_name("Content-Length")) << r.head;
  EXPECT_EQ(dechunk(r.body), data);
}

TEST_F(NginxFixture, UnixSocketServesFiles) {
  write_file(nginx_.files_dir() / "hello.txt", "hello over unix\n");
  const Response r = request(connect_unix(nginx_.unix_socket()), "GET", "/files/hello.txt");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "hello over unix\n");
}

TEST_F(NginxFixture, StatusEndpoints) {
  Response r = get(nginx_.port(), "/status/429");
  EXPECT_EQ(r.status_line, "HTTP/1.1 429 Too Many Requests");
  EXPECT_TRUE(r.has_header("Retry-After: 1")) << r.head;
  EXPECT_TRUE(r.has_header("Content-Type: application/json")) << r.head;
  EXPECT_EQ(r.body, R"({"message":"slow down"})");

  r = get(nginx_.port(), "/status/503");
  EXPECT_EQ(r.status_line, "HTTP/1.1 503 Service Temporarily Unavailable");
  EXPECT_TRUE(r.has_header("Retry-After: 1")) << r.head;

  r = get(nginx_.port(), "/status/404");
  EXPECT_EQ(r.status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(r.body, R"({"message":"no such thing"})");

  r = get(nginx_.port(), "/status/204");
  EXPECT_EQ(r.status_line, "HTTP/1.1 204 No Content");
  EXPECT_EQ(r.body, "");
}

TEST_F(NginxFixture, CloseEndpointClosesAKeepAliveConnection) {
  UniqueFd fd = connect_tcp(nginx_.port());
  send_all(fd.get(), "GET /close HTTP/1.1\r\nHost: localhost\r\n\r\n");  // keep-alive asked
  const Response r = parse(receive(fd.get()));  // returns only because nginx closes
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.has_header("Connection: close")) << r.head;
  EXPECT_EQ(r.body, "bye");
}

TEST_F(NginxFixture, KeepAliveServesManyRequestsOnOneConnection) {
  write_file(nginx_.files_dir() / "k.txt", "k");
  UniqueFd fd = connect_tcp(nginx_.port());
  for (int i = 0; i < 3; ++i) {
    send_all(fd.get(), "GET /files/k.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const Response r = parse(receive(fd.get(), "\r\n\r\nk"));
    EXPECT_TRUE(r.has_header("Connection: keep-alive")) << r.head;
  }
}

TEST_F(NginxFixture, HeadersEndpointEchoesAuthHeaders) {
  const Response r = get(nginx_.port(), "/headers",
                         "Authorization: Bearer t0k\r\nX-API-Key: k1\r\nX-Session-API-Key: s1\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.has_header("Content-Type: application/json")) << r.head;
  EXPECT_EQ(r.body,
            R"({"authorization":"Bearer t0k","x_api_key":"k1","x_session_api_key":"s1",)"
            R"("host":"localhost"})");
}

TEST_F(NginxFixture, UploadPutsAndDeletes) {
  const std::string data = pattern(50000);
  Response r = request(connect_tcp(nginx_.port()), "PUT", "/upload/a/b/c.bin", {}, data);
  EXPECT_EQ(r.status_line, "HTTP/1.1 201 Created");
  EXPECT_EQ(read_file(nginx_.upload_dir() / "a" / "b" / "c.bin"), data);

  r = request(connect_tcp(nginx_.port()), "PUT", "/upload/a/b/c.bin",
              "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 204 No Content");  // replaced
  EXPECT_EQ(read_file(nginx_.upload_dir() / "a" / "b" / "c.bin"), "hello");

  r = request(connect_tcp(nginx_.port()), "DELETE", "/upload/a/b/c.bin");
  EXPECT_EQ(r.status_line, "HTTP/1.1 204 No Content");
  EXPECT_FALSE(fs::exists(nginx_.upload_dir() / "a" / "b" / "c.bin"));
}

TEST_F(NginxFixture, TlsListenersSpeakTls) {
  // Without a TLS library here: nginx answers plain HTTP on an ssl listener with its own 400.
  for (std::uint16_t port : {nginx_.tls_port(), nginx_.wrong_host_tls_port(),
                             nginx_.unknown_ca_tls_port(), nginx_.mtls_port()}) {
    const Response r = get(port, "/files/x");
    EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request") << port;
    EXPECT_NE(r.body.find("plain HTTP request was sent to HTTPS port"), std::string::npos);
  }
}

TEST_F(NginxFixture, ServesSparseGigabyteFile) {
  make_sparse_file(nginx_.files_dir() / "big", 1ull << 30);
  const Response r = request(connect_tcp(nginx_.port()), "HEAD", "/files/big");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.has_header("Content-Length: 1073741824")) << r.head;
}

// ---------------------------------------------------------------------------------------------
// tinyproxy.hpp

TEST(TinyproxyFixture, ForwardsAbsoluteFormRequestsAndLogsThem) {
  Nginx nginx;
  Tinyproxy proxy;
  write_file(nginx.files_dir() / "via.txt", "through the proxy\n");
  const std::string target = nginx.base_url() + "/files/via.txt";
  EXPECT_EQ(proxy.log().find("Request ("), std::string::npos) << proxy.log();  // a clean start
  const Response r = request(connect_tcp(proxy.port()), "GET", target);
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "through the proxy\n");
  EXPECT_NE(proxy.log().find("GET " + target + " HTTP/1.1"), std::string::npos) << proxy.log();
}

TEST(TinyproxyFixture, TunnelsConnectToAnyPort) {
  Nginx nginx;
  Tinyproxy proxy;
  write_file(nginx.files_dir() / "t.txt", "tunnelled\n");
  UniqueFd fd = connect_tcp(proxy.port());
  const std::string authority = "127.0.0.1:" + std::to_string(nginx.port());
  send_all(fd.get(), "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
  const std::string established = receive(fd.get(), "\r\n\r\n");
  EXPECT_NE(established.find(" 200 "), std::string::npos) << established;
  // Through the tunnel, straight to nginx.
  send_all(fd.get(), "GET /files/t.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  const Response r = parse(receive(fd.get()));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "tunnelled\n");
  EXPECT_NE(proxy.log().find("CONNECT " + authority + " HTTP/1.1"), std::string::npos)
      << proxy.log();
}

// ---------------------------------------------------------------------------------------------
// Parallel start-up

TEST(Fixtures, InstancesStartConcurrently) {
  constexpr int n = 3;
  std::vector<std::unique_ptr<Nginx>> servers(n);
  std::vector<std::unique_ptr<Tinyproxy>> proxies(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        const auto k = static_cast<std::size_t>(i);
        servers[k] = std::make_unique<Nginx>();
        proxies[k] = std::make_unique<Tinyproxy>();
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint16_t> ports;
  for (std::size_t i = 0; i < n; ++i) {
    if (errors[i]) std::rethrow_exception(errors[i]);
    const Nginx& s = *servers[i];
    for (auto p : {s.port(), s.tls_port(), s.wrong_host_tls_port(), s.unknown_ca_tls_port(),
                   s.mtls_port(), proxies[i]->port()})
      EXPECT_TRUE(ports.insert(p).second) << "port " << p << " used twice";
    write_file(s.files_dir() / "id.txt", std::to_string(i));
    EXPECT_EQ(get(s.port(), "/files/id.txt").body, std::to_string(i));
    EXPECT_EQ(request(connect_unix(s.unix_socket()), "GET", "/files/id.txt").body,
              std::to_string(i));
  }
}

}  // namespace
