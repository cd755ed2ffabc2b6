// AnyTransport: unix://, http:// or https://, chosen when the client is made, for addresses that
// come from configuration (DOCKER_HOST). It names no OpenSSL type: https:// works once the
// program has called http::enable_tls() (<workspace/http/tls.hpp>; AnyWorkspace does), and is
// otherwise an Error saying so.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/detail/erased_stream.hpp>
#include <workspace/http/detail/io.hpp>
#include <workspace/http/options.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/version.hpp>

#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

struct AnyTransport {
  using Stream = detail::VariantStream<UnixSocket::Stream, Tcp::Stream, detail::ErasedStreamHandle>;

  static Origin make_origin(std::string_view address, const ClientOptions& options) {
    if (address.substr(0, 7) == "unix://" || (!address.empty() && address.front() == '/'))
      return UnixSocket::make_origin(address, options);
    auto origin = detail::make_url_origin(address, options);
    if (origin.url.is_tls() && detail::tls_support() == nullptr)
      throw Error(errc::unsupported, "https:// needs TLS: call workspace::http::enable_tls() once, from a "
                                     "translation unit that includes <workspace/http/tls.hpp> (" +
                                         origin.description + ")");
    return origin;
  }
  template <class Executor>
  static Task<Stream> connect(Executor executor, const Origin& origin, detail::Clock::time_point deadline) {
    if (!origin.unix_path.empty()) co_return Stream(co_await UnixSocket::connect(executor, origin, deadline));
    if (!origin.url.is_tls()) co_return Stream(co_await Tcp::connect(executor, origin, deadline));
    co_return Stream(detail::ErasedStreamHandle(
        co_await detail::tls_support()->connect(asio::any_io_executor(executor), origin, deadline)));
  }
};

}  // namespace http
WORKSPACE_NAMESPACE_END
