// Latency of LocalWorkspace::execute_command("true") against the least a caller could do to get
// the same result: posix_spawn of `/bin/sh -c true` with stdin from /dev/null, stdout and stderr
// each on a close-on-exec pipe, both pipes read to end-of-file with poll(), then waitpid().
//
// Both benchmarks run in the same process and (with --benchmark_enable_random_interleaving) in
// interleaved repetitions, so machine noise hits both alike. At the end the medians of the two
// and their ratio (LocalWorkspace / raw) are printed; the acceptance target is <= 1.10.
//
// Typical use (scripts/run-benchmarks does this):
//   workspace.benchmarks.local_latency --benchmark_repetitions=100 --benchmark_min_time=0.1
//       --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true
#include <workspace/local/local_workspace.hpp>

#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT

namespace {

constexpr const char* local_name = "LocalWorkspace/execute_command_true";
constexpr const char* raw_name = "RawPosixSpawn/sh_c_true";

[[noreturn]] void die(const char* what, int error) {
  std::fprintf(stderr, "%s: %s\n", what, std::generic_category().message(error).c_str());
  std::exit(2);
}

// The baseline. Returns the wait status of the shell.
int raw_spawn_sh_true() {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) die("pipe2", errno);
  if (::pipe2(err, O_CLOEXEC) != 0) die("pipe2", errno);

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, err[1], 2);

  char arg0[] = "sh";
  char arg1[] = "-c";
  char arg2[] = "true";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) die("posix_spawn", rc);
  ::close(out[1]);
  ::close(err[1]);

  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  char buffer[4096];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll", errno);
    }
    for (pollfd& p : fds) {
      if (p.fd < 0 || p.revents == 0) continue;
      ssize_t n = ::read(p.fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // end-of-file (or an error, which ends the stream all the same)
        ::close(p.fd);
        p.fd = -1;  // poll() ignores negative descriptors
      }
    }
  }

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid", errno);
  return status;
}

void bm_raw(benchmark::State& state) {
  for (auto _ : state) {
    int status = raw_spawn_sh_true();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("/bin/sh -c true failed");
      break;
    }
  }
}

void bm_local(benchmark::State& state, const workspace::LocalWorkspace& ws) {
  for (auto _ : state) {
    workspace::CommandResult result = ws.execute_command("true");
    if (result.exit_code != 0) {
      state.SkipWithError("execute_command(\"true\") failed");
      break;
    }
    benchmark::DoNotOptimize(result);
  }
}

// The console output as usual, then both medians and their ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  using benchmark::ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& reports) override {
    benchmark::ConsoleReporter::ReportRuns(reports);
    for (const Run& run : reports) {
      if (run.error_occurred) continue;
      const std::string& name = run.run_name.function_name;
      if (name != local_name && name != raw_name) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median" &&
                          run.aggregate_unit == benchmark::kTime;
      // With a single repetition there is no median; the one run stands in for it.
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (median || single) medians_[name] = run.GetAdjustedRealTime();
    }
  }

  void Finalize() override {
    benchmark::ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    auto local = medians_.find(local_name);
    auto raw = medians_.find(raw_name);
    if (local == medians_.end() || raw == medians_.end() || raw->second <= 0) {
      out << "\nratio: not available (both benchmarks must run without error)\n";
      return;
    }
    out << "\nmedian real time, LocalWorkspace execute_command(\"true\"): " << local->second
        << " us\nmedian real time, raw posix_spawn /bin/sh -c true:       " << raw->second
        << " us\nratio LocalWorkspace / raw: " << local->second / raw->second
        << " (target <= 1.10)\n";
  }

 private:
  std::map<std::string, double> medians_;
};

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::string dir_template = (fs::temp_directory_path() / "workspace-bench-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) die("mkdtemp", errno);
  const fs::path dir = dir_template;

  int rc = 0;
  {
    workspace::LocalWorkspace ws(dir);
    benchmark::RegisterBenchmark(local_name, bm_local, std::cref(ws))
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(raw_name, bm_raw)->UseRealTime()->Unit(benchmark::kMicrosecond);

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
      rc = 1;
    } else {
      RatioReporter reporter(::isatty(STDOUT_FILENO) != 0
                                 ? benchmark::ConsoleReporter::OO_ColorTabular
                                 : benchmark::ConsoleReporter::OO_Tabular);
      benchmark::RunSpecifiedBenchmarks(&reporter);
    }
    benchmark::Shutdown();
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return rc;
}
