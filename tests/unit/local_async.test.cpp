// LocalWorkspace's asynchronous API: hundreds of commands on one thread with every result right
// and no descriptor leaked, cancellation killing the whole tree, and timeouts as timers.
#include <workspace/local.hpp>

#include "../support/async.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace workspace;

namespace ts = workspace_test;

namespace {

std::size_t entries(const char* dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

std::filesystem::path scratch() {
  auto dir = std::filesystem::temp_directory_path() / ("workspace-local-async-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

struct Scratch {
  std::filesystem::path path = scratch();
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Alive and not a zombie.
bool alive(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z' && line[close + 2] != 'X';
}

}  // namespace

// 256 commands at once on one thread: each result is its own, no descriptor is leaked, no
// thread is started.
TEST(LocalAsync, ManyCommandsOnOneThread) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  // Each running command holds two pipes and a pidfd (and the reactor's registration).
  if (limit.rlim_cur < 4096) {
    limit.rlim_cur = std::min<rlim_t>(4096, limit.rlim_max);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  }
  Scratch dir;
  LocalWorkspace ws(dir.path);
  constexpr int n = 256;
  std::vector<std::optional<CommandResult>> results(n);
  int failures = 0;
  std::size_t fds_before = 0, threads_before = 0;
  {
    asio::io_context context(1);
    ws.set_executor(context.get_executor());
    // Counted once the context's own descriptors (its reactor) are open: one command first.
    ws.async_execute_command("true", [](std::exception_ptr, CommandResult) {});
    context.run();
    context.restart();
    fds_before = entries("/proc/self/fd");
    threads_before = entries("/proc/self/task");
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      ws.async_execute_command("sleep 0.$((" + std::to_string(i) + " % 5)); echo out" + std::to_string(i) +
                                   "; echo err" + std::to_string(i) + " >&2; exit $((" + std::to_string(i) + " % 7))",
                               [&, i](std::exception_ptr e, CommandResult r) {
                                 if (e) ++failures;
                                 else results[static_cast<std::size_t>(i)] = std::move(r);
                               });
    }
    context.run();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << n << " commands on one thread in " << seconds << " s\n";
    EXPECT_EQ(entries("/proc/self/fd"), fds_before) << "descriptors leaked";
    EXPECT_EQ(entries("/proc/self/task"), threads_before);
    EXPECT_LT(seconds, 30.0);
  }
  EXPECT_EQ(failures, 0);
  for (int i = 0; i < n; ++i) {
    const auto& r = results[static_cast<std::size_t>(i)];
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->std_out, "out" + std::to_string(i) + "\n");
    EXPECT_EQ(r->std_err, "err" + std::to_string(i) + "\n");
    EXPECT_EQ(r->exit_code, i % 7);
  }
}

// A terminal cancel kills the whole tree, as a timeout does, and completes with operation_aborted.
TEST(LocalAsync, CancellingKillsTheTree) {
  Scratch dir;
  LocalWorkspace ws(dir.path);
  asio::io_context context(1);
  asio::cancellation_signal signal;
  std::string seen;
  CommandOptions o;
  o.on_output = [&](OutputStream, std::string_view data) {
    seen.append(data);
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
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  ASSERT_TRUE(done);
  EXPECT_TRUE(ts::is_aborted(failure));
  std::istringstream lines(seen);
  std::string shell, child;
  std::getline(lines, shell);
  std::getline(lines, child);
  ASSERT_FALSE(child.empty()) << seen;
  for (int attempt = 0; attempt < 40 && (alive(shell) || alive(child)); ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(alive(shell));
  EXPECT_FALSE(alive(child)) << "the background child survived the cancel";
}

// The timeout is a timer on the executor: the thread serves other work meanwhile.
TEST(LocalAsync, TimeoutIsATimerOnTheExecutor) {
  Scratch dir;
  LocalWorkspace ws(dir.path);
  asio::io_context context(1);
  ws.set_executor(context.get_executor());
  CommandOptions o;
  o.timeout = std::chrono::milliseconds(400);
  std::optional<CommandResult> result;
  ws.async_execute_command("printf before; sleep 10", o, [&](std::exception_ptr e, CommandResult r) {
    if (!e) result = std::move(r);
  });
  int ticks = 0;
  asio::steady_timer ticker(context);
  std::function<void()> tick = [&] {
    ticker.expires_after(std::chrono::milliseconds(10));
    ticker.async_wait([&](std::error_code ec) {
      if (!ec && !result && ++ticks < 1000) tick();
    });
  };
  tick();
  context.run();
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->timeout_occurred);
  EXPECT_EQ(result->std_out, "before");
  EXPECT_GE(ticks, 20);
}
