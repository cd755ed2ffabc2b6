// TLS: the transports that speak it (Tls for https://, TcpOrTls for either, chosen by the URL's
// scheme) and what AnyTransport needs to speak it too. The one header of the HTTP layer that
// includes OpenSSL's: a translation unit that never includes it (directly, through
// <workspace/http.hpp> or the remote back ends' headers) parses none of them, and a program none
// of whose translation units includes it need not link OpenSSL.
//
// TLS verifies the chain and the host name (or IP address) by default, against the system store
// or TlsOptions::ca_file/ca_directory; SNI is sent; a client certificate is optional.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/http/detail/erased_stream.hpp>
#include <workspace/http/detail/io.hpp>
#include <workspace/http/options.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/version.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <system_error>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {

inline std::shared_ptr<asio::ssl::context> make_tls_context(const TlsOptions& options) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  std::error_code ec;
  const auto fail = [&](const std::string& what) {
    throw Error(errc::invalid_argument, "TLS set-up: " + what + ": " + ec.message());
  };
  if (!options.ca_file.empty()) {
    context->load_verify_file(options.ca_file, ec);
    if (ec) fail("cannot load CA file " + options.ca_file);
  }
  if (!options.ca_directory.empty()) {
    context->add_verify_path(options.ca_directory, ec);
    if (ec) fail("cannot use CA directory " + options.ca_directory);
  }
  if (options.ca_file.empty() && options.ca_directory.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) fail("cannot load the system CA store");
  }
  if (!options.client_cert_file.empty()) {
    context->use_certificate_chain_file(options.client_cert_file, ec);
    if (ec) fail("cannot load client certificate " + options.client_cert_file);
    context->use_private_key_file(
        options.client_key_file.empty() ? options.client_cert_file : options.client_key_file,
        asio::ssl::context::pem, ec);
    if (ec) fail("cannot load client key");
  }
  context->set_verify_mode(options.verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none);
  return context;
}

// A read handler that reports a TLS end without close_notify as the end of the stream, keeping
// the wrapped handler's cancellation slot (its executor is the stream's, as for any handler of
// the stream's own).
template <class Handler>
struct TruncationIsEnd {
  Handler handler;
  using cancellation_slot_type = asio::associated_cancellation_slot_t<Handler>;
  cancellation_slot_type get_cancellation_slot() const noexcept { return asio::get_associated_cancellation_slot(handler); }
  void operator()(std::error_code ec, std::size_t n) {
    if (ec == asio::ssl::error::stream_truncated) ec = asio::error::eof;
    std::move(handler)(ec, n);
  }
};

// TLS over a connected socket: SNI, chain and host-name verification. (A template for build
// time only; it is always BasicTlsStream<asio::ip::tcp::socket>, that is TlsStream.)
template <class Socket>
class BasicTlsStream {
 public:
  using executor_type = typename Socket::executor_type;

  BasicTlsStream(Socket socket, asio::ssl::context& context)
      : stream_(std::make_unique<asio::ssl::stream<Socket>>(std::move(socket), context)) {}

  Task<void> handshake(const Origin& origin, Clock::time_point deadline) {
    const std::string& name = origin.tls_options.server_name.empty() ? origin.url.host
                                                                     : origin.tls_options.server_name;
    SSL* ssl = stream_->native_handle();
    std::error_code ec;
    (void)asio::ip::make_address(name, ec);
    const bool is_ip = !ec;
    if (!is_ip)  // SNI takes names, not addresses; SSL_set_tlsext_host_name is a C-cast macro
      SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str()));
    if (origin.tls_options.verify_peer) {
      // OpenSSL's own RFC 6125 check reports *why* a certificate was refused.
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (is_ip) X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      else X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
    Watchdog watchdog(stream_->get_executor());
    watchdog.arm([this] { close(); }, deadline);
    std::tie(ec) = co_await stream_->async_handshake(asio::ssl::stream_base::client, compat::as_tuple(asio::use_awaitable));
    watchdog.disarm();
    const std::string where = "TLS handshake with " + host_port(origin.url.host, origin.url.port);
    if (watchdog.fired()) throw Error(errc::timed_out, where + ": timed out");
    if (ec) {
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK)
        throw Error(errc::connection_failed,
                    where + ": certificate refused: " + X509_verify_cert_error_string(verify));
      throw Error(errc::connection_failed, where + ": " + ec.message());
    }
  }

  // A peer that closes without close_notify after a complete message is common and harmless
  // for framed HTTP messages; the parser decides whether the message was cut: such an end reads
  // as the end of the stream. The caller's cancellation slot goes through.
  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) { stream_->async_read_some(b, TruncationIsEnd<decltype(handler)>{std::move(handler)}); },
        token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return stream_->async_write_some(buffers, std::forward<Token>(token));
  }
  // Readable: bytes wait in the TLS layer, or on the socket.
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [this](auto handler) {
          if (has_buffered()) {
            asio::post(stream_->get_executor(), asio::bind_cancellation_slot(asio::cancellation_slot(),
                                                                             [h = std::move(handler)]() mutable { std::move(h)(std::error_code()); }));
            return;
          }
          stream_->lowest_layer().async_wait(Socket::wait_read, std::move(handler));
        },
        token);
  }
  executor_type get_executor() { return stream_->get_executor(); }
  void close() noexcept {
    std::error_code ignored;
    stream_->lowest_layer().close(ignored);
  }
  void shutdown_send() noexcept {
    std::error_code ignored;
    stream_->lowest_layer().shutdown(Socket::shutdown_send, ignored);
  }
  int native_handle() { return stream_->lowest_layer().native_handle(); }
  // Bytes that arrived but wait inside the TLS layer (decrypted, or records not yet decrypted):
  // poll() on the socket does not see them.
  bool has_buffered() {
    SSL* ssl = stream_->native_handle();
    return SSL_pending(ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0;
  }

 private:
  std::unique_ptr<asio::ssl::stream<Socket>> stream_;
};

using TlsStream = BasicTlsStream<asio::ip::tcp::socket>;

// A TCP or a TLS stream, as the URL's scheme said.
using TcpOrTlsStream = VariantStream<PlainStream<asio::ip::tcp::socket>, TlsStream>;

}  // namespace detail

struct Tls {
  using Stream = detail::TlsStream;

  static Origin make_origin(std::string_view url, const ClientOptions& options) {
    auto origin = detail::make_url_origin(url, options);
    if (!origin.url.is_tls()) throw Error(errc::invalid_argument, "http::Tls needs an https:// URL, not " + origin.description);
    if (!origin.tls) origin.tls = detail::make_tls_context(options.tls);
    return origin;
  }
  template <class Executor>
  static Task<Stream> connect(Executor executor, const Origin& origin, detail::Clock::time_point deadline) {
    Stream stream(co_await detail::connect_origin_tcp(executor, origin, deadline, true),
                  *std::static_pointer_cast<asio::ssl::context>(origin.tls));
    co_await stream.handshake(origin, deadline);
    co_return stream;
  }
};

struct TcpOrTls {
  using Stream = detail::TcpOrTlsStream;

  static Origin make_origin(std::string_view url, const ClientOptions& options) {
    auto origin = detail::make_url_origin(url, options);
    if (origin.url.is_tls() && !origin.tls) origin.tls = detail::make_tls_context(options.tls);
    return origin;
  }
  template <class Executor>
  static Task<Stream> connect(Executor executor, const Origin& origin, detail::Clock::time_point deadline) {
    if (!origin.url.is_tls()) co_return Stream(co_await Tcp::connect(executor, origin, deadline));
    co_return Stream(co_await Tls::connect(executor, origin, deadline));
  }
};

namespace detail {

// TLS for AnyTransport, made only where enable_tls() is called or a TLS client connects: a
// variable template, so that merely including this header instantiates none of the connect and
// handshake code (that would cost every translation unit seconds of compile time).
template <class Executor>
Task<std::unique_ptr<ErasedStream>> connect_erased(Executor executor, const Origin& origin, Clock::time_point deadline) {
  co_return std::make_unique<ErasedStreamOf<TlsStream>>(co_await Tls::connect(executor, origin, deadline));
}

template <class Executor>
inline const TlsSupport tls_support_for{
    [](const TlsOptions& options) -> std::shared_ptr<void> { return make_tls_context(options); },
    [](asio::any_io_executor executor, const Origin& origin, Clock::time_point deadline) {
      return connect_erased(Executor(std::move(executor)), origin, deadline);
    }};

}  // namespace detail

// Lets AnyTransport (a DockerWorkspace's DOCKER_HOST) reach https:// servers. Call it once, from
// a translation unit that includes this header; opening any TLS client does it too, and so does
// AnyWorkspace.
template <class Executor = asio::any_io_executor>
void enable_tls() {
  static const bool enabled = (detail::tls_support() = &detail::tls_support_for<Executor>, true);
  (void)enabled;
}

}  // namespace http
WORKSPACE_NAMESPACE_END
