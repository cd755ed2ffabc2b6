// DockerWorkspace against what a caller would otherwise use, on one container and one daemon
// (DOCKER_HOST, a unix:// socket), in the same process and interleaved repetitions:
//
// 1. Command latency for `true`:
//    - DockerWorkspace::execute_command("true");
//    - the docker CLI, `docker exec CONTAINER true` (posix_spawnp, stdout and stderr on pipes
//      read to end-of-file, waitpid);
//    - the Engine API through the curl CLI, as a shell script would drive it: three curl runs per
//      command (POST /containers/{id}/exec, POST /exec/{id}/start with
//      {"Detach":false,"Tty":false}, GET /exec/{id}/json), each with --unix-socket. Should the
//      inspection still say Running, it is asked again (counted as `reinspects`).
//    Target: execute_command at least 1.2 times as fast as `docker exec`.
// 2. A 100 MB file of random bytes (made once, in a mkdtemp folder): file_upload and file_download
//    against `docker cp` both ways. MB/s are 10^6 bytes per second. Target: at least as fast as
//    docker cp. Our side's peak RSS is measured in a fresh process (this program run again with
//    --transfer-child, posix_spawn, so no memory of the parent is counted): it attaches to the same
//    container, uploads and downloads the file twice each, and prints its VmHWM; the parent also
//    takes ru_maxrss from wait4 (which counts this parent's memory too: glibc's posix_spawn runs
//    the child on the parent's address space until the exec). A second child that only attaches and runs `true` gives the floor
//    (libstdc++, the HTTP client). Target: peak RSS < 64 MiB. The figures go into the JSON output's
//    context (our_peak_rss_kib, baseline_rss_kib).
//
// Every repetition is checked: exit status 0 for every process (curl runs with --fail), ExitCode 0
// from the daemon, the transferred file's size (remote: `stat -c %s` in the container, outside
// the timed region; local: the file's size). Before the benchmarks, one upload and one download
// through each path is compared byte for byte with the original.
//
// The container is created once by a DockerWorkspace from an image built FROM scratch with the
// host's static busybox (Debian busybox-static) through our own Engine client, offline; the docker
// CLI and curl use its id. The container is removed at exit.
//
// Typical use (ONLY=docker scripts/run-benchmarks does this and prints the ratios):
//   DOCKER_HOST=unix:///run/workspace-test-docker.sock workspace.benchmarks.docker
//       --benchmark_repetitions=15 --benchmark_min_time=0.3
//       --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true
// Each transfer repetition is one 100 MB transfer (a fixed single iteration).
// --transfer_mb=N changes the file's size (default 100).
#include <workspace/docker.hpp>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT

namespace {

namespace fs = std::filesystem;

constexpr const char* image_tag = "workspace-bench-busybox:latest";
constexpr const char* bench_label = "org.workspace-cpp.benchmark";

constexpr const char* ours_exec = "DockerWorkspace/execute_command_true";
constexpr const char* cli_exec = "DockerCli/exec_true";
constexpr const char* curl_exec = "CurlEngineApi/exec_true";
constexpr const char* ours_upload = "DockerWorkspace/file_upload";
constexpr const char* cli_upload = "DockerCli/cp_upload";
constexpr const char* ours_download = "DockerWorkspace/file_download";
constexpr const char* cli_download = "DockerCli/cp_download";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "docker benchmark: %s\n", what.c_str());
  std::exit(2);
}

std::string errno_text(int error) { return std::generic_category().message(error); }

// --- child processes

struct ProcessResult {
  int status = -1;  // as from waitpid
  std::string out;
  std::string err;
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  std::string describe() const {
    std::string s = WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
    if (!err.empty()) s += ": " + err.substr(0, 500);
    return s;
  }
};

// posix_spawnp(argv) with stdin from /dev/null and stdout, stderr on close-on-exec pipes read to
// end-of-file with poll(), then waited for; the environment is ours (DOCKER_HOST included).
ProcessResult run(const std::vector<std::string>& args, rusage* usage = nullptr) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) die("pipe2: " + errno_text(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) die("pipe2: " + errno_text(errno));
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) die("posix_spawnp " + args[0] + ": " + errno_text(rc));
  ::close(out[1]);
  ::close(err[1]);

  ProcessResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  char buffer[16384];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll: " + errno_text(errno));
    }
    for (int i = 0; i < 2; ++i) {
      pollfd& p = fds[i];
      if (p.fd < 0 || p.revents == 0) continue;
      const ssize_t n = ::read(p.fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(p.fd);
        p.fd = -1;
      } else {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  rusage local_usage{};
  while (::wait4(pid, &result.status, 0, usage ? usage : &local_usage) < 0)
    if (errno != EINTR) die("wait4: " + errno_text(errno));
  return result;
}

// --- set-up

std::string socket_path() {
  const char* host = std::getenv("DOCKER_HOST");
  const std::string h = host ? host : "";
  if (h.rfind("unix://", 0) != 0)
    die("DOCKER_HOST must be a unix:// address (scripts/lib/dockerd.sh's ensure_dockerd sets it); it is '" + h + "'");
  return h.substr(7);
}

// The benchmark image: busybox-static FROM scratch, built offline through our Engine client.
void build_image(const fs::path& dir) {
  const fs::path busybox = "/bin/busybox";
  if (!fs::exists(busybox)) die("/bin/busybox is missing: install the Debian package busybox-static");
  const fs::path context = dir / "context";
  fs::create_directories(context);
  fs::copy_file(busybox, context / "busybox", fs::copy_options::overwrite_existing);
  fs::permissions(context / "busybox", fs::perms(0755), fs::perm_options::replace);
  std::ofstream(context / "Dockerfile") << "FROM scratch\n"
                                           "COPY busybox /bin/busybox\n"
                                           "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
                                           "RUN mkdir -p /tmp && chmod 1777 /tmp\n"
                                           "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";
  workspace::tar::Writer writer;
  writer.add_file("Dockerfile", (context / "Dockerfile").string());
  writer.add_file("busybox", (context / "busybox").string());
  workspace::docker::Engine engine;
  const auto size = writer.size();
  engine.build(std::move(writer).source(), size, image_tag);
  fs::remove_all(context);
}

void make_random_file(const fs::path& path, std::uint64_t size) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937_64 random(20240601);
  std::vector<std::uint64_t> block(1 << 16);
  std::uint64_t left = size;
  while (left > 0) {
    for (auto& w : block) w = random();
    const std::uint64_t n = std::min<std::uint64_t>(left, block.size() * sizeof(std::uint64_t));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    left -= n;
  }
  if (!out) die("cannot write " + path.string());
}

bool same_content(const fs::path& a, const fs::path& b) {
  std::ifstream x(a, std::ios::binary);
  std::ifstream y(b, std::ios::binary);
  std::vector<char> bx(1 << 20);
  std::vector<char> by(1 << 20);
  for (;;) {
    x.read(bx.data(), static_cast<std::streamsize>(bx.size()));
    y.read(by.data(), static_cast<std::streamsize>(by.size()));
    if (x.gcount() != y.gcount()) return false;
    if (x.gcount() == 0) return true;
    if (std::memcmp(bx.data(), by.data(), static_cast<std::size_t>(x.gcount())) != 0) return false;
  }
}

std::uint64_t local_size(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

// --- the shared state of the benchmarks

struct Setup {
  workspace::DockerWorkspace* ws = nullptr;
  std::string id;
  std::string socket;
  std::string api;  // "/v1.41"
  fs::path dir;
  fs::path data;     // the 100 MB original
  std::uint64_t size = 0;
};

Setup* setup = nullptr;

std::uint64_t remote_size(const std::string& path) {
  const auto r = setup->ws->execute_command("stat -c %s " + path);
  if (r.exit_code != 0) return 0;
  return std::strtoull(r.std_out.c_str(), nullptr, 10);
}

// --- exec benchmarks

void bm_ours_exec(benchmark::State& state) {
  for (auto _ : state) {
    const workspace::CommandResult r = setup->ws->execute_command("true");
    if (r.exit_code != 0 || r.timeout_occurred) {
      state.SkipWithError("execute_command(\"true\") failed");
      break;
    }
    benchmark::DoNotOptimize(r);
  }
}

void bm_cli_exec(benchmark::State& state) {
  const std::vector<std::string> args = {"docker", "exec", setup->id, "true"};
  for (auto _ : state) {
    const ProcessResult r = run(args);
    if (!r.ok()) {
      state.SkipWithError(("docker exec failed: " + r.describe()).c_str());
      break;
    }
  }
}

std::vector<std::string> curl(std::vector<std::string> tail) {
  std::vector<std::string> args = {"curl", "--silent", "--show-error", "--fail", "--unix-socket", setup->socket};
  args.insert(args.end(), tail.begin(), tail.end());
  return args;
}

void bm_curl_exec(benchmark::State& state) {
  const std::string base = "http://localhost" + setup->api;
  const std::vector<std::string> create =
      curl({"-X", "POST", "-H", "Content-Type: application/json", "--data",
            R"({"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["true"]})",
            base + "/containers/" + setup->id + "/exec"});
  std::int64_t reinspects = 0;
  for (auto _ : state) {
    const ProcessResult created = run(create);
    if (!created.ok()) {
      state.SkipWithError(("curl exec create failed: " + created.describe()).c_str());
      break;
    }
    const auto id_json = nlohmann::json::parse(created.out, nullptr, false);
    if (id_json.is_discarded() || !id_json.contains("Id")) {
      state.SkipWithError(("exec create answered " + created.out).c_str());
      break;
    }
    const std::string exec_id = id_json["Id"].get<std::string>();
    const ProcessResult started = run(curl({"-X", "POST", "-H", "Content-Type: application/json", "--data",
                                            R"({"Detach":false,"Tty":false})", base + "/exec/" + exec_id + "/start"}));
    if (!started.ok()) {
      state.SkipWithError(("curl exec start failed: " + started.describe()).c_str());
      break;
    }
    int exit_code = -1;
    for (;;) {
      const ProcessResult inspected = run(curl({base + "/exec/" + exec_id + "/json"}));
      const auto info = nlohmann::json::parse(inspected.out, nullptr, false);
      if (!inspected.ok() || info.is_discarded()) break;
      if (info.value("Running", false) || !info["ExitCode"].is_number_integer()) {
        ++reinspects;
        continue;
      }
      exit_code = info["ExitCode"].get<int>();
      break;
    }
    if (exit_code != 0) {
      state.SkipWithError(("exec through curl: exit code " + std::to_string(exit_code)).c_str());
      break;
    }
  }
  state.counters["reinspects"] = static_cast<double>(reinspects);
}

// --- transfer benchmarks (one transfer per iteration; validation outside the timed region)

void bm_ours_upload(benchmark::State& state) {
  const std::string remote = "/workspace/ours-up.bin";
  for (auto _ : state) {
    const auto r = setup->ws->file_upload(setup->data.string(), remote);
    state.PauseTiming();
    const bool ok = r.success && r.file_size == setup->size && remote_size(remote) == setup->size;
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError(("file_upload failed: " + r.error.value_or("")).c_str());
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(setup->size));
}

void bm_cli_upload(benchmark::State& state) {
  const std::string remote = "/workspace/cli-up.bin";
  const std::vector<std::string> args = {"docker", "cp", setup->data.string(), setup->id + ":" + remote};
  for (auto _ : state) {
    const ProcessResult r = run(args);
    state.PauseTiming();
    const bool ok = r.ok() && remote_size(remote) == setup->size;
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError(("docker cp upload failed: " + r.describe()).c_str());
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(setup->size));
}

// Both download into a file that does not exist yet (removed outside the timed region).
void bm_ours_download(benchmark::State& state) {
  const fs::path local = setup->dir / "ours-down.bin";
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove(local);
    state.ResumeTiming();
    const auto r = setup->ws->file_download("/workspace/source.bin", local.string());
    state.PauseTiming();
    const bool ok = r.success && r.file_size == setup->size && local_size(local) == setup->size;
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError(("file_download failed: " + r.error.value_or("")).c_str());
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(setup->size));
}

void bm_cli_download(benchmark::State& state) {
  const fs::path local = setup->dir / "cli-down.bin";
  const std::vector<std::string> args = {"docker", "cp", setup->id + ":/workspace/source.bin", local.string()};
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove(local);
    state.ResumeTiming();
    const ProcessResult r = run(args);
    state.PauseTiming();
    const bool ok = r.ok() && local_size(local) == setup->size;
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError(("docker cp download failed: " + r.describe()).c_str());
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(setup->size));
}

// --- peak RSS of our side, in a fresh process

long vm_hwm_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

// --transfer-child=ID:LOCAL:DIR  or  --baseline-child=ID. Prints "VmHWM <kib>" and exits 0, or
// says what failed and exits 1.
int transfer_child(const std::string& spec, bool transfers) {
  try {
    std::string id = spec;
    std::string local;
    std::string dir;
    if (transfers) {
      const auto a = spec.find(':');
      const auto b = spec.find(':', a + 1);
      id = spec.substr(0, a);
      local = spec.substr(a + 1, b - a - 1);
      dir = spec.substr(b + 1);
    }
    auto ws = workspace::DockerWorkspace::attach(id);
    if (ws.execute_command("true").exit_code != 0) throw std::runtime_error("true failed");
    if (transfers) {
      const std::uint64_t size = fs::file_size(local);
      for (int i = 0; i < 2; ++i) {
        const auto up = ws.file_upload(local, "/workspace/rss-up.bin");
        if (!up.success || up.file_size != size) throw std::runtime_error("upload: " + up.error.value_or(""));
        const std::string down_path = dir + "/rss-down.bin";
        fs::remove(down_path);
        const auto down = ws.file_download("/workspace/rss-up.bin", down_path);
        if (!down.success || local_size(down_path) != size) throw std::runtime_error("download: " + down.error.value_or(""));
        fs::remove(down_path);
      }
      ws.execute_command("rm -f /workspace/rss-up.bin");
    }
    std::printf("VmHWM %ld\n", vm_hwm_kib());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

// Runs this program again in one of the child modes; returns {VmHWM, ru_maxrss} in KiB.
std::pair<long, long> measure_child(const std::string& flag) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) die("readlink /proc/self/exe: " + errno_text(errno));
  self[n] = '\0';
  rusage usage{};
  const ProcessResult r = run({self, flag}, &usage);
  if (!r.ok()) throw std::runtime_error("the RSS child (" + flag + ") failed: " + r.describe());
  return {std::atol(r.out.c_str() + r.out.find(' ') + 1), usage.ru_maxrss};
}

// --- report

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter(OutputOptions o, long rss, long baseline) : ConsoleReporter(o), rss_(rss), baseline_(baseline) {}

  void ReportRuns(const std::vector<Run>& reports) override {
    benchmark::ConsoleReporter::ReportRuns(reports);
    for (const Run& run : reports) {
      if (run.error_occurred) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median" &&
                          run.aggregate_unit == benchmark::kTime;
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (!median && !single) continue;
      const std::string& name = run.run_name.function_name;
      times_[name] = run.GetAdjustedRealTime();
      const auto rate = run.counters.find("bytes_per_second");
      if (rate != run.counters.end()) rates_[name] = rate->second.value / 1e6;
    }
  }

  void Finalize() override {
    benchmark::ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    out << "\n";
    if (have(times_, {ours_exec, cli_exec, curl_exec})) {
      out << "median `true`: DockerWorkspace " << times_[ours_exec] << " ms, docker exec " << times_[cli_exec]
          << " ms, curl x3 " << times_[curl_exec] << " ms\n"
          << "docker exec / DockerWorkspace = " << times_[cli_exec] / times_[ours_exec]
          << " (target >= 1.2); curl / DockerWorkspace = " << times_[curl_exec] / times_[ours_exec] << "\n";
    }
    if (have(rates_, {ours_upload, cli_upload}))
      out << "median upload: DockerWorkspace " << rates_[ours_upload] << " MB/s, docker cp " << rates_[cli_upload]
          << " MB/s, ratio " << rates_[ours_upload] / rates_[cli_upload] << " (target >= 1.0)\n";
    if (have(rates_, {ours_download, cli_download}))
      out << "median download: DockerWorkspace " << rates_[ours_download] << " MB/s, docker cp "
          << rates_[cli_download] << " MB/s, ratio " << rates_[ours_download] / rates_[cli_download]
          << " (target >= 1.0)\n";
    out << "peak RSS of our transfers: " << rss_ << " KiB (baseline process " << baseline_
        << " KiB; target < 65536 KiB)\n";
  }

 private:
  static bool have(const std::map<std::string, double>& m, std::initializer_list<const char*> names) {
    for (const char* n : names) {
      const auto it = m.find(n);
      if (it == m.end() || it->second <= 0) return false;
    }
    return true;
  }
  std::map<std::string, double> times_;
  std::map<std::string, double> rates_;
  long rss_;
  long baseline_;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t megabytes = 100;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.rfind("--transfer-child=", 0) == 0) return transfer_child(std::string(a.substr(17)), true);
    if (a.rfind("--baseline-child=", 0) == 0) return transfer_child(std::string(a.substr(17)), false);
    if (a.rfind("--transfer_mb=", 0) == 0) {
      megabytes = std::strtoull(argv[i] + 14, nullptr, 10);
      continue;
    }
    rest.push_back(argv[i]);
  }
  argc = static_cast<int>(rest.size());
  rest.push_back(nullptr);
  argv = rest.data();

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  Setup s;
  s.socket = socket_path();
  std::string dir_template = (fs::temp_directory_path() / "workspace-bench-docker-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) die("mkdtemp: " + errno_text(errno));
  s.dir = dir_template;
  s.data = s.dir / "data.bin";
  s.size = megabytes * 1000 * 1000;

  int rc = 0;
  // Inside here a failure throws, so that the container is removed on the way out.
  const auto fail = [](const std::string& why) { throw std::runtime_error(why); };
  try {
    build_image(s.dir);
    make_random_file(s.data, s.size);

    workspace::DockerWorkspaceOptions options;
    options.image = image_tag;
    options.pull_if_missing = false;
    options.labels = {{bench_label, "true"}};
    workspace::DockerWorkspace ws(options);
    s.ws = &ws;
    s.id = ws.id();
    s.api = "/v" + ws.engine().api_version();
    setup = &s;

    // Correctness once, byte for byte, both ways and through both paths.
    const auto up = ws.file_upload(s.data.string(), "/workspace/source.bin");
    if (!up.success) fail(up.error.value_or("upload failed"));
    const fs::path check = s.dir / "check.bin";
    const auto down = ws.file_download("/workspace/source.bin", check.string());
    if (!down.success || !same_content(s.data, check)) fail("file_download: content differs: " + down.error.value_or(""));
    fs::remove(check);
    ProcessResult r = run({"docker", "cp", s.data.string(), s.id + ":/workspace/cli-check.bin"});
    if (!r.ok()) fail("docker cp upload: " + r.describe());
    r = run({"docker", "cp", s.id + ":/workspace/cli-check.bin", check.string()});
    if (!r.ok() || !same_content(s.data, check)) fail("docker cp round trip differs: " + r.describe());
    fs::remove(check);
    const auto via_cli = ws.file_download("/workspace/cli-check.bin", check.string());
    if (!via_cli.success || !same_content(s.data, check)) fail("docker cp upload differs: " + via_cli.error.value_or(""));
    fs::remove(check);
    ws.execute_command("rm -f /workspace/cli-check.bin");

    const auto [rss, rss_maxrss] = measure_child("--transfer-child=" + s.id + ":" + s.data.string() + ":" + s.dir.string());
    const auto [base, base_maxrss] = measure_child("--baseline-child=" + s.id);
    benchmark::AddCustomContext("our_peak_rss_kib", std::to_string(rss));
    benchmark::AddCustomContext("our_peak_rss_maxrss_kib", std::to_string(rss_maxrss));
    benchmark::AddCustomContext("baseline_rss_kib", std::to_string(base));
    benchmark::AddCustomContext("baseline_rss_maxrss_kib", std::to_string(base_maxrss));
    benchmark::AddCustomContext("transfer_bytes", std::to_string(s.size));
    benchmark::AddCustomContext("container", s.id);

    using Function = void (*)(benchmark::State&);
    const std::pair<const char*, Function> latency[] = {{ours_exec, bm_ours_exec}, {cli_exec, bm_cli_exec}, {curl_exec, bm_curl_exec}};
    const std::pair<const char*, Function> transfers[] = {{ours_upload, bm_ours_upload}, {cli_upload, bm_cli_upload},
                                                          {ours_download, bm_ours_download}, {cli_download, bm_cli_download}};
    for (const auto& [name, fn] : latency)
      benchmark::RegisterBenchmark(name, fn)->UseRealTime()->Unit(benchmark::kMillisecond);
    for (const auto& [name, fn] : transfers)
      benchmark::RegisterBenchmark(name, fn)->UseRealTime()->Iterations(1)->Unit(benchmark::kMillisecond);

    RatioReporter reporter(::isatty(STDOUT_FILENO) != 0 ? benchmark::ConsoleReporter::OO_ColorTabular
                                                        : benchmark::ConsoleReporter::OO_Tabular,
                           rss, base);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    setup = nullptr;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "docker benchmark: %s\n", e.what());
    rc = 2;
  }
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(s.dir, ec);
  return rc;
}
