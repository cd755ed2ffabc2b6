// DaytonaWorkspace against tests/servers/daytona, the local stand-in for the Daytona service
// (scripts/run-tests starts it and exports DAYTONA_TEST_API_URL, DAYTONA_TEST_API_KEY and
// DAYTONA_TEST_EXPIRED_API_KEY). Its sandboxes are containers on the test Docker daemon; it
// validates every request against the official specs. Without it these tests fail, never skip.
//
// tests/daytona/daytona_fixture.test.cpp resets the server's counters before these tests and
// checks after them that every request validated and that no sandbox is left.
#include <workspace/daytona.hpp>
#include <workspace/testing/contract.hpp>
#include <workspace/testing/through_async.hpp>

#include "../support/async.hpp"
#include "../support/daytona_server.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

using namespace workspace;
namespace ts = workspace_test;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class DaytonaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      ts::daytona_server();
    } catch (const std::exception& e) {
      GTEST_FAIL() << e.what();
    }
  }
};

// Whether sandbox `id` is deleted: the API answers 404 for it (or, for the moment before that,
// shows it "destroyed"), waiting up to 30 s for a "destroying" to end.
::testing::AssertionResult deleted(const std::string& id) {
  std::string state;
  ts::daytona_eventually([&] {
    state = ts::daytona_sandbox_state(id);
    return state == "gone";
  });
  if (state == "gone" || state == "destroyed") return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "sandbox " << id << " is not deleted: its state is " << state;
}

}  // namespace

template <>
struct workspace::testing::ContractTraits<DaytonaWorkspace> {
  static DaytonaWorkspace make() { return DaytonaWorkspace(ts::daytona_options()); }
  // The sandbox user is daytona by default (not root); this names another one.
  static DaytonaWorkspace make_non_root() {
    auto o = ts::daytona_options();
    o.user = "probe";
    return DaytonaWorkspace(std::move(o));
  }
  static constexpr bool runs_shell = true;
  static constexpr std::chrono::milliseconds timeout_grace{2000};
};

namespace workspace::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(Daytona, WorkspaceContract, ::testing::Types<DaytonaWorkspace>);
// The same suite through the asynchronous API.
INSTANTIATE_TYPED_TEST_SUITE_P(DaytonaAsync, WorkspaceContract, ::testing::Types<workspace::testing::ThroughAsync<DaytonaWorkspace>>);
}

TEST_F(DaytonaTest, CreatesALabelledSandboxAndDeletesItOnDestruction) {
  const std::string case_id = ts::daytona_case_id("lifecycle");
  std::string id;
  {
    DaytonaWorkspace ws(ts::daytona_options({{ts::daytona_case_label, case_id}}));
    id = ws.id();
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(ws.working_dir(), "/home/daytona");
    const auto sandbox = ws.describe();
    EXPECT_EQ(sandbox.value("state", ""), "started") << sandbox.dump();
    ASSERT_TRUE(sandbox.contains("labels")) << sandbox.dump();
    EXPECT_EQ(sandbox["labels"].value(ts::daytona_case_label, ""), case_id) << sandbox.dump();
    EXPECT_EQ(sandbox["labels"].value("org.workspace-cpp.managed", ""), "true") << sandbox.dump();
    const auto found = ts::daytona_sandboxes_with({{ts::daytona_case_label, case_id}});
    ASSERT_EQ(found.size(), 1u) << found.dump();
    EXPECT_EQ(found[0].value("id", ""), id);
    auto r = ws.execute_command("echo hello from $(whoami)");
    EXPECT_EQ(r.exit_code, 0) << r.std_err;
    EXPECT_EQ(r.std_out, "hello from daytona\n");
  }
  EXPECT_TRUE(deleted(id));
}

TEST_F(DaytonaTest, ASandboxThatGoesToErrorIsABadStateErrorWithItsReasonAndIsDeleted) {
  const std::string case_id = ts::daytona_case_id("fail-error");
  const auto start = std::chrono::steady_clock::now();
  try {
    DaytonaWorkspace ws(ts::daytona_options({{"test.daytona/fail", "error"}, {ts::daytona_case_label, case_id}}));
    FAIL() << "a sandbox in error must not become a workspace";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), errc::bad_state) << what;
    // The server's errorReason for this fault.
    EXPECT_NE(what.find("the sandbox failed to start"), std::string::npos) << what;
    EXPECT_NE(what.find("test.daytona/fail=error"), std::string::npos) << what;
  }
  EXPECT_LT(seconds_since(start), 30.0) << "it waited instead of failing fast";
  // The sandbox existed (in error); nothing of it may be left.
  nlohmann::json left;
  EXPECT_TRUE(ts::daytona_eventually([&] {
    left = ts::daytona_sandboxes_with({{ts::daytona_case_label, case_id}});
    return left.empty();
  })) << "sandboxes left behind: " << left.dump();
  const auto listed = ts::daytona_api(
      "GET", http::make_target("/sandbox", {{"labels", nlohmann::json{{ts::daytona_case_label, case_id}}.dump()},
                                            {"includeErroredDeleted", "true"}}));
  const auto& items = listed.is_array() ? listed : listed["items"];
  for (const auto& s : items)
    EXPECT_TRUE(s.value("state", "") == "destroyed" || s.value("desiredState", "") == "destroyed") << s.dump();
}

TEST_F(DaytonaTest, AFailedStartDeletesTheSandboxEvenWhenAskedToKeepIt) {
  const std::string case_id = ts::daytona_case_id("fail-kept");
  auto o = ts::daytona_options({{"test.daytona/fail", "error"}, {ts::daytona_case_label, case_id}});
  o.on_close = OnClose::keep;
  EXPECT_THROW(DaytonaWorkspace ws(std::move(o)), Error);
  nlohmann::json left;
  EXPECT_TRUE(ts::daytona_eventually([&] {
    left = ts::daytona_sandboxes_with({{ts::daytona_case_label, case_id}});
    return left.empty();
  })) << "sandboxes left behind: " << left.dump();
}

// The toolbox answers 502 for a sandbox in error, as for one in a transition: the client must
// look at the sandbox rather than wait out its whole transition budget.
TEST_F(DaytonaTest, ASandboxThatFailsWhileInUseIsABadStateErrorWithItsReasonAtOnce) {
  std::string id;
  {
    DaytonaWorkspace ws(ts::daytona_options({{"test.daytona/fail-after", "2"}}));
    id = ws.id();
    ASSERT_TRUE(ts::daytona_eventually([&] { return ts::daytona_sandbox_state(id) == "error"; }))
        << "the sandbox did not go to error";
    const auto start = std::chrono::steady_clock::now();
    try {
      ws.execute_command("echo too late");
      FAIL() << "a sandbox in error cannot run commands";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.code(), errc::bad_state) << what;
      EXPECT_NE(what.find("the sandbox failed while running"), std::string::npos) << what;
    }
    EXPECT_LT(seconds_since(start), 10.0) << "it waited out the transition budget on a sandbox in error";
  }
  EXPECT_TRUE(deleted(id));
}

TEST_F(DaytonaTest, ASlowStartIsWaitedFor) {
  const auto start = std::chrono::steady_clock::now();
  std::string id;
  {
    DaytonaWorkspace ws(ts::daytona_options({{"test.daytona/slow-start", "3"}}));
    EXPECT_GE(seconds_since(start), 3.0) << "the start was not slow: is the fault switch applied?";
    id = ws.id();
    EXPECT_EQ(ws.describe().value("state", ""), "started");
    auto r = ws.execute_command("echo started late");
    EXPECT_EQ(r.exit_code, 0) << r.std_err;
    EXPECT_EQ(r.std_out, "started late\n");
  }
  EXPECT_TRUE(deleted(id));
}

TEST_F(DaytonaTest, ToolboxAnswers502DuringATransitionAreWaitedOut) {
  DaytonaWorkspace ws(ts::daytona_options({{"test.daytona/toolbox-502", "3"}}));
  auto r = ws.execute_command("echo through the 502s");
  EXPECT_EQ(r.exit_code, 0) << r.std_err;
  EXPECT_EQ(r.std_out, "through the 502s\n");
  EXPECT_TRUE(ws.file_write("after-502.txt", "still here").success);
  const auto read = ws.file_read("after-502.txt");
  EXPECT_TRUE(read.success) << read.error.value_or("");
  EXPECT_EQ(read.content, "still here");
  auto again = ws.execute_command("cat after-502.txt");
  EXPECT_EQ(again.exit_code, 0) << again.std_err;
  EXPECT_EQ(again.std_out, "still here");
}

TEST_F(DaytonaTest, ApiConflictsDuringDestructionAreRetriedAndTheSandboxIsDeleted) {
  std::string id;
  {
    DaytonaWorkspace ws(ts::daytona_options({{"test.daytona/conflict-409", "2"}}));
    id = ws.id();
    auto r = ws.execute_command("true");
    EXPECT_EQ(r.exit_code, 0) << r.std_err;
  }
  // The destructor met two 409s before its DELETE went through.
  const std::string state = ts::daytona_sandbox_state(id);
  EXPECT_TRUE(state == "destroying" || state == "destroyed" || state == "gone")
      << "the sandbox was not deleted: state " << state;
  EXPECT_TRUE(deleted(id));
}

TEST_F(DaytonaTest, AWrongApiKeyIsAnAuthenticationErrorThatDoesNotQuoteTheKey) {
  auto o = ts::daytona_options();
  o.api_key = "wrong-daytona-key-4242";
  try {
    DaytonaWorkspace ws(o);
    FAIL() << "a wrong key must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
    EXPECT_EQ(e.http_status(), 401) << e.what();
    EXPECT_EQ(std::string(e.what()).find("wrong-daytona-key-4242"), std::string::npos) << e.what();
  }
}

TEST_F(DaytonaTest, AnExpiredApiKeyIsAnAuthenticationErrorThatDoesNotQuoteTheKey) {
  const auto server = ts::daytona_server();
  ASSERT_FALSE(server.expired_key.empty()) << "DAYTONA_TEST_EXPIRED_API_KEY is not set";
  auto o = ts::daytona_options();
  o.api_key = server.expired_key;
  try {
    DaytonaWorkspace ws(o);
    FAIL() << "an expired key must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
    EXPECT_EQ(std::string(e.what()).find(server.expired_key), std::string::npos) << e.what();
  }
}

TEST_F(DaytonaTest, ACommandOverItsTimeoutIsKilledPromptly) {
  DaytonaWorkspace ws(ts::daytona_options());
  CommandOptions o;
  o.timeout = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  auto r = ws.execute_command("sleep 5", o);
  const double elapsed = seconds_since(start);
  RecordProperty("elapsed_ms", std::to_string(static_cast<int>(elapsed * 1000)));
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_GE(elapsed, 0.5);
  EXPECT_LT(elapsed, 2.0) << "the command was not stopped near its 0.5 s deadline";
}

TEST_F(DaytonaTest, AttachesByIdOrLabelsAndLeavesThatSandboxAlone) {
  const std::string case_id = ts::daytona_case_id("attach");
  DaytonaWorkspace owner(ts::daytona_options({{ts::daytona_case_label, case_id}}));
  ASSERT_TRUE(owner.file_write("note.txt", "left by the owner").success);
  {
    auto o = ts::daytona_options();
    o.attach_to = owner.id();
    DaytonaWorkspace by_id(o);
    EXPECT_EQ(by_id.id(), owner.id());
    EXPECT_EQ(by_id.execute_command("cat note.txt").std_out, "left by the owner");
  }
  {
    auto o = ts::daytona_options();
    o.attach_labels = {{ts::daytona_case_label, case_id}};
    DaytonaWorkspace by_labels(o);
    EXPECT_EQ(by_labels.id(), owner.id());
  }
  EXPECT_EQ(ts::daytona_sandbox_state(owner.id()), "started") << "an attached workspace deleted what it did not create";
  auto o = ts::daytona_options();
  o.attach_labels = {{ts::daytona_case_label, "no-such-case"}};
  try {
    DaytonaWorkspace none(o);
    FAIL() << "no sandbox carries that label";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::not_found) << e.what();
  }
}

TEST_F(DaytonaTest, OnCloseStopStopsTheSandboxInsteadOfDeletingIt) {
  auto o = ts::daytona_options();
  o.on_close = OnClose::stop;
  std::string id;
  {
    DaytonaWorkspace ws(o);
    id = ws.id();
  }
  EXPECT_TRUE(ts::daytona_eventually([&] { return ts::daytona_sandbox_state(id) == "stopped"; }))
      << "state " << ts::daytona_sandbox_state(id);
  ts::daytona_api("DELETE", http::make_target("/sandbox/" + id));
  EXPECT_TRUE(deleted(id));
}

// A process that created a sandbox and died without deleting it (here: detached, then _exit)
// leaves it to reap_orphans(), which checks the owner labels against the live processes.
TEST_F(DaytonaTest, ReapOrphansDeletesTheSandboxesOfADeadOwner) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    std::string id;
    try {
      DaytonaWorkspace ws(ts::daytona_options());
      ws.detach();
      id = ws.id();
    } catch (...) {
    }
    (void)!::write(fds[1], id.data(), id.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string id;
  char buffer[256];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) id.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_FALSE(id.empty()) << "the child could not create its sandbox";
  EXPECT_EQ(ts::daytona_sandbox_state(id), "started");
  const std::size_t reaped = DaytonaWorkspace::reap_orphans(ts::daytona_options());
  EXPECT_GE(reaped, 1u);
  EXPECT_TRUE(deleted(id));
}

// --- asynchronous creation and removal

// Several sandboxes created, used and deleted at once from one thread; the library starts no
// thread of its own, and nothing is left.
TEST_F(DaytonaTest, SandboxesStartRunAndGoAwayAtOnceFromOneThread) {
  const std::string case_id = ts::daytona_case_id("async-many");
  constexpr int n = 6;
  asio::io_context context(1);
  const std::size_t threads = ts::thread_count();
  std::vector<std::string> outputs(n), ids(n);
  int closed = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        context,
        [&, i]() -> asio::awaitable<void> {
          auto options = ts::daytona_options({{ts::daytona_case_label, case_id}});
          auto ws = co_await DaytonaWorkspace::async_create(context.get_executor(), std::move(options), asio::use_awaitable);
          ids[static_cast<std::size_t>(i)] = ws.id();
          const auto r = co_await ws.async_execute_command("echo " + std::to_string(i), asio::use_awaitable);
          outputs[static_cast<std::size_t>(i)] = r.std_out;
          if (co_await ws.async_close(asio::use_awaitable)) ++closed;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }
  std::size_t most_threads = 0;
  while (context.run_one()) most_threads = std::max(most_threads, ts::thread_count());
  EXPECT_EQ(most_threads, threads) << "the library started threads";
  EXPECT_EQ(closed, n);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(outputs[static_cast<std::size_t>(i)], std::to_string(i) + "\n");
    EXPECT_TRUE(deleted(ids[static_cast<std::size_t>(i)]));
  }
}

// A create cancelled while the sandbox starts (slowly) completes with operation_aborted and
// deletes the sandbox it had made.
TEST_F(DaytonaTest, ACancelledCreateDeletesTheSandboxItMade) {
  const std::string case_id = ts::daytona_case_id("async-cancel");
  asio::io_context context(1);
  asio::cancellation_signal cancel;
  std::exception_ptr failure;
  bool completed = false;
  auto options = ts::daytona_options({{ts::daytona_case_label, case_id}, {"test.daytona/slow-start", "3"}});
  DaytonaWorkspace::async_create(context.get_executor(), std::move(options),
                                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, DaytonaWorkspace) {
                                   completed = true;
                                   failure = e;
                                 }));
  asio::steady_timer timer(context, std::chrono::milliseconds(1000));
  timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  context.run();
  ASSERT_TRUE(completed);
  EXPECT_TRUE(ts::is_aborted(failure)) << "the create was not cancelled";
  EXPECT_TRUE(ts::daytona_eventually([&] { return ts::daytona_sandboxes_with({{ts::daytona_case_label, case_id}}).empty(); }))
      << ts::daytona_sandboxes_with({{ts::daytona_case_label, case_id}}).dump();
}
