// Time to a new container's first command: a DockerWorkspace created, `true` run in it, and the
// workspace closed, against `docker run --rm --network none IMAGE true` (the CLI, spawned; it
// creates, attaches, starts, waits and removes). Rounds alternate between the two. Prints, per
// side, the median time to the first command's result and to the container's removal, and the
// ratios. Needs DOCKER_HOST (unix://) and the image (BENCH_IMAGE, default the tests' busybox
// image); BENCH_ROUNDS (default 15). Exits non-zero when a run fails or a container is left.
#include <workspace/docker.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

extern char** environ;

using namespace workspace;
using Clock = std::chrono::steady_clock;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The CLI's whole run, from spawn to reaped; -1 when it failed.
double cli_run(const std::string& host, const std::string& image, const std::string& label) {
  std::vector<std::string> args = {"docker", "-H", host, "run", "--rm", "--network", "none", "--label", label, image, "true"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto start = Clock::now();
  pid_t pid = 0;
  if (::posix_spawnp(&pid, "docker", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return ms_since(start);
}

}  // namespace

int main() {
  const std::string host = env_or("DOCKER_HOST", "");
  const std::string image = env_or("BENCH_IMAGE", "workspace-test-busybox:latest");
  const int rounds = std::atoi(env_or("BENCH_ROUNDS", "15").c_str());
  const std::string label = "org.workspace-cpp.benchmark.first-command." + std::to_string(::getpid());
  if (host.rfind("unix://", 0) != 0) {
    std::cerr << "docker_first_command: DOCKER_HOST must name a unix:// socket\n";
    return 2;
  }
  std::vector<double> ours_first, ours_gone, cli;
  try {
    docker::Engine engine;
    if (!engine.image_exists(image)) {
      std::cerr << "docker_first_command: no image " << image << " on " << host << "\n";
      return 1;
    }
    for (int r = 0; r < rounds; ++r) {
      // Alternate which goes first, so that neither always runs on a daemon just disturbed.
      for (int side = 0; side < 2; ++side) {
        if ((side == 0) == (r % 2 == 0)) {
          DockerWorkspaceOptions o;
          o.image = image;
          o.pull_if_missing = false;
          o.labels[label] = "true";
          const auto start = Clock::now();
          {
            DockerWorkspace ws(o);
            const auto result = ws.execute_command("true");
            ours_first.push_back(ms_since(start));
            if (result.exit_code != 0) throw std::runtime_error("true answered " + std::to_string(result.exit_code));
          }
          ours_gone.push_back(ms_since(start));
        } else {
          const double t = cli_run(host, image, label + "=cli");
          if (t < 0) throw std::runtime_error("docker run failed");
          cli.push_back(t);
        }
      }
    }
    const auto left = engine.list_containers({{"label", {label}}});
    if (!left.empty()) {
      std::cerr << "docker_first_command: " << left.size() << " containers left behind\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "docker_first_command: " << e.what() << "\n";
    return 1;
  }
  const double first = median(ours_first), gone = median(ours_gone), run = median(cli);
  std::cout << std::fixed << std::setprecision(1) << "first command, median of " << rounds << " rounds:\n"
            << "  DockerWorkspace, created to first result:     " << first << " ms\n"
            << "  DockerWorkspace, created to container removed: " << gone << " ms\n"
            << "  docker run --rm IMAGE true:                    " << run << " ms\n"
            << std::setprecision(2) << "  CLI / ours (first result) = " << run / first
            << ", CLI / ours (removed) = " << run / gone << " (goal: above 1)\n";
  return 0;
}
