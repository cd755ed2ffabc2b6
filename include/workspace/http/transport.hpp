// Transports: how a client reaches its server. Each is a type with
//   Stream                                   an Asio AsyncReadStream/AsyncWriteStream with close()
//                                            and async_wait_readable()
//   static Origin make_origin(address, opts) parse the address once, per client
//   static Task<Stream> connect(executor, origin, deadline)
// so the client is one template whatever the wire (Beast's transport-as-parameter idea).
// connect() is a coroutine template on the executor, so that a translation unit that includes
// this header instantiates none of Asio's resolver or socket operations until a client actually
// connects: that keeps the headers cheap to include.
//
//   Tcp        http://host[:port][/base]     plain TCP, through HTTP_PROXY when set
//   UnixSocket /path/to.sock or unix:///path/to.sock
// and, in their own headers, those that need TLS (<workspace/http/tls.hpp>: Tls, TcpOrTls) and
// AnyTransport (<workspace/http/any_transport.hpp>). This header parses no OpenSSL header.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/detail/base64.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/detail/io.hpp>
#include <workspace/http/detail/parser.hpp>
#include <workspace/http/options.hpp>
#include <workspace/http/url.hpp>
#include <workspace/version.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/write.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <sys/un.h>

#include <chrono>
#include <concepts>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

WORKSPACE_COROUTINES_BEGIN
WORKSPACE_NAMESPACE_BEGIN
namespace http {

// What a client knows about its server, computed once from its address (a transport's
// make_origin() makes it; its connect() reads it).
struct Origin {
  Url url{};                       // scheme, host, port and base path (Tcp, Tls, TcpOrTls)
  std::string unix_path{};         // UnixSocket
  std::string host_header{};       // value of Host
  std::string description{};       // for messages: the URL without credentials, or unix:<path>
  std::string base_path{};         // prefix for request targets, "" for none
  std::optional<Url> proxy{};      // the proxy to go through, if any
  std::string proxy_authorization{};  // "Basic ..." from the proxy URL's user information
  bool absolute_form = false;      // plain HTTP through a proxy: targets are absolute URLs
  // The TLS context (an asio::ssl::context, which only <workspace/http/tls.hpp> knows), shared
  // by all connections: loading CAs is costly. Empty for plain origins, or when no TLS support
  // was compiled in.
  std::shared_ptr<void> tls{};
  TlsOptions tls_options{};
};


namespace detail {

// What <workspace/http/tls.hpp> provides to the transports that choose TLS at run time without
// naming OpenSSL (AnyTransport): set once by that header, wherever in the program it is
// included.
struct ErasedStream;
struct TlsSupport {
  std::shared_ptr<void> (*make_context)(const TlsOptions&);
  Task<std::unique_ptr<ErasedStream>> (*connect)(asio::any_io_executor, const Origin&, Clock::time_point);
};
inline const TlsSupport*& tls_support() noexcept {
  static const TlsSupport* support = nullptr;
  return support;
}

// "host:port" for messages; the address never carries credentials.
inline std::string host_port(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Closes a socket, for a watchdog.
template <class Socket>
std::function<void()> closer(Socket& socket) {
  return [&socket] {
    std::error_code ignored;
    socket.close(ignored);
  };
}

template <class Executor>
Task<asio::ip::tcp::socket> connect_tcp(Executor executor, std::string host, std::uint16_t port,
                                        Clock::time_point deadline) {
  using tcp = asio::ip::tcp;
  const std::string where = host_port(host, port);
  std::error_code ec;
  std::vector<tcp::endpoint> endpoints;
  if (const auto address = asio::ip::make_address(host, ec); !ec) {
    endpoints.emplace_back(address, port);
  } else {
    // getaddrinfo, called here: Asio's asynchronous resolve would start a thread of its own. It
    // is bounded by the system resolver's own timeouts.
    tcp::resolver resolver(executor);
    const auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) throw Error(errc::connection_failed, "resolve " + host + ": " + ec.message());
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  std::error_code last = asio::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    tcp::socket socket(executor);
    open_cloexec(socket, endpoint.protocol());
    Watchdog watchdog(executor);
    watchdog.arm(closer(socket), deadline);
    std::tie(last) = co_await socket.async_connect(endpoint, compat::as_tuple(asio::use_awaitable));
    watchdog.disarm();
    if (watchdog.fired()) throw Error(errc::timed_out, "connect to " + where + ": timed out");
    if (!last) {
      socket.set_option(tcp::no_delay(true), ec);  // heads and bodies go out in whole writes
      co_return socket;
    }
  }
  throw Error(errc::connection_failed, "connect to " + where + ": " + last.message());
}

// Asks an HTTP proxy for a tunnel to `authority` (host:port).
template <class Stream>
Task<void> connect_tunnel(Stream& stream, const Origin& origin, Clock::time_point deadline) {
  const std::string authority = host_port(origin.url.host, origin.url.port);
  std::string request = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (!origin.proxy_authorization.empty())
    request += "Proxy-Authorization: " + origin.proxy_authorization + "\r\n";
  request += "\r\n";
  const std::string where = "CONNECT " + authority + " through proxy " + origin.proxy->str();
  Watchdog watchdog(co_await asio::this_coro::executor);
  watchdog.arm([&stream] { stream.close(); }, deadline);
  const auto fail = [&](const std::error_code& e) {
    watchdog.disarm();
    if (watchdog.fired()) throw Error(errc::timed_out, where + ": timed out");
    throw Error(errc::connection_failed, where + ": " + e.message());
  };
  auto [written, n_written] = co_await asio::async_write(stream, asio::buffer(request), compat::as_tuple(asio::use_awaitable));
  (void)n_written;
  if (written) fail(written);
  ResponseParser parser;
  parser.start(true);  // a 2xx to CONNECT has no body; the tunnel starts right after the head
  std::string buffer;
  char chunk[4096];
  std::size_t used = 0;
  while (!parser.head_done()) {
    auto [e, n] = co_await stream.async_read_some(asio::buffer(chunk), compat::as_tuple(asio::use_awaitable));
    if (e) fail(e);
    buffer.append(chunk, n);
    used += parser.parse(std::string_view(buffer).substr(used), [](std::string_view) {});
  }
  watchdog.disarm();
  const int status = parser.head().status;
  if (status == 407) throw Error(errc::authentication_failed, where + ": proxy authentication required", status, {});
  if (status < 200 || status >= 300)
    throw Error(errc::connection_failed, where + ": proxy answered " + std::to_string(status) + " " + parser.head().reason, status, {});
  if (used != buffer.size()) throw Error(errc::protocol_error, where + ": proxy sent data before the TLS handshake");
}

// TCP to the origin, or to its proxy (tunnelled when `tunnel`).
template <class Executor>
Task<asio::ip::tcp::socket> connect_origin_tcp(Executor executor, const Origin& origin, Clock::time_point deadline,
                                               bool tunnel) {
  if (!origin.proxy) co_return co_await connect_tcp(executor, origin.url.host, origin.url.port, deadline);
  PlainStream<asio::ip::tcp::socket> stream(co_await connect_tcp(executor, origin.proxy->host, origin.proxy->port, deadline));
  if (tunnel) co_await connect_tunnel(stream, origin, deadline);
  co_return std::move(stream.socket());
}

// One of several streams, chosen when the connection is made: each operation goes to the one
// held. The executor is type-erased, since the alternatives' executors may differ in type.
template <class... Streams>
class VariantStream {
 public:
  using executor_type = asio::any_io_executor;

  template <class S>
    requires(std::same_as<S, Streams> || ...)
  explicit VariantStream(S stream) : stream_(std::move(stream)) {}

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          std::visit([&](auto& s) { s.async_read_some(b, std::move(handler)); }, stream_);
        },
        token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          std::visit([&](auto& s) { s.async_write_some(b, std::move(handler)); }, stream_);
        },
        token, buffers);
  }
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [this](auto handler) { std::visit([&](auto& s) { s.async_wait_readable(std::move(handler)); }, stream_); },
        token);
  }
  executor_type get_executor() {
    return std::visit([](auto& s) { return executor_type(s.get_executor()); }, stream_);
  }
  void close() noexcept {
    std::visit([](auto& s) { s.close(); }, stream_);
  }
  void shutdown_send() noexcept {
    std::visit([](auto& s) { s.shutdown_send(); }, stream_);
  }
  int native_handle() {
    return std::visit([](auto& s) { return s.native_handle(); }, stream_);
  }
  bool has_buffered() {
    return std::visit(
        [](auto& s) {
          if constexpr (requires { s.has_buffered(); }) return s.has_buffered();
          else return false;
        },
        stream_);
  }

 private:
  std::variant<Streams...> stream_;
};

inline Origin make_url_origin(std::string_view address, const ClientOptions& options) {
  Origin origin;
  origin.url = Url::parse(address);
  if (origin.url.scheme != "http" && origin.url.scheme != "https")
    throw Error(errc::invalid_argument, "unsupported URL scheme for an HTTP client: " + origin.url.scheme);
  origin.host_header = origin.url.authority();
  origin.description = origin.url.scheme + "://" + origin.url.authority();
  if (origin.url.path != "/") {
    origin.base_path = origin.url.path;
    while (!origin.base_path.empty() && origin.base_path.back() == '/') origin.base_path.pop_back();
  }
  const ProxySettings proxies = options.proxy ? *options.proxy : ProxySettings::from_environment();
  origin.proxy = proxies.proxy_for(origin.url);
  if (origin.proxy) {
    if (!origin.proxy->userinfo.empty())
      origin.proxy_authorization = "Basic " + workspace::detail::base64_encode(percent_decode(origin.proxy->userinfo));
    origin.absolute_form = !origin.url.is_tls();
  }
  origin.tls_options = options.tls;
  if (origin.url.is_tls() && tls_support() != nullptr) origin.tls = tls_support()->make_context(options.tls);
  return origin;
}

}  // namespace detail

struct Tcp {
  using Stream = detail::PlainStream<asio::ip::tcp::socket>;

  static Origin make_origin(std::string_view url, const ClientOptions& options) {
    auto origin = detail::make_url_origin(url, options);
    if (origin.url.is_tls()) throw Error(errc::invalid_argument, "http::Tcp cannot reach " + origin.description + "; use Tls or TcpOrTls");
    return origin;
  }
  template <class Executor>
  static Task<Stream> connect(Executor executor, const Origin& origin, detail::Clock::time_point deadline) {
    co_return Stream(co_await detail::connect_origin_tcp(executor, origin, deadline, false));
  }
};

struct UnixSocket {
  using Stream = detail::PlainStream<asio::local::stream_protocol::socket>;

  // "/var/run/docker.sock" or "unix:///var/run/docker.sock".
  static Origin make_origin(std::string_view address, const ClientOptions&) {
    Origin origin;
    if (address.substr(0, 7) == "unix://") address.remove_prefix(7);
    if (address.empty()) throw Error(errc::invalid_argument, "empty Unix socket path");
    if (address.size() >= sizeof(sockaddr_un{}.sun_path))
      throw Error(errc::invalid_argument, "Unix socket path too long: " + std::string(address));
    origin.unix_path = std::string(address);
    origin.host_header = "localhost";  // HTTP/1.1 needs one; docker-py and curl send this
    origin.description = "unix:" + origin.unix_path;
    return origin;
  }
  template <class Executor>
  static Task<Stream> connect(Executor executor, const Origin& origin, detail::Clock::time_point deadline) {
    using protocol = asio::local::stream_protocol;
    protocol::socket socket(executor);
    detail::open_cloexec(socket, protocol());
    detail::Watchdog watchdog(executor);
    watchdog.arm(detail::closer(socket), deadline);
    auto [ec] = co_await socket.async_connect(protocol::endpoint(origin.unix_path), compat::as_tuple(asio::use_awaitable));
    watchdog.disarm();
    if (watchdog.fired()) throw Error(errc::timed_out, "connect to " + origin.description + ": timed out");
    if (ec == std::errc::no_such_file_or_directory)
      throw Error(errc::connection_failed, "connect to " + origin.description + ": no such socket");
    if (ec) throw Error(errc::connection_failed, "connect to " + origin.description + ": " + ec.message());
    co_return Stream(std::move(socket));
  }
};

template <class T>
concept Transport = requires(asio::any_io_executor executor, const Origin& origin, const ClientOptions& options,
                             detail::Clock::time_point deadline) {
  typename T::Stream;
  { T::make_origin(std::string_view{}, options) } -> std::same_as<Origin>;
  { T::connect(executor, origin, deadline) } -> std::same_as<Task<typename T::Stream>>;
} && std::movable<typename T::Stream>;

}  // namespace http
WORKSPACE_NAMESPACE_END
WORKSPACE_COROUTINES_END
