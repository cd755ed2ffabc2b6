// A stream behind a virtual interface, for the one alternative of AnyTransport that must not
// name its type (TLS: naming it would make every user of AnyTransport parse OpenSSL's headers).
// The operations take handlers of any type, as Asio's do; each is moved into a callback that the
// implementation completes on the stream's executor, its cancellation slot passed along.
#pragma once

#include <workspace/version.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/buffer.hpp>
#include <asio/cancellation_signal.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
namespace http::detail {

struct ErasedStream {
  using Callback = std::function<void(std::error_code, std::size_t)>;
  using WaitCallback = std::function<void(std::error_code)>;

  virtual ~ErasedStream() = default;
  virtual void read_some(asio::mutable_buffer buffer, asio::cancellation_slot slot, Callback done) = 0;
  virtual void write_some(asio::const_buffer buffer, asio::cancellation_slot slot, Callback done) = 0;
  virtual void wait_readable(asio::cancellation_slot slot, WaitCallback done) = 0;
  virtual asio::any_io_executor executor() = 0;
  virtual void close() noexcept = 0;
  virtual void shutdown_send() noexcept = 0;
  virtual int native_handle() = 0;
  virtual bool has_buffered() = 0;
};

// A stream of type S behind ErasedStream (a template, so that nothing of S is instantiated until
// one is made).
template <class S>
class ErasedStreamOf final : public ErasedStream {
 public:
  explicit ErasedStreamOf(S stream) : stream_(std::move(stream)) {}
  void read_some(asio::mutable_buffer buffer, asio::cancellation_slot slot, Callback done) override {
    stream_.async_read_some(buffer, asio::bind_cancellation_slot(slot, std::move(done)));
  }
  void write_some(asio::const_buffer buffer, asio::cancellation_slot slot, Callback done) override {
    stream_.async_write_some(buffer, asio::bind_cancellation_slot(slot, std::move(done)));
  }
  void wait_readable(asio::cancellation_slot slot, WaitCallback done) override {
    stream_.async_wait_readable(asio::bind_cancellation_slot(slot, std::move(done)));
  }
  asio::any_io_executor executor() override { return stream_.get_executor(); }
  void close() noexcept override { stream_.close(); }
  void shutdown_send() noexcept override { stream_.shutdown_send(); }
  int native_handle() override { return stream_.native_handle(); }
  bool has_buffered() override {
    if constexpr (requires { stream_.has_buffered(); }) return stream_.has_buffered();
    else return false;
  }

 private:
  S stream_;
};

// Makes a handler of any type (move-only ones too) a copyable callback.
template <class Handler>
auto erase_handler(Handler&& handler) {
  auto held = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
  return [held](auto... results) { std::move(*held)(results...); };
}

// The first non-empty buffer of a sequence: one read or write may move fewer bytes than asked.
template <class Buffers, class Buffer>
Buffer first_buffer(const Buffers& buffers) {
  for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
    if (Buffer b(*it); b.size() > 0) return b;
  return Buffer();
}

// The erased stream as an Asio stream the client can hold by value.
class ErasedStreamHandle {
 public:
  using executor_type = asio::any_io_executor;

  explicit ErasedStreamHandle(std::unique_ptr<ErasedStream> stream) : stream_(std::move(stream)) {}

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          stream_->read_some(first_buffer<Buffers, asio::mutable_buffer>(b), slot, erase_handler(std::move(handler)));
        },
        token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          stream_->write_some(first_buffer<Buffers, asio::const_buffer>(b), slot, erase_handler(std::move(handler)));
        },
        token, buffers);
  }
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [this](auto handler) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          stream_->wait_readable(slot, erase_handler(std::move(handler)));
        },
        token);
  }
  executor_type get_executor() { return stream_->executor(); }
  void close() noexcept { stream_->close(); }
  void shutdown_send() noexcept { stream_->shutdown_send(); }
  int native_handle() { return stream_->native_handle(); }
  bool has_buffered() { return stream_->has_buffered(); }

 private:
  std::unique_ptr<ErasedStream> stream_;
};

}  // namespace http::detail
WORKSPACE_NAMESPACE_END
