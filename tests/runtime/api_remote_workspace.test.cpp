// APIRemoteWorkspace against tests/servers/runtime_api, a runtime API that starts a real
// OpenHands agent server per runtime (scripts/run-tests starts it and exports RUNTIME_API_URL
// and RUNTIME_API_KEY). Without it these tests fail, never skip.
#include <workspace/runtime.hpp>
#include <workspace/testing/contract.hpp>
#include <workspace/testing/through_async.hpp>

#include "../support/async.hpp"
#include "../support/runtime_api.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace workspace;

using namespace workspace_test;

namespace {

std::atomic<int> contract_counter{0};

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      runtime_api();
    } catch (const std::exception& e) {
      GTEST_FAIL() << e.what();
    }
  }
};

}  // namespace

template <>
struct workspace::testing::ContractTraits<APIRemoteWorkspace> {
  static APIRemoteWorkspace make() {
    const std::string root = shared_folder("contract");
    auto o = options(contract_session(), root);
    o.on_close = OnClose::keep;
    // Each test runs in a process of its own (and the blocking and asynchronous suites both):
    // a folder named by the process too, so no test finds another's files.
    o.working_dir = root + "/t" + std::to_string(::getpid()) + "-" + std::to_string(contract_counter++);
    std::filesystem::remove_all(o.working_dir);
    std::filesystem::create_directories(o.working_dir);
    return APIRemoteWorkspace(std::move(o));
  }
  static constexpr bool runs_shell = true;
  static constexpr std::chrono::milliseconds timeout_grace{1500};
};

namespace workspace::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(APIRemote, WorkspaceContract, ::testing::Types<APIRemoteWorkspace>);
// The same suite through the asynchronous API.
INSTANTIATE_TYPED_TEST_SUITE_P(APIRemoteAsync, WorkspaceContract, ::testing::Types<workspace::testing::ThroughAsync<APIRemoteWorkspace>>);
}

TEST_F(RuntimeTest, WaitsThroughASlowPendingPodThenStopsTheRuntimeOnDestruction) {
  auto o = options("slow", shared_folder("slow"));
  o.environment["RUNTIME_TEST_SLOW_PENDING"] = "3";
  std::string session;
  const auto start = std::chrono::steady_clock::now();
  {
    APIRemoteWorkspace ws(o);
    EXPECT_GE(seconds_since(start), 3.0);
    session = ws.session_id();
    EXPECT_FALSE(ws.id().empty());
    auto r = ws.execute_command("echo hello from the runtime");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.std_out, "hello from the runtime\n");
    EXPECT_EQ(api_call("GET", "/sessions/" + session).value("status", ""), "running");
  }
  EXPECT_EQ(api_call("GET", "/sessions/" + session).value("status", ""), "stopped");
}

TEST_F(RuntimeTest, TheStartupBudgetIsItsOwnAndAFailedStartLeavesNothingRunning) {
  auto o = options("budget", shared_folder("budget"));
  o.environment["RUNTIME_TEST_SLOW_PENDING"] = "60";
  o.startup_wait_timeout = std::chrono::milliseconds(1500);
  const auto start = std::chrono::steady_clock::now();
  try {
    APIRemoteWorkspace ws(o);
    FAIL() << "a runtime pending for 60 s cannot be ready within 1.5 s";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::timed_out) << e.what();
    EXPECT_NE(std::string(e.what()).find("pending"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 10.0);
  EXPECT_EQ(api_call("GET", "/sessions/" + o.attach_to).value("status", ""), "stopped");
}

TEST_F(RuntimeTest, ACrashLoopingRuntimeFailsFastWithItsPodLogs) {
  auto o = options("crashloop", shared_folder("crashloop"));
  o.environment["RUNTIME_TEST_CRASHLOOP"] = "1";
  const auto start = std::chrono::steady_clock::now();
  try {
    APIRemoteWorkspace ws(o);
    FAIL() << "a crash-looping runtime must not become a workspace";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), errc::bad_state) << what;
    EXPECT_NE(what.find("crashloopbackoff"), std::string::npos) << what;
    EXPECT_NE(what.find("OOMKilled"), std::string::npos) << what;
    EXPECT_NE(what.find("pod logs"), std::string::npos) << what;
  }
  EXPECT_LT(seconds_since(start), 20.0) << "it waited instead of failing fast";
}

TEST_F(RuntimeTest, AFailedPodFailsFast) {
  auto o = options("failed", shared_folder("failed"));
  o.environment["RUNTIME_TEST_FAIL"] = "1";
  try {
    APIRemoteWorkspace ws(o);
    FAIL() << "a failed runtime must not become a workspace";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::bad_state) << e.what();
    EXPECT_NE(std::string(e.what()).find("failed"), std::string::npos) << e.what();
  }
}

TEST_F(RuntimeTest, AFailedStartStopsTheRuntimeEvenWithKeepAlive) {
  auto o = options("failed-kept", shared_folder("failed-kept"));
  o.environment["RUNTIME_TEST_FAIL"] = "1";
  o.on_close = OnClose::keep;
  EXPECT_THROW(APIRemoteWorkspace ws(o), Error);
  EXPECT_EQ(api_call("GET", "/sessions/" + o.attach_to).value("status", ""), "stopped");
}

TEST_F(RuntimeTest, AWrongApiKeyIsAnAuthenticationErrorThatDoesNotQuoteTheKey) {
  auto o = options("wrong-key", shared_folder("wrong-key"));
  o.runtime_api_key = "not-the-key-4242";
  try {
    APIRemoteWorkspace ws(o);
    FAIL() << "a wrong key must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
    EXPECT_EQ(std::string(e.what()).find("not-the-key-4242"), std::string::npos) << e.what();
  }
}

TEST_F(RuntimeTest, BadOptionsAreRejectedBeforeAnyRequest) {
  auto o = options("bad", shared_folder("bad"));
  o.resource_factor = 3;
  EXPECT_THROW(APIRemoteWorkspace{o}, Error);
  o.resource_factor = 8;
  o.image_pull_policy = "Sometimes";
  try {
    APIRemoteWorkspace ws(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
}

// On a runtime of its own: the contract tests run beside it on the shared one.
TEST_F(RuntimeTest, PauseAnswers503ResumeTakesTheNewKeyAndAttachingToAPausedRuntimeResumesIt) {
  const std::string root = shared_folder("pause");
  auto o = options("pause", root);
  std::string runtime_id;
  {
    APIRemoteWorkspace ws(o);
    runtime_id = ws.id();
    const std::string old_key = api_call("GET", "/sessions/" + ws.session_id()).value("session_api_key", "");
    ws.pause();
    try {
      ws.execute_command("true");
      FAIL() << "a paused runtime cannot run commands";
    } catch (const Error& e) {
      EXPECT_EQ(e.http_status(), 503) << e.what();
    }
    ws.resume();
    const std::string new_key = api_call("GET", "/sessions/" + ws.session_id()).value("session_api_key", "");
    EXPECT_NE(old_key, new_key);
    EXPECT_EQ(ws.execute_command("echo resumed").std_out, "resumed\n");
    // The old key no longer works: the workspace really switched.
    RemoteWorkspace stale(ws.url(), old_key, root);
    try {
      stale.execute_command("true");
      FAIL() << "the old key must be refused after resume";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
    }
    ws.pause();
    ws.detach();  // leave it paused
  }
  EXPECT_EQ(api_call("GET", "/sessions/" + o.attach_to).value("status", ""), "paused");
  APIRemoteWorkspace again(o);  // stops it at the end
  EXPECT_EQ(again.id(), runtime_id) << "attached to a new runtime instead of resuming";
  EXPECT_EQ(again.execute_command("echo back").std_out, "back\n");
}

TEST_F(RuntimeTest, ARuntimeKilledMidCommandIsAnErrorNotAHang) {
  auto o = options("killed", shared_folder("killed"));
  APIRemoteWorkspace ws(o);
  const std::string runtime_id = ws.id();
  auto killer = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    api_call("POST", "/stop", nlohmann::json{{"runtime_id", runtime_id}});
  });
  CommandOptions c;
  c.timeout = std::chrono::seconds(60);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(ws.execute_command("sleep 50", c), Error);
  EXPECT_LT(seconds_since(start), 20.0) << "the client hung on a dead runtime";
  killer.get();
  ws.detach();  // already stopped
}

// --- asynchronous start and stop

// Runtimes started, used and stopped at once from one thread.
TEST_F(RuntimeTest, RuntimesStartRunAndStopAtOnceFromOneThread) {
  constexpr int n = 3;
  asio::io_context context(1);
  std::vector<std::string> outputs(n), sessions(n);
  int closed = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        context,
        [&, i]() -> asio::awaitable<void> {
          auto o = options("async-" + std::to_string(i), shared_folder("async"));
          auto ws = co_await APIRemoteWorkspace::async_create(context.get_executor(), std::move(o), asio::use_awaitable);
          sessions[static_cast<std::size_t>(i)] = ws.session_id();
          const auto r = co_await ws.async_execute_command("echo " + std::to_string(i), asio::use_awaitable);
          outputs[static_cast<std::size_t>(i)] = r.std_out;
          if (co_await ws.async_close(asio::use_awaitable)) ++closed;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }
  context.run();
  EXPECT_EQ(closed, n);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(outputs[static_cast<std::size_t>(i)], std::to_string(i) + "\n");
    EXPECT_EQ(api_call("GET", "/sessions/" + sessions[static_cast<std::size_t>(i)]).value("status", ""), "stopped");
  }
}

// A start cancelled while the pod is pending completes with operation_aborted and stops the
// runtime it had started.
TEST_F(RuntimeTest, ACancelledCreateStopsTheRuntimeItStarted) {
  auto o = options("async-cancel", shared_folder("async-cancel"));
  o.environment["RUNTIME_TEST_SLOW_PENDING"] = "60";
  const std::string session = o.attach_to;
  asio::io_context context(1);
  asio::cancellation_signal cancel;
  std::exception_ptr failure;
  bool completed = false;
  APIRemoteWorkspace::async_create(context.get_executor(), std::move(o),
                                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, APIRemoteWorkspace) {
                                     completed = true;
                                     failure = e;
                                   }));
  asio::steady_timer timer(context, std::chrono::milliseconds(1000));
  timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  const auto start = std::chrono::steady_clock::now();
  context.run();
  EXPECT_LT(seconds_since(start), 10.0);
  ASSERT_TRUE(completed);
  EXPECT_TRUE(is_aborted(failure)) << "the create was not cancelled";
  EXPECT_EQ(api_call("GET", "/sessions/" + session).value("status", ""), "stopped");
}
