// Test support: a real nginx on loopback for the HTTP client tests. One process (master_process
// off, daemon off), configured from scratch in its own TempDir, with one listener per TLS
// situation and a Unix socket; every listener serves the same locations (see locations()).
#pragma once

#include "process.hpp"
#include "tls_certs.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>

#include <grp.h>
#include <pwd.h>

namespace workspace_test {

class Nginx {
 public:
  // `certs` defaults to the per-process shared set (generating keys once per test process).
  // With `proxy_upstream` (e.g. http://127.0.0.1:8000), every listener also forwards /proxy/...
  // to it, websocket upgrades included, without buffering.
  explicit Nginx(std::shared_ptr<const TlsCerts> certs = TlsCerts::shared(), std::string proxy_upstream = {})
      : certs_(std::move(certs)), proxy_upstream_(std::move(proxy_upstream)) {
    const fs::path& d = dir_.path();
    fs::create_directories(root() / "files");
    fs::create_directories(root() / "upload");
    fs::create_directories(d / "temp");
    unix_socket_ = d / "nginx.sock";
    if (unix_socket_.native().size() >= sizeof(sockaddr_un{}.sun_path)) {
      // $TMPDIR is too deep for sun_path (108 bytes): put the socket in a short folder instead.
      socket_dir_.emplace(fs::path("/tmp"), "ws-nginx");
      unix_socket_ = socket_dir_->path() / "nginx.sock";
    }

    // Ports are picked free but may be taken by another process before nginx binds them (tests
    // run in parallel): then nginx exits with EADDRINUSE and we try again on new ports.
    constexpr int attempts = 8;
    for (int attempt = 1;; ++attempt) {
      const auto picked = free_tcp_ports(ports_.size());
      std::copy(picked.begin(), picked.end(), ports_.begin());
      write_file(config_path(), config());
      std::error_code ec;  // a fresh start: nothing left from a failed attempt
      for (const fs::path& stale : {pid_file(), unix_socket_, error_log(), d / "nginx.out"})
        fs::remove(stale, ec);

      process_.emplace(std::vector<std::string>{"nginx", "-p", d.string() + "/", "-c",
                                                config_path().string(), "-e", error_log().string(),
                                                "-g", "daemon off;"},
                       d / "nginx.out");
      if (wait_for_pid_file(*process_, pid_file(), std::chrono::seconds(20), error_log(),
                            "Address already in use"))
        break;

      const std::string log = file_tail(error_log()) + file_tail(d / "nginx.out");
      process_.reset();
      if (log.find("Address already in use") == std::string::npos || attempt == attempts)
        throw std::runtime_error("nginx did not start (attempt " + std::to_string(attempt) +
                                 ")\n" + log);
    }
    // No connect probe: nginx writes the pid file after bind() and listen() on every listener,
    // so connections already queue; a probe would only put noise in the error log that tests
    // may search.
  }

  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;
  ~Nginx() { process_.reset(); }  // stop nginx before its folder goes

  // Plain HTTP on 127.0.0.1.
  std::uint16_t port() const { return ports_[0]; }
  // TLS with the CA-signed certificate for localhost / 127.0.0.1 / ::1.
  std::uint16_t tls_port() const { return ports_[1]; }
  // TLS with a CA-signed certificate for wrong.example only.
  std::uint16_t wrong_host_tls_port() const { return ports_[2]; }
  // TLS with a self-signed certificate for localhost (issuer not trusted).
  std::uint16_t unknown_ca_tls_port() const { return ports_[3]; }
  // TLS with the CA-signed localhost certificate that requires a client certificate from the CA
  // (without one nginx completes the handshake and answers 400).
  std::uint16_t mtls_port() const { return ports_[4]; }
  // Plain HTTP on a Unix socket.
  const fs::path& unix_socket() const { return unix_socket_; }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  std::string tls_base_url() const { return "https://localhost:" + std::to_string(tls_port()); }

  // Document root: /files/X serves root()/files/X, /upload/X writes root()/upload/X.
  fs::path root() const { return dir_.path() / "root"; }
  fs::path files_dir() const { return root() / "files"; }
  fs::path upload_dir() const { return root() / "upload"; }

  const TlsCerts& certs() const { return *certs_; }
  fs::path error_log() const { return dir_.path() / "error.log"; }
  std::string error_log_text() const { return file_tail(error_log(), std::string::npos); }
  const fs::path& dir() const { return dir_.path(); }
  pid_t pid() const { return process_->pid(); }

 private:
  fs::path config_path() const { return dir_.path() / "nginx.conf"; }
  fs::path pid_file() const { return dir_.path() / "nginx.pid"; }

  // The locations every listener serves.
  std::string locations() const {
    const std::string files = (root() / "files").string();
    return R"(
    # Static files, sendfile, ranges, Content-Length.
    location /files/ { }

    # The same files, Transfer-Encoding: chunked: sub_filter must rewrite the body, so its header
    # filter drops Content-Length and HTTP/1.1 responses fall back to chunked. The pattern never
    # occurs in test data, so bytes pass through unchanged. (Empty files keep Content-Length: 0.)
    location /chunked/ {
      alias )" + files + R"(/;
      sub_filter_types *;
      sub_filter_once on;
      sub_filter_last_modified on;
      sub_filter "@@never@@" "x";
    }

    # WebDAV uploads into root/upload (GET serves them back).
    location /upload/ {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:rw all:r;
      client_max_body_size 0;
    }

    location = /status/429 {
      default_type application/json;
      add_header Retry-After 1 always;
      return 429 '{"message":"slow down"}';
    }
    location = /status/503 {
      default_type application/json;
      add_header Retry-After 1 always;
      return 503 '{"message":"slow down"}';
    }
    location = /status/404 {
      default_type application/json;
      return 404 '{"message":"no such thing"}';
    }
    location = /status/204 {
      return 204;
    }
    # keepalive_timeout 0 makes nginx answer "Connection: close" and close after the response.
    location = /close {
      keepalive_timeout 0;
      default_type text/plain;
      return 200 "bye";
    }
    # The connection's serial number: equal across requests only when the connection was reused.
    location = /connection {
      default_type text/plain;
      return 200 "$connection";
    }
    # The connection and how many requests it has carried: a pair never seen twice.
    location = /connection-request {
      default_type text/plain;
      return 200 "$connection:$connection_requests";
    }
    # Echo of the headers auth policies set (values are not JSON-escaped: keep them plain).
    location = /headers {
      default_type application/json;
      return 200 '{"authorization":"$http_authorization","x_api_key":"$http_x_api_key",)"
           R"("x_session_api_key":"$http_x_session_api_key","host":"$http_host"}';
    }
)";
  }

  std::string tls(const fs::path& cert, const fs::path& key) const {
    return "    ssl_certificate " + cert.string() + ";\n    ssl_certificate_key " + key.string() +
           ";\n    ssl_protocols TLSv1.2 TLSv1.3;\n";
  }

  std::string server(const std::string& listen, const std::string& extra) const {
    return "  server {\n    listen " + listen + ";\n    root " + root().string() + ";\n" + extra +
           locations() + proxy_location() + "  }\n";
  }

  std::string proxy_location() const {
    if (proxy_upstream_.empty()) return {};
    return "    location /proxy/ {\n      proxy_pass " + proxy_upstream_ +
           "/;\n      proxy_http_version 1.1;\n"
           "      proxy_set_header Upgrade $http_upgrade;\n"
           "      proxy_set_header Connection $http_connection;\n"
           "      proxy_buffering off;\n      proxy_request_buffering off;\n"
           "      proxy_read_timeout 3600s;\n    }\n";
  }

  std::string config() const {
    const fs::path& d = dir_.path();
    const TlsCerts& c = *certs_;
    auto on = [](std::uint16_t p) { return "127.0.0.1:" + std::to_string(p); };
    std::string conf = "# generated by tests/support/nginx.hpp\n";
    // One process: no privilege drop, no worker to outlive us. As root nginx still resolves the
    // `user` directive (default nobody/nogroup, missing on some systems): name root's own.
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwuid(0);
      const group* gr = ::getgrgid(0);
      if (pw != nullptr && gr != nullptr)
        conf += "user " + std::string(pw->pw_name) + " " + gr->gr_name + ";\n";
    }
    conf += "master_process off;\nworker_processes 1;\n";
    conf += "pid " + pid_file().string() + ";\n";
    conf += "lock_file " + (d / "nginx.lock").string() + ";\n";
    conf += "error_log " + error_log().string() + " info;\n";
    conf += "events { worker_connections 1024; }\n";
    conf += "http {\n";
    conf += "  access_log off;\n  server_tokens off;\n  sendfile on;\n";
    conf += "  default_type application/octet-stream;\n";
    conf += "  keepalive_requests 1000000;\n  keepalive_timeout 75s;\n";
    conf += "  client_max_body_size 0;\n";
    for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
      conf += "  " + std::string(t) + "_temp_path " + (d / "temp" / t).string() + ";\n";
    conf += server(on(port()), "");
    conf += server("unix:" + unix_socket_.string(), "");
    conf += server(on(tls_port()) + " ssl", tls(c.server_cert(), c.server_key()));
    conf += server(on(wrong_host_tls_port()) + " ssl",
                   tls(c.wrong_host_cert(), c.wrong_host_key()));
    conf += server(on(unknown_ca_tls_port()) + " ssl",
                   tls(c.unknown_ca_cert(), c.unknown_ca_key()));
    conf += server(on(mtls_port()) + " ssl",
                   tls(c.server_cert(), c.server_key()) + "    ssl_client_certificate " +
                       c.ca_cert().string() + ";\n    ssl_verify_client on;\n");
    conf += "}\n";
    return conf;
  }

  std::shared_ptr<const TlsCerts> certs_;
  std::string proxy_upstream_;
  TempDir dir_{"workspace-test-nginx"};
  std::optional<TempDir> socket_dir_;
  fs::path unix_socket_;
  std::array<std::uint16_t, 5> ports_{};
  std::optional<ChildProcess> process_;
};

}  // namespace workspace_test
