// N workspaces from one thread with coroutines: each is created, writes and runs a small script,
// fetches the result file it made, and is closed; a progress line counts them as they finish.
//
//   WORKSPACE_MODE=local|docker  (default local)   the type of every workspace
//   WORKSPACE_IMAGE=...          (docker; default the tests' busybox image)
//   N=...                        (default 16)      how many at once
//
// The asynchronous form exists today for LocalWorkspace and DockerWorkspace (README,
// "Asynchronous operations"); the other modes are refused until theirs lands.
#include <workspace/docker.hpp>
#include <workspace/local.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

struct Progress {
  int total = 0, done = 0, failed = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  void show() const {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "\r%d/%d done, %d failed, %.1f s", done, total, failed, s);
    if (done + failed == total) std::fprintf(stderr, "\n");
  }
};

// One evaluation on any asynchronous workspace: the script, its run, its result file.
template <class W>
asio::awaitable<std::string> evaluate(W& ws, int i) {
  const std::string script = "n=" + std::to_string(i) + "\nsleep 0.5\necho $((n * n)) > result.txt\n";
  const auto written = co_await ws.async_file_write("task.sh", script, asio::use_awaitable);
  if (!written.success) throw std::runtime_error(written.error.value_or("file_write failed"));
  const auto run = co_await ws.async_execute_command("sh task.sh", asio::use_awaitable);
  if (run.exit_code != 0) throw std::runtime_error("task.sh failed: " + run.std_err);
  const auto result = co_await ws.async_file_read("result.txt", asio::use_awaitable);
  if (!result.success) throw std::runtime_error(result.error.value_or("file_read failed"));
  co_return result.content;
}

asio::awaitable<std::string> one(asio::io_context& context, const std::string& mode, int i) {
  if (mode == "docker") {
    workspace::DockerWorkspaceOptions options;
    options.image = env_or("WORKSPACE_IMAGE", "workspace-test-busybox:latest");
    auto ws = co_await workspace::DockerWorkspace::async_create(context.get_executor(), options, asio::use_awaitable);
    std::string out = co_await evaluate(ws, i);
    co_await ws.async_close(asio::use_awaitable);
    co_return out;
  }
  const auto dir = std::filesystem::temp_directory_path() / ("parallel-eval-" + std::to_string(i));
  workspace::LocalWorkspace ws(dir);
  ws.set_executor(context.get_executor());
  std::string out = co_await evaluate(ws, i);
  std::filesystem::remove_all(dir);
  co_return out;
}

}  // namespace

int main() {
  const std::string mode = env_or("WORKSPACE_MODE", "local");
  if (mode != "local" && mode != "docker") {
    std::cerr << "parallel_eval: WORKSPACE_MODE=" << mode << " has no asynchronous form yet (local, docker)\n";
    return 2;
  }
  const int n = std::atoi(env_or("N", "16").c_str());
  asio::io_context context(1);
  Progress progress{.total = n};
  std::vector<std::string> results(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(context, one(context, mode, i), [&, i](std::exception_ptr e, std::string out) {
      if (e) {
        ++progress.failed;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& error) {
          std::cerr << "\nworkspace " << i << ": " << error.what() << "\n";
        }
      } else {
        ++progress.done;
        results[static_cast<std::size_t>(i)] = out;
      }
      progress.show();
    });
  }
  context.run();  // everything above, on this one thread
  for (int i = 0; i < n; ++i) {
    const std::string expected = std::to_string(i * i) + "\n";
    if (results[static_cast<std::size_t>(i)] != expected) {
      std::cerr << "workspace " << i << " answered " << results[static_cast<std::size_t>(i)] << "\n";
      return 1;
    }
  }
  std::cout << n << " " << mode << " workspaces evaluated from one thread\n";
  return progress.failed == 0 ? 0 : 1;
}
