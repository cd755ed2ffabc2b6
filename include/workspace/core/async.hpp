// The library's asynchronous model, on Asio's universal one:
//  - every asynchronous operation completes with (std::exception_ptr, T): the exception is the
//    whole workspace::Error (category, message, HTTP status, the server's words), which an
//    error_code would lose; use_awaitable and use_future rethrow it, a callback gets it;
//  - an operation is a coroutine (asio::awaitable) started by asio::async_initiate on the
//    executor the caller gives, so callbacks, use_awaitable, deferred, use_future and
//    parallel_group all work, and per-operation cancellation reaches it through the token's
//    cancellation slot;
//  - the blocking API runs the same coroutine on an io_context of the calling thread: one
//    implementation of every protocol;
//  - names that moved between Asio versions (1.22 keeps deferred, as_tuple and parallel_group
//    under asio::experimental; 1.24 moved deferred and as_tuple out) are given once, here.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/io_context.hpp>
#include <asio/system_executor.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/version.hpp>
#if ASIO_VERSION >= 102400
#include <asio/as_tuple.hpp>
#include <asio/deferred.hpp>
#else
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#endif

#include <exception>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

// GCC 12 and 13 take some coroutine frames, which Asio allocates with a class-specific operator
// new, for a mismatched new/delete (-Wmismatched-new-delete, a false positive). A header whose
// coroutines meet it puts them between these, so that no user's -Werror trips on our code.
#if defined(__GNUC__) && !defined(__clang__)
#define WORKSPACE_COROUTINES_BEGIN \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmismatched-new-delete\"")
#define WORKSPACE_COROUTINES_END _Pragma("GCC diagnostic pop")
#else
#define WORKSPACE_COROUTINES_BEGIN
#define WORKSPACE_COROUTINES_END
#endif

WORKSPACE_NAMESPACE_BEGIN

// What every asynchronous operation of the library hands its completion.
template <class T>
using Completion = void(std::exception_ptr, T);

// An asynchronous operation written as a coroutine.
template <class T>
using Task = asio::awaitable<T, asio::any_io_executor>;

// The names that moved between Asio versions, for the caller's code and ours.
namespace compat {
#if ASIO_VERSION >= 102400
using asio::as_tuple;
using asio::deferred;
#else
using asio::experimental::as_tuple;
using asio::experimental::deferred;
#endif
using asio::experimental::make_parallel_group;
using asio::experimental::wait_for_all;
using asio::experimental::wait_for_one;
}  // namespace compat

namespace detail {

template <class A>
struct task_value;
template <class T, class E>
struct task_value<asio::awaitable<T, E>> {
  using type = T;
};

// The coroutine `make()` returns, in a frame that owns `make` (and so what it captured) until
// the coroutine ends.
template <class Make>
auto owning(Make make) -> std::invoke_result_t<Make&> {
  using T = typename task_value<std::invoke_result_t<Make&>>::type;
  if constexpr (std::is_void_v<T>) {
    co_await make();
  } else {
    co_return co_await make();
  }
}

// The executor an operation runs on: the object's when it has one, else the handler's; never
// the system executor, whose threads the library does not start.
template <class Handler>
asio::any_io_executor executor_for(const asio::any_io_executor& own, const Handler& handler) {
  if (own) return own;
  auto ex = asio::get_associated_executor(handler);
  if constexpr (std::is_same_v<decltype(ex), asio::system_executor> ||
                !std::is_convertible_v<decltype(ex), asio::any_io_executor>) {
    throw Error(errc::invalid_argument,
                "an asynchronous call needs an executor: give the object one, or bind one to the handler");
  } else {
    return asio::any_io_executor(ex);
  }
}

// Starts the coroutine `make()` returns as an asynchronous operation that completes through
// `token` with (std::exception_ptr, T), on `own` or, when that is empty, on the handler's
// executor. The token's cancellation slot reaches the coroutine (co_spawn connects it).
template <class Make, class Token>
auto async_run(asio::any_io_executor own, Make&& make, Token&& token) {
  using T = typename task_value<std::invoke_result_t<std::decay_t<Make>&>>::type;
  return asio::async_initiate<Token, Completion<T>>(
      [](auto handler, asio::any_io_executor own_executor, std::decay_t<Make> make_task) {
        const asio::any_io_executor ex = executor_for(own_executor, handler);
        asio::co_spawn(ex, owning(std::move(make_task)), std::move(handler));
      },
      token, std::move(own), std::forward<Make>(make));
}

// Whether a coroutine's operation was cancelled through its completion's slot:
// cancelled(co_await asio::this_coro::cancellation_state). (Reading the state never throws; a
// coroutine awaited once the state is cancelled would.)
inline bool cancelled(const asio::cancellation_state& state) noexcept {
  return state.cancelled() != asio::cancellation_type::none;
}

// `task` run to its end even when the awaiting operation is cancelled meanwhile: for a step
// whose effect must be known to be undone (a create whose id is needed to remove it).
template <class T>
Task<T> shielded(Task<T> task) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::co_spawn(executor, std::move(task),
                                    asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
}

// Awaits `open`; when it fails or is cancelled, awaits `undo` to its end (the cancellation no
// longer applies) and throws the failure again, a cancellation as operation_aborted saying
// "<who>: the create was cancelled". What a create that must leave nothing behind ends with.
// (Both are lazy: `undo` starts only on a failure.)
inline Task<void> open_or_undo(Task<void> open, Task<void> undo, std::string who) {
  std::exception_ptr failure;
  try {
    co_await std::move(open);
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;
  const bool by_cancel = cancelled(co_await asio::this_coro::cancellation_state);
  co_await asio::this_coro::reset_cancellation_state();
  co_await std::move(undo);
  if (by_cancel) throw Error(asio::error::operation_aborted, who + ": the create was cancelled");
  std::rethrow_exception(failure);
}

// Whether `e` is what a cancelled operation ends with.
inline bool is_aborted(const std::exception& e) noexcept {
  const auto* s = dynamic_cast<const std::system_error*>(&e);
  return s && s->code() == asio::error::operation_aborted;
}

// The io_context the blocking API runs its coroutines on: one per thread (so that what it
// caches, kept-alive connections, serves the thread's later calls), or a fresh one for a
// blocking call made from inside another (an output callback that reads a file, say).
inline asio::io_context& thread_context() {
  thread_local asio::io_context context{1};
  return context;
}

// Runs `context` until `done`, and no further: what else waits on it (a connection kept for
// later, a reader of events) waits for the thread's next blocking call.
inline void drive(asio::io_context& context, const bool& done) {
  while (!done) {
    if (context.stopped()) context.restart();
    context.run_one();
  }
}

// Runs the coroutine `make()` returns to its end on `context`, which the calling thread runs
// until then, and returns its value, or throws what it threw.
template <class Make>
auto run_blocking_on(asio::io_context& context, Make&& make) -> typename task_value<std::invoke_result_t<Make&>>::type {
  using T = typename task_value<std::invoke_result_t<Make&>>::type;
  std::exception_ptr failure;
  if constexpr (std::is_void_v<T>) {
    bool done = false;
    asio::co_spawn(context, make(), [&](std::exception_ptr e) {
      failure = e;
      done = true;
    });
    drive(context, done);
    if (failure) std::rethrow_exception(failure);
  } else {
    std::optional<T> value;
    bool done = false;
    asio::co_spawn(context, make(), [&](std::exception_ptr e, T v) {
      failure = e;
      if (!e) value.emplace(std::move(v));
      done = true;
    });
    drive(context, done);
    if (failure) std::rethrow_exception(failure);
    return std::move(*value);
  }
}

// The same on the calling thread's own io_context (or a fresh one when that is already running
// further up this thread's stack).
template <class Make>
auto run_blocking(Make&& make) -> typename task_value<std::invoke_result_t<Make&>>::type {
  asio::io_context& shared = thread_context();
  if (!shared.get_executor().running_in_this_thread()) return run_blocking_on(shared, std::forward<Make>(make));
  asio::io_context nested(1);
  return run_blocking_on(nested, std::forward<Make>(make));
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
