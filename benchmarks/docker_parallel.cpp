// N Docker workspaces, each created, running `sleep 1; echo I`, and removed: all at once from one
// thread with the asynchronous API (`async`), or one after another with the blocking API
// (`blocking`). Prints one line, `NAME wall_ms=.. n=.. ok=..`, as the peers of
// scripts/run-benchmarks (ONLY=parallel) do: 64 `docker run --rm` CLIs at once, and aiodocker.
// The clock starts after one call settles the API version (as the aiodocker peer's does) and
// stops when the last container is gone. Needs DOCKER_HOST and the image (BENCH_IMAGE, default
// the tests' busybox image). Exits non-zero unless every output was right and nothing is left.
// The containers are made as the aiodocker peer makes them, with no network stack at all
// (network_mode "disabled": Docker's NetworkDisabled); BENCH_NETWORK=none gives them Docker's
// "none" network, a sandbox with /etc/hosts, as the CLI peer's `--network none` does.
#include <workspace/docker.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <unistd.h>

using namespace workspace;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

DockerWorkspaceOptions options(const std::string& image, const std::string& label) {
  DockerWorkspaceOptions o;
  o.image = image;
  o.pull_if_missing = false;
  o.network_mode = env_or("BENCH_NETWORK", "disabled");
  o.labels[label] = "true";
  return o;
}

std::string command(int i) { return "sleep 1; echo " + std::to_string(i); }
std::string expected(int i) { return std::to_string(i) + "\n"; }

int run_async(const std::string& image, const std::string& label, int n) {
  asio::io_context context(1);
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        context,
        [&, i]() -> asio::awaitable<void> {
          auto ws = co_await DockerWorkspace::async_create(context.get_executor(), options(image, label), asio::use_awaitable);
          const auto r = co_await ws.async_execute_command(command(i), asio::use_awaitable);
          co_await ws.async_close(asio::use_awaitable);
          if (r.exit_code == 0 && r.std_out == expected(i)) ++ok;
          else std::cerr << "docker_parallel: workspace " << i << " answered exit " << r.exit_code << " (timed out: "
                         << r.timeout_occurred << "), out " << r.std_out << ", err " << r.std_err << "\n";
        },
        [](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& error) {
            std::cerr << "docker_parallel: " << error.what() << "\n";
          }
        });
  }
  context.run();
  return ok;
}

int run_blocking(const std::string& image, const std::string& label, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    DockerWorkspace ws(options(image, label));
    const auto r = ws.execute_command(command(i));
    if (r.exit_code == 0 && r.std_out == expected(i)) ++ok;
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "async";
  const int n = std::atoi(env_or("BENCH_N", "64").c_str());
  const std::string image = env_or("BENCH_IMAGE", "workspace-test-busybox:latest");
  const std::string label = "org.workspace-cpp.benchmark.parallel." + std::to_string(::getpid());
  if (mode != "async" && mode != "blocking") {
    std::cerr << "usage: docker_parallel async|blocking\n";
    return 2;
  }
  try {
    docker::Engine engine;
    if (!engine.image_exists(image)) {
      std::cerr << "docker_parallel: no image " << image << " on " << engine.endpoint() << "\n";
      return 1;
    }
    const auto started = std::chrono::steady_clock::now();
    const int ok = mode == "async" ? run_async(image, label, n) : run_blocking(image, label, n);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    const auto left = engine.list_containers({{"label", {label + "=true"}}});
    std::cout << "workspace_" << mode << " wall_ms=" << ms.count() << " n=" << n << " ok=" << ok << "\n";
    if (!left.empty()) {
      std::cerr << "docker_parallel: " << left.size() << " containers left behind\n";
      for (const auto& c : left) engine.remove(c.value("Id", std::string()));
      return 1;
    }
    return ok == n ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "docker_parallel: " << e.what() << "\n";
    return 1;
  }
}
