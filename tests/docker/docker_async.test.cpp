// DockerWorkspace's asynchronous API against the real daemon: many containers from one thread,
// every completion token, cancellation (of a command, a transfer, a create) and timeouts as
// timers. The contract suite through the asynchronous API is in docker_workspace.test.cpp.
#include <workspace/docker.hpp>

#include "../support/async.hpp"
#include "docker_test_image.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

// The contract suite comes with the shared header; this file runs the asynchronous tests only.
namespace workspace::testing {
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(WorkspaceContract);
}

namespace {

// Options with a label of this test's own, to find what it left.
DockerWorkspaceOptions labelled(const std::string& label) {
  DockerWorkspaceOptions o = options();
  o.labels[label] = "true";
  return o;
}

std::string unique_label(const char* what) {
  return std::string("org.workspace-cpp.test.") + what + "." + std::to_string(::getpid());
}

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

}  // namespace

// Sixteen containers from one thread with coroutines: created, each running a command and moving
// a file, then closed, all at once; no thread started and nothing left behind.
TEST_F(DockerTest, ManyWorkspacesFromOneThread) {
  const std::string label = unique_label("many");
  const std::size_t threads = ts::thread_count();
  asio::io_context context;
  constexpr int n = 16;
  std::vector<std::string> outputs(n), contents(n);
  int closed = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        context,
        [&, i]() -> asio::awaitable<void> {
          auto ws = co_await DockerWorkspace::async_create(context.get_executor(), labelled(label), asio::use_awaitable);
          const auto r = co_await ws.async_execute_command("sleep 0.2; echo " + std::to_string(i), asio::use_awaitable);
          outputs[static_cast<std::size_t>(i)] = r.std_out;
          const auto w = co_await ws.async_file_write("out/" + std::to_string(i) + ".txt", "file " + std::to_string(i),
                                                      asio::use_awaitable);
          EXPECT_TRUE(w.success) << w.error.value_or("");
          const auto read = co_await ws.async_file_read("out/" + std::to_string(i) + ".txt", asio::use_awaitable);
          contents[static_cast<std::size_t>(i)] = read.content;
          if (co_await ws.async_close(asio::use_awaitable)) ++closed;
        },
        rethrow);
  }
  const auto started = std::chrono::steady_clock::now();
  context.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(outputs[static_cast<std::size_t>(i)], std::to_string(i) + "\n");
    EXPECT_EQ(contents[static_cast<std::size_t>(i)], "file " + std::to_string(i));
  }
  EXPECT_EQ(closed, n);
  EXPECT_EQ(ts::thread_count(), threads);
  EXPECT_TRUE(ts::containers_with_label(label).empty()) << "containers were left behind";
  std::cout << n << " workspaces created, used and removed concurrently in " << seconds << " s\n";
}

// The callback forms, use_future and parallel_group on one workspace.
TEST_F(DockerTest, EveryCompletionToken) {
  asio::io_context context;
  auto future_ws = DockerWorkspace::async_create(context.get_executor(), options(), asio::use_future);
  context.run();
  DockerWorkspace ws = future_ws.get();
  EXPECT_EQ(ws.get_executor(), asio::any_io_executor(context.get_executor()));

  std::optional<CommandResult> by_callback;
  ws.async_execute_command("echo callback", [&](std::exception_ptr e, CommandResult r) {
    EXPECT_FALSE(e);
    by_callback = std::move(r);
  });
  auto future = ws.async_execute_command("echo future", asio::use_future);
  auto group = compat::make_parallel_group(ws.async_execute_command("echo one", compat::deferred),
                                           ws.async_execute_command("echo two", compat::deferred));
  std::vector<std::string> grouped;
  group.async_wait(compat::wait_for_all(), [&](auto, std::exception_ptr e1, CommandResult r1, std::exception_ptr e2,
                                               CommandResult r2) {
    EXPECT_FALSE(e1);
    EXPECT_FALSE(e2);
    grouped = {r1.std_out, r2.std_out};
  });
  context.restart();
  context.run();
  ASSERT_TRUE(by_callback);
  EXPECT_EQ(by_callback->std_out, "callback\n");
  EXPECT_EQ(future.get().std_out, "future\n");
  EXPECT_EQ(grouped, (std::vector<std::string>{"one\n", "two\n"}));

  // The whole Error through a future: a missing cwd names itself.
  CommandOptions missing;
  missing.cwd = "/no/such/dir";
  auto failing = ws.async_execute_command("true", missing, asio::use_future);
  context.restart();
  context.run();
  try {
    failing.get();
    FAIL() << "a missing cwd must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::not_found);
    EXPECT_NE(std::string(e.what()).find("/no/such/dir"), std::string::npos);
  }
}

// A terminal cancel kills the command's whole tree, as a timeout does, and completes with
// operation_aborted; the workspace goes on serving.
TEST_F(DockerTest, CancellingACommandKillsItsTree) {
  DockerWorkspace ws(options());
  asio::io_context context;
  asio::cancellation_signal signal;
  std::string seen;
  CommandOptions o;
  o.on_output = [&](OutputStream, std::string_view data) {
    seen.append(data);
    // Both pids printed: cancel (from a handler of its own, as another part of a program would).
    if (std::count(seen.begin(), seen.end(), '\n') == 2)
      asio::post(context, [&] { signal.emit(asio::cancellation_type::terminal); });
  };
  std::exception_ptr failure;
  bool done = false;
  const auto started = std::chrono::steady_clock::now();
  ws.async_execute_command("echo $$; sleep 30 & echo $!; sleep 30", o,
                           asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(context, [&](std::exception_ptr e, CommandResult) {
                                                          failure = e;
                                                          done = true;
                                                        })));
  context.run();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  ASSERT_TRUE(done);
  EXPECT_TRUE(ts::is_aborted(failure));
  std::istringstream lines(seen);
  std::string shell_pid, child_pid;
  std::getline(lines, shell_pid);
  std::getline(lines, child_pid);
  ASSERT_FALSE(child_pid.empty()) << seen;
  std::string alive;
  for (int attempt = 0; attempt < 40; ++attempt) {
    alive = ws.execute_command("for p in " + shell_pid + " " + child_pid +
                               "; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); case \"$s\" in ''|Z|X) ;; *) printf '%s ' $p;; esac; done")
                .std_out;
    if (alive.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(alive, "") << "processes of the cancelled command survived";
}

// A download cancelled mid-way leaves no file at its destination.
TEST_F(DockerTest, CancelledDownloadLeavesNoFile) {
  DockerWorkspace ws(options());
  ASSERT_EQ(ws.execute_command("dd if=/dev/zero of=big.bin bs=1M count=64 2>/dev/null").exit_code, 0);
  ts::TempDir local;
  const std::string destination = (local.path() / "big.bin").string();
  asio::io_context context;
  asio::cancellation_signal signal;
  TransferOptions o;
  bool asked = false;
  o.on_progress = [&](std::uint64_t done, std::optional<std::uint64_t>) {
    if (done > 0 && !asked) {
      asked = true;
      asio::post(context, [&] { signal.emit(asio::cancellation_type::terminal); });
    }
    return true;
  };
  std::exception_ptr failure;
  ws.async_file_download("big.bin", destination, o,
                         asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(context, [&](std::exception_ptr e, FileOperationResult) {
                                                        failure = e;
                                                      })));
  context.run();
  ASSERT_TRUE(asked);
  EXPECT_TRUE(ts::is_aborted(failure));
  EXPECT_FALSE(std::filesystem::exists(destination));
  EXPECT_TRUE(std::filesystem::is_empty(local.path())) << "a temporary file was left";
}

// A create cancelled at any point removes what it had made: cancelled after 0 to 300 ms, no
// container of this test is left.
TEST_F(DockerTest, CancelledCreateRemovesWhatItMade) {
  const std::string label = unique_label("cancelled-create");
  asio::io_context context;
  int aborted = 0, created = 0;
  for (const int ms : {0, 5, 20, 50, 100, 300}) {
    asio::cancellation_signal signal;
    std::optional<DockerWorkspace> made;
    DockerWorkspace::async_create(context.get_executor(), labelled(label),
                                  asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, DockerWorkspace ws) {
                                    if (e) {
                                      try {
                                        std::rethrow_exception(e);
                                      } catch (const Error& error) {
                                        EXPECT_EQ(error.code(), asio::error::operation_aborted) << error.what();
                                      }
                                      ++aborted;
                                    } else {
                                      ++created;
                                      made.emplace(std::move(ws));
                                    }
                                  }));
    asio::steady_timer timer(context, std::chrono::milliseconds(ms));
    timer.async_wait([&](std::error_code) { signal.emit(asio::cancellation_type::terminal); });
    context.restart();
    context.run();
    made.reset();  // one that finished before the cancel is removed by its destructor
  }
  EXPECT_GT(aborted, 0);
  EXPECT_TRUE(ts::containers_with_label(label).empty()) << "a cancelled create left its container";
  std::cout << aborted << " creates cancelled, " << created << " finished first\n";
}

// A command's timeout is a timer on the executor: other work on the same thread goes on.
TEST_F(DockerTest, TimeoutIsATimerOnTheExecutor) {
  DockerWorkspace ws(options());
  asio::io_context context;
  CommandOptions o;
  o.timeout = std::chrono::milliseconds(700);
  std::optional<CommandResult> result;
  ws.async_execute_command("sleep 10", o, asio::bind_executor(context, [&](std::exception_ptr e, CommandResult r) {
                             rethrow(e);
                             result = std::move(r);
                           }));
  int ticks = 0;
  asio::steady_timer ticker(context);
  std::function<void()> tick = [&] {
    ticker.expires_after(std::chrono::milliseconds(20));
    ticker.async_wait([&](std::error_code ec) {
      if (!ec && !result && ++ticks < 1000) tick();
    });
  };
  tick();
  context.run();
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->timeout_occurred);
  EXPECT_GE(ticks, 20);
}
