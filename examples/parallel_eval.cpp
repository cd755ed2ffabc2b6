// N workspaces from one thread with coroutines: each is created, writes and runs a small script,
// fetches the result file it made, and is closed; a progress line counts them as they finish.
//
//   WORKSPACE_MODE=local|docker|remote|api_remote|daytona  (default local)  the type of each
//   WORKSPACE_IMAGE, WORKSPACE_HOST, WORKSPACE_API_KEY, ...  as AnyWorkspace reads them
//                                (docker: default the tests' busybox image)
//   N=...                        (default 16)      how many at once
//
// Docker, api_remote and daytona create a container, runtime or sandbox each (async_create) and
// remove it (async_close); remote runs all of them on one agent server, each in a folder of its
// own; local in a temporary folder each.
#include <workspace/any_workspace.hpp>

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

// Creates, evaluates and closes one workspace of a type with async_create.
template <class W, class Options>
asio::awaitable<std::string> created(asio::io_context& context, Options options, int i) {
  auto ws = co_await W::async_create(context.get_executor(), std::move(options), asio::use_awaitable);
  std::string out = co_await evaluate(ws, i);
  co_await ws.async_close(asio::use_awaitable);
  co_return out;
}

asio::awaitable<std::string> one(asio::io_context& context, const workspace::WorkspaceConfig& config, int i) {
  using workspace::WorkspaceMode;
  switch (config.mode) {
    case WorkspaceMode::docker: {
      auto options = config.docker_options();
      if (options.image.empty()) options.image = "workspace-test-busybox:latest";
      co_return co_await created<workspace::DockerWorkspace>(context, std::move(options), i);
    }
    // (Options named first: GCC 12 mishandles a temporary aggregate inside a co_await.)
    case WorkspaceMode::api_remote: {
      auto options = config.api_remote_options();
      co_return co_await created<workspace::APIRemoteWorkspace>(context, std::move(options), i);
    }
    case WorkspaceMode::daytona: {
      auto options = config.daytona_options();
      co_return co_await created<workspace::DaytonaWorkspace>(context, std::move(options), i);
    }
    case WorkspaceMode::remote: {
      auto options = config.remote_options();
      options.working_dir += "/parallel-eval-" + std::to_string(i);
      workspace::RemoteWorkspace ws(context.get_executor(), std::move(options));
      std::string out = co_await evaluate(ws, i);
      co_await ws.async_execute_command("rm -rf -- \"$PWD\"", asio::use_awaitable);
      co_return out;
    }
    case WorkspaceMode::local:
      break;
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
  workspace::WorkspaceConfig config;
  try {
    config = workspace::WorkspaceConfig::from_env();
  } catch (const std::exception& e) {
    std::cerr << "parallel_eval: " << e.what() << "\n";
    return 2;
  }
  const std::string mode(workspace::to_string(config.mode));
  const int n = std::atoi(env_or("N", "16").c_str());
  asio::io_context context(1);
  Progress progress{.total = n};
  std::vector<std::string> results(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(context, one(context, config, i), [&, i](std::exception_ptr e, std::string out) {
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
