// Client-wide settings: deadlines, TLS, proxies, limits.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/http/url.hpp>
#include <workspace/version.hpp>

#include <asio/ip/address.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

using namespace std::chrono_literals;

// Every wait is bounded: connect and idle always, the whole request when `request` is set. A
// duration of no_timeout (workspace::no_timeout) is none, as everywhere in the library.
struct Timeouts {
  // Name resolution, TCP connect, proxy CONNECT and TLS handshake together.
  std::chrono::milliseconds connect{10'000};
  // The longest any single read or write may wait for progress.
  std::chrono::milliseconds idle{60'000};
  // The whole exchange, from connect to the last body byte; no_timeout: only `idle` bounds it.
  std::chrono::milliseconds request = no_timeout;
};

struct TlsOptions {
  bool verify_peer = true;        // certificate chain and host name; turn off only in tests
  std::string ca_file{};          // PEM bundle to trust instead of the system store
  std::string ca_directory{};     // hashed CA directory to trust instead of the system store
  std::string client_cert_file{}; // PEM client certificate for mutual TLS
  std::string client_key_file{};  // its PEM private key
  std::string server_name{};      // name for SNI and verification when it differs from the host
};

// HTTP(S)_PROXY and NO_PROXY, as curl and Python's requests read them.
struct ProxySettings {
  std::string http_proxy{};   // proxy URL for http:// origins, e.g. "http://proxy:3128"
  std::string https_proxy{};  // proxy URL for https:// origins (tunnelled with CONNECT)
  std::string no_proxy{};     // comma-separated hosts, domains, IPs, CIDR ranges or "*"

  static ProxySettings none() { return {}; }

  static ProxySettings from_environment() {
    // Lower case first, as curl does; upper-case HTTP_PROXY is also honoured, like requests.
    const auto env = [](const char* lower, const char* upper) {
      if (const char* v = std::getenv(lower); v && *v) return std::string(v);
      if (const char* v = std::getenv(upper); v && *v) return std::string(v);
      return std::string();
    };
    ProxySettings s;
    s.http_proxy = env("http_proxy", "HTTP_PROXY");
    s.https_proxy = env("https_proxy", "HTTPS_PROXY");
    if (s.https_proxy.empty()) s.https_proxy = env("all_proxy", "ALL_PROXY");
    if (s.http_proxy.empty()) s.http_proxy = env("all_proxy", "ALL_PROXY");
    s.no_proxy = env("no_proxy", "NO_PROXY");
    return s;
  }

  // The proxy to use for an origin, if any.
  std::optional<Url> proxy_for(const Url& origin) const {
    const std::string& proxy = origin.is_tls() ? https_proxy : http_proxy;
    if (proxy.empty() || bypassed(origin)) return std::nullopt;
    Url url = Url::parse(proxy.find("://") == std::string::npos ? "http://" + proxy : proxy);
    if (url.scheme != "http")
      throw Error(errc::unsupported, "only http:// proxies are supported, not " + url.scheme);
    return url;
  }

  bool bypassed(const Url& origin) const {
    std::string_view list = no_proxy;
    while (!list.empty()) {
      const auto comma = list.find(',');
      const std::string_view entry = detail::trim_ows(list.substr(0, comma));
      if (matches(entry, origin)) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    return false;
  }

 private:
  static bool matches(std::string_view entry, const Url& origin) {
    if (entry.empty()) return false;
    if (entry == "*") return true;
    // "[v6]:port", "[v6]", "host:port" or "v4:port": a port limits the entry to that port.
    std::optional<std::string_view> port;
    if (entry.front() == '[') {
      const auto close = entry.find(']');
      if (close == std::string_view::npos) return false;
      const std::string_view rest = entry.substr(close + 1);
      if (!rest.empty()) {
        if (rest.front() != ':') return false;
        port = rest.substr(1);
      }
      entry = entry.substr(1, close - 1);
    } else if (const auto colon = entry.rfind(':');
               colon != std::string_view::npos && entry.find(':') == colon && entry.find('/') == entry.npos) {
      port = entry.substr(colon + 1);
      entry = entry.substr(0, colon);
    }
    if (port && *port != std::to_string(origin.port)) return false;
    if (entry.empty()) return false;

    std::error_code ec;
    const auto host_ip = asio::ip::make_address(origin.host, ec);
    const bool host_is_ip = !ec;
    if (const auto slash = entry.find('/'); slash != std::string_view::npos)
      return host_is_ip && in_cidr(entry.substr(0, slash), entry.substr(slash + 1), host_ip);
    const auto entry_ip = asio::ip::make_address(std::string(entry), ec);
    if (!ec) return host_is_ip && host_ip == entry_ip;
    if (host_is_ip) return false;  // names never match addresses by suffix

    // Domains match themselves and their subdomains; a leading "." or "*." and a trailing "."
    // (the DNS root) change nothing.
    if (entry.substr(0, 2) == "*.") entry.remove_prefix(2);
    if (!entry.empty() && entry.front() == '.') entry.remove_prefix(1);
    if (!entry.empty() && entry.back() == '.') entry.remove_suffix(1);
    if (entry.empty()) return false;
    std::string_view host = origin.host;
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (detail::iequals(host, entry)) return true;
    return host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
           detail::iequals(host.substr(host.size() - entry.size()), entry);
  }

  static bool in_cidr(std::string_view network, std::string_view bits_text, const asio::ip::address& addr) {
    std::error_code ec;
    const auto net = asio::ip::make_address(std::string(network), ec);
    if (ec || bits_text.empty() || bits_text.size() > 3 || net.is_v4() != addr.is_v4()) return false;
    unsigned bits = 0;
    for (char c : bits_text) {
      if (c < '0' || c > '9') return false;
      bits = bits * 10 + static_cast<unsigned>(c - '0');
    }
    const auto compare = [&](const auto& a, const auto& b) {
      if (bits > a.size() * 8) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        const unsigned take = bits > i * 8 ? std::min(8u, bits - static_cast<unsigned>(i * 8)) : 0u;
        const auto mask = static_cast<unsigned char>(take == 0 ? 0 : (0xFFu << (8 - take)) & 0xFFu);
        if ((a[i] & mask) != (b[i] & mask)) return false;
      }
      return true;
    };
    if (net.is_v4()) return compare(net.to_v4().to_bytes(), addr.to_v4().to_bytes());
    return compare(net.to_v6().to_bytes(), addr.to_v6().to_bytes());
  }
};

// Bounds on what a server's response head may hold.
struct ParserLimits {
  std::size_t max_header_bytes = 64 * 1024;  // status line + header block (and trailers)
  std::size_t max_header_count = 256;
  std::size_t max_chunk_line = 4 * 1024;     // a chunk-size line with its extensions
};

struct ClientOptions {
  Timeouts timeouts{};
  TlsOptions tls{};
  // Unset: read from the environment when the client is made. ProxySettings::none() disables.
  std::optional<ProxySettings> proxy{};
  // Idle keep-alive connections kept per client.
  std::size_t max_idle_connections = 8;
  // The largest response body kept in memory (Response::body); stream bigger ones with on_body.
  std::uint64_t max_body_in_memory = 512ull * 1024 * 1024;
  ParserLimits limits{};
  std::string user_agent = "workspace-cpp/0.1";
};

}  // namespace http
WORKSPACE_NAMESPACE_END
