// N commands `sleep S; echo I` at once through one RemoteWorkspace, from one thread with the
// asynchronous API, against a running OpenHands agent server (AGENT_SERVER_URL,
// AGENT_SERVER_SESSION_KEY, AGENT_SERVER_WORKSPACE). Prints one JSON line like
// benchmarks/python_sdk_async_remote.py (the OpenHands SDK's AsyncRemoteWorkspace doing the same),
// which scripts/run-benchmarks (ONLY=remote_concurrent) interleaves with it. Usage:
// remote_concurrent N SECONDS. Exits non-zero unless every output was right.
#include <workspace/agent.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

using namespace workspace;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: remote_concurrent N SECONDS\n";
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const std::string seconds = argv[2];
  const char* url = std::getenv("AGENT_SERVER_URL");
  const char* key = std::getenv("AGENT_SERVER_SESSION_KEY");
  const char* dir = std::getenv("AGENT_SERVER_WORKSPACE");
  if (url == nullptr || key == nullptr || dir == nullptr) {
    std::cerr << "remote_concurrent: set AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY and AGENT_SERVER_WORKSPACE\n";
    return 2;
  }
  asio::io_context context(1);
  RemoteWorkspace ws(context.get_executor(), RemoteWorkspaceOptions{.host = url, .session_api_key = key, .working_dir = dir});
  // Two warm-up commands, as the SDK baseline has.
  for (int i = 0; i < 2; ++i) ws.execute_command("true");

  int ok = 0;
  int failed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        context,
        [&, i]() -> asio::awaitable<void> {
          const auto r = co_await ws.async_execute_command("sleep " + seconds + "; echo " + std::to_string(i), asio::use_awaitable);
          if (r.exit_code == 0 && r.std_out == std::to_string(i) + "\n") ++ok;
          else std::cerr << "command " << i << ": exit " << r.exit_code << " out " << r.std_out << " err " << r.std_err << "\n";
        },
        [&](std::exception_ptr e) {
          if (!e) return;
          ++failed;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            std::cerr << "remote_concurrent: " << x.what() << "\n";
          }
        });
  }
  context.run();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"impl\":\"workspace-async\",\"op\":\"concurrent_sleep\",\"n\":%d,\"sleep_s\":%s,\"wall_s\":%.4f,\"ok\":%d}\n", n,
              seconds.c_str(), wall, ok);
  return ok == n && failed == 0 ? 0 : 1;
}
