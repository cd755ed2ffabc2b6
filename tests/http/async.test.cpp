// The client's asynchronous form against a real nginx: every completion token, the whole Error
// through each, many requests at once on one thread sharing the pool (never a connection shared
// by two at once), cancellation through the token's slot, and no thread started.
#include <workspace/http.hpp>

#include "../support/async.hpp"
#include "../support/nginx.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace workspace;
using workspace_test::Nginx;

namespace ts = workspace_test;

namespace {

Nginx& nginx() {
  static Nginx server;
  return server;
}

http::ClientOptions no_proxy() {
  http::ClientOptions o;
  o.proxy = http::ProxySettings::none();
  return o;
}

http::Request get(std::string target) { return http::Request{.method = "GET", .target = std::move(target)}; }

// A listener that never accepts: a request to it is sent and never answered.
struct SilentServer {
  asio::io_context context;
  asio::ip::tcp::acceptor acceptor{context, {asio::ip::make_address("127.0.0.1"), 0}};
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()); }
};

}  // namespace

TEST(HttpAsync, ACallbackRunsOnTheExecutorItIsBoundTo) {
  asio::io_context context;
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  std::optional<http::Response> got;
  client.async_request(get("/connection"), {},
                       asio::bind_executor(context, [&](std::exception_ptr e, http::Response r) {
                         EXPECT_FALSE(e);
                         EXPECT_TRUE(context.get_executor().running_in_this_thread());
                         got = std::move(r);
                       }));
  EXPECT_FALSE(got);  // nothing happens until the context runs
  context.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
}

TEST(HttpAsync, ACallbackWithoutExecutorNeedsTheClients) {
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  try {
    client.async_request(get("/connection"), {}, [](std::exception_ptr, http::Response) { FAIL(); });
    FAIL() << "an unbound callback on a client without executor must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
  asio::io_context context;
  client.set_executor(context.get_executor());
  int status = 0;
  client.async_request(get("/connection"), {}, [&](std::exception_ptr e, http::Response r) {
    EXPECT_FALSE(e);
    status = r.status;
  });
  context.run();
  EXPECT_EQ(status, 200);
}

// The operations of a parallel_group get handlers of the group's, with no executor of their
// own: the client's is what they run on.
TEST(HttpAsync, UseAwaitableAndParallelGroup) {
  asio::io_context context;
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  client.set_executor(context.get_executor());
  std::vector<std::string> bodies;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        const http::Response one = co_await client.async_request(get("/connection"), {}, asio::use_awaitable);
        bodies.push_back(one.body);
        auto [order, e1, r1, e2, r2] =
            co_await compat::make_parallel_group(client.async_request(get("/connection-request"), {}, compat::deferred),
                                                 client.async_request(get("/connection-request"), {}, compat::deferred))
                .async_wait(compat::wait_for_all(), asio::use_awaitable);
        EXPECT_FALSE(e1);
        EXPECT_FALSE(e2);
        EXPECT_EQ(order.size(), 2u);
        bodies.push_back(r1.body);
        bodies.push_back(r2.body);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  context.run();
  ASSERT_EQ(bodies.size(), 3u);
  // Run at once, the two of the group cannot have shared a connection's turn.
  EXPECT_NE(bodies[1], bodies[2]);
}

TEST(HttpAsync, DeferredStartsOnlyWhenInvoked) {
  asio::io_context context;
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  client.set_executor(context.get_executor());
  auto op = client.async_request(get("/connection"), {}, compat::deferred);
  EXPECT_EQ(context.run(), 0u);  // nothing was started
  int status = 0;
  std::move(op)([&](std::exception_ptr e, http::Response r) {
    EXPECT_FALSE(e);
    status = r.status;
  });
  context.restart();
  context.run();
  EXPECT_EQ(status, 200);
}

TEST(HttpAsync, TheWholeErrorReachesAFuture) {
  asio::io_context context;
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  client.set_executor(context.get_executor());
  std::future<nlohmann::json> future = client.async_request_json("GET", "/status/404", std::nullopt, {}, asio::use_future);
  context.run();
  try {
    future.get();
    FAIL() << "a 404 must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::not_found);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_EQ(e.server_message(), "no such thing");
  }
  // The same Error through a callback's exception_ptr.
  std::exception_ptr failure;
  client.async_request_json("GET", "/status/404", std::nullopt, {},
                            [&](std::exception_ptr e, nlohmann::json) { failure = e; });
  context.restart();
  context.run();
  ASSERT_TRUE(failure);
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    EXPECT_EQ(e.http_status(), 404);
  }
}

// 64 requests at once from one thread: each gets its own connection (nginx numbers them and
// counts each one's requests: a pair seen twice would be a connection lent to two at once), and
// a second wave reuses the kept-alive ones. No thread is started.
TEST(HttpAsync, ConcurrentRequestsShareThePoolNeverAConnection) {
  const std::size_t threads = ts::thread_count();
  asio::io_context context;
  http::Client<http::Tcp> client(nginx().base_url(), no_proxy());
  client.set_executor(context.get_executor());
  std::set<std::string> pairs, first_wave, second_wave;
  int answered = 0;
  const auto wave = [&](std::set<std::string>& connections) {
    for (int i = 0; i < 64; ++i) {
      client.async_request(get("/connection-request"), {}, [&](std::exception_ptr e, http::Response r) {
        ASSERT_FALSE(e);
        ASSERT_EQ(r.status, 200);
        ++answered;
        EXPECT_TRUE(pairs.insert(r.body).second) << r.body;
        connections.insert(r.body.substr(0, r.body.find(':')));
      });
    }
    context.restart();
    context.run();
  };
  wave(first_wave);
  wave(second_wave);
  EXPECT_EQ(answered, 128);
  EXPECT_EQ(first_wave.size(), 64u);  // none waited for another's connection
  std::size_t reused = 0;
  for (const auto& c : second_wave) reused += first_wave.count(c);
  EXPECT_GT(reused, 0u);
  EXPECT_EQ(ts::thread_count(), threads);
}

// A terminal cancel through the token's slot ends the exchange with operation_aborted, at once,
// and leaves nothing pending on the context.
TEST(HttpAsync, CancellationThroughTheSlot) {
  SilentServer silent;
  asio::io_context context;
  http::Client<http::Tcp> client(silent.url(), no_proxy());
  asio::cancellation_signal signal;
  std::exception_ptr failure;
  bool done = false;
  client.async_request(get("/never"), {},
                       asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(context, [&](std::exception_ptr e, http::Response) {
                                                      failure = e;
                                                      done = true;
                                                    })));
  asio::steady_timer timer(context, std::chrono::milliseconds(200));
  timer.async_wait([&](std::error_code) { signal.emit(asio::cancellation_type::terminal); });
  const auto started = std::chrono::steady_clock::now();
  context.run();  // returns only when nothing is left
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  ASSERT_TRUE(done);
  EXPECT_TRUE(ts::is_aborted(failure));
}

// A request's timeout is a timer on the executor: the context's one thread is never blocked.
TEST(HttpAsync, TimeoutIsATimerOnTheExecutor) {
  SilentServer silent;
  asio::io_context context;
  http::Client<http::Tcp> client(silent.url(), no_proxy());
  client.set_executor(context.get_executor());
  http::RequestOptions options;
  options.timeout = std::chrono::milliseconds(300);
  std::exception_ptr failure;
  int ticks = 0;
  client.async_request(get("/never"), options, [&](std::exception_ptr e, http::Response) { failure = e; });
  asio::steady_timer ticker(context);
  std::function<void()> tick = [&] {
    ticker.expires_after(std::chrono::milliseconds(20));
    ticker.async_wait([&](std::error_code ec) {
      if (!ec && !failure && ++ticks < 500) tick();
    });
  };
  tick();
  context.run();
  ASSERT_TRUE(failure);
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::timed_out) << e.what();
  }
  EXPECT_GE(ticks, 5);  // the other work went on while the request waited
}
