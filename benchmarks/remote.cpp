// RemoteWorkspace against a running OpenHands agent server, in batches that
// scripts/run-benchmarks interleaves with the same batches of the OpenHands Python SDK's
// RemoteWorkspace (benchmarks/python_sdk_remote.py, run with the agent server venv's Python).
// The modes and their one-line JSON answers mirror that script's, so the two sides are measured
// the same way and compared in the same run:
//
//   latency N
//       execute_command("true") N times after 3 warm-ups on one RemoteWorkspace; exit code 0
//       (and no timeout) is checked every time.
//       {"impl":"workspace","op":"true","n":N,"median_ms":..,"p10_ms":..,"p90_ms":..,
//        "mean_ms":..,"min_ms":..,"max_ms":..,"samples_ms":[..]}
//   upload SIZE_BYTES LOCAL_SRC REMOTE_DST
//       writes SIZE_BYTES of random bytes (a fresh seed each time, so a file left by an earlier
//       run cannot pass for this one) to LOCAL_SRC in 512 KiB pieces, then a fresh process (this
//       program again, posix_spawn) opens a RemoteWorkspace, runs `true` to warm the connection,
//       and times file_upload(LOCAL_SRC, REMOTE_DST) alone. Afterwards the server's `cksum` of
//       REMOTE_DST must equal the POSIX cksum (CRC and size) computed while writing LOCAL_SRC.
//   download SIZE_BYTES REMOTE_SRC LOCAL_DST
//       has the server write SIZE_BYTES from /dev/urandom to REMOTE_SRC and `cksum` it, removes
//       LOCAL_DST, then the fresh process times file_download(REMOTE_SRC, LOCAL_DST) alone;
//       afterwards the local file's cksum must equal the server's.
//   Transfers print {"impl":"workspace","op":"upload"|"download","bytes":..,"seconds":..,
//   "mb_per_s":..,"peak_rss_kib":..,"rss_before_kib":..,"maxrss_kib":..,"cksum":..} where
//   peak_rss_kib is the transfer process's VmHWM after the transfer, rss_before_kib its VmHWM
//   just before it (a process that only connected and ran `true`), and maxrss_kib its ru_maxrss
//   from wait4 (which also counts this parent up to the exec). MB/s are 10^6 bytes per second.
//
// --transfer_mb=N (before the mode) gives SIZE_BYTES as N * 10^6 for upload and download instead
// of a number (write `-` for SIZE_BYTES); default 100.
//
// Environment (as for the Python script): AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY,
// AGENT_SERVER_WORKSPACE (the working_dir). scripts/lib/agent-server.sh's ensure_agent_server
// exports them. Exit status 0 on success; any failure says what failed on stderr and exits 1.
//
// Typical use (ONLY=remote scripts/run-benchmarks does this, interleaved with the SDK, and prints
// the ratios):
//   workspace.benchmarks.remote latency 50
//   workspace.benchmarks.remote upload - /tmp/up.bin "$AGENT_SERVER_WORKSPACE/bench/up.bin"
#include <workspace/agent.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errno_text(int error) { return std::generic_category().message(error); }

std::string env(const char* name, bool required = true) {
  const char* value = std::getenv(name);
  if ((value == nullptr || *value == '\0') && required) throw Failure(std::string(name) + " is not set");
  return value ? value : "";
}

workspace::RemoteWorkspace open_workspace() {
  return workspace::RemoteWorkspace(env("AGENT_SERVER_URL"), env("AGENT_SERVER_SESSION_KEY", false),
                                    env("AGENT_SERVER_WORKSPACE"));
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

void run_true(workspace::RemoteWorkspace& ws) {
  const auto r = ws.execute_command("true");
  if (r.exit_code != 0 || r.timeout_occurred)
    throw Failure("`true` gave exit code " + std::to_string(r.exit_code) + (r.timeout_occurred ? " (timed out)" : "") +
                  ", stderr " + nlohmann::json(r.std_err).dump());
}

// --- POSIX cksum (CRC-32, polynomial 0x04C11DB7, MSB first, the length appended), as coreutils'
// `cksum` prints it

class Cksum {
 public:
  Cksum() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i << 24;
      for (int k = 0; k < 8; ++k) c = (c & 0x80000000U) != 0 ? (c << 1) ^ 0x04C11DB7U : c << 1;
      table_[i] = c;
    }
  }
  void update(const unsigned char* p, std::size_t n) {
    std::uint32_t crc = crc_;
    for (std::size_t i = 0; i < n; ++i) crc = (crc << 8) ^ table_[((crc >> 24) ^ p[i]) & 0xFFU];
    crc_ = crc;
    length_ += n;
  }
  std::uint32_t value() const {
    std::uint32_t crc = crc_;
    for (std::uint64_t n = length_; n != 0; n >>= 8) crc = (crc << 8) ^ table_[((crc >> 24) ^ n) & 0xFFU];
    return ~crc;
  }
  std::uint64_t length() const { return length_; }
  std::string text() const { return std::to_string(value()) + " " + std::to_string(length_); }

 private:
  std::array<std::uint32_t, 256> table_{};
  std::uint32_t crc_ = 0;
  std::uint64_t length_ = 0;
};

constexpr std::size_t piece = 512 * 1024;

// Writes `size` random bytes to `path` in pieces (nothing large in memory); returns their cksum.
std::string write_random_file(const fs::path& path, std::uint64_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw Failure("cannot create " + path.string() + ": " + errno_text(errno));
  std::mt19937_64 random(std::random_device{}());
  std::vector<std::uint64_t> block(piece / sizeof(std::uint64_t));
  Cksum sum;
  for (std::uint64_t left = size; left > 0;) {
    for (auto& w : block) w = random();
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, piece));
    const auto* bytes = reinterpret_cast<const unsigned char*>(block.data());
    sum.update(bytes, n);
    if (std::fwrite(bytes, 1, n, f) != n) {
      std::fclose(f);
      throw Failure("cannot write " + path.string() + ": " + errno_text(errno));
    }
    left -= n;
  }
  if (std::fclose(f) != 0) throw Failure("cannot write " + path.string() + ": " + errno_text(errno));
  return sum.text();
}

std::string file_cksum(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw Failure("cannot open " + path.string() + ": " + errno_text(errno));
  std::vector<unsigned char> buffer(piece);
  Cksum sum;
  for (;;) {
    const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), f);
    if (n == 0) break;
    sum.update(buffer.data(), n);
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw Failure("cannot read " + path.string());
  return sum.text();
}

// "CRC SIZE" from the first line `cksum FILE` printed on the server.
std::string remote_cksum_of(const workspace::CommandResult& r, const std::string& what) {
  if (r.exit_code != 0 || r.timeout_occurred)
    throw Failure(what + ": exit code " + std::to_string(r.exit_code) + ", stderr " + nlohmann::json(r.std_err).dump());
  std::string line = r.std_out.substr(0, r.std_out.find('\n'));
  const auto first = line.find(' ');
  const auto second = first == std::string::npos ? std::string::npos : line.find(' ', first + 1);
  if (second == std::string::npos) throw Failure(what + ": unexpected output " + nlohmann::json(r.std_out).dump());
  return line.substr(0, second);
}

std::string remote_cksum(workspace::RemoteWorkspace& ws, const std::string& path) {
  workspace::CommandOptions o;
  o.timeout = std::chrono::minutes(10);
  return remote_cksum_of(ws.execute_command("cksum " + shell_quote(path), o), "cksum " + path + " on the server");
}

// --- statistics, as python_sdk_remote.py computes them

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.size() == 1) return sorted.front();
  const double k = static_cast<double>(sorted.size() - 1) * p;
  const auto lo = static_cast<std::size_t>(k);
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - static_cast<double>(lo));
}

double rounded(double v) { return std::round(v * 1000.0) / 1000.0; }

nlohmann::json latency(int n) {
  if (n <= 0) throw Failure("latency: N must be positive");
  auto ws = open_workspace();
  for (int i = 0; i < 3; ++i) run_true(ws);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    run_true(ws);
    samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (const double s : sorted) sum += s;
  nlohmann::json rounded_samples = nlohmann::json::array();
  for (const double s : samples) rounded_samples.push_back(rounded(s));
  return {{"impl", "workspace"},
          {"op", "true"},
          {"n", n},
          {"median_ms", rounded(percentile(sorted, 0.5))},
          {"p10_ms", rounded(percentile(sorted, 0.10))},
          {"p90_ms", rounded(percentile(sorted, 0.90))},
          {"mean_ms", rounded(sum / static_cast<double>(n))},
          {"min_ms", rounded(sorted.front())},
          {"max_ms", rounded(sorted.back())},
          {"samples_ms", rounded_samples}};
}

// --- the transfer process

long vm_hwm_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

// --transfer-child upload|download FROM TO: connects, warms up with `true`, times the one
// transfer and prints {"seconds":..,"bytes":..,"rss_before_kib":..,"peak_rss_kib":..}.
int transfer_child(const std::string& op, const std::string& from, const std::string& to) {
  try {
    auto ws = open_workspace();
    run_true(ws);
    const long before = vm_hwm_kib();
    const auto t0 = Clock::now();
    const workspace::FileOperationResult r = op == "upload" ? ws.file_upload(from, to) : ws.file_download(from, to);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const long peak = vm_hwm_kib();
    if (!r.success) throw Failure(op + " failed: " + r.error.value_or("(no error given)"));
    std::cout << nlohmann::json{{"seconds", seconds},
                                {"bytes", r.file_size.value_or(0)},
                                {"rss_before_kib", before},
                                {"peak_rss_kib", peak}}
                     .dump()
              << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "remote benchmark transfer process: %s\n", e.what());
    return 1;
  }
}

// Runs this program again as a transfer process; its stdout is the JSON line, its stderr ours.
nlohmann::json spawn_transfer(const std::string& op, const std::string& from, const std::string& to, long& maxrss_kib) {
  char self[4096];
  const ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) throw Failure("readlink /proc/self/exe: " + errno_text(errno));
  self[len] = '\0';
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw Failure("pipe2: " + errno_text(errno));
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<std::string> args = {self, "--transfer-child", op, from, to};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, self, &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    throw Failure("posix_spawn " + std::string(self) + ": " + errno_text(rc));
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0)
    if (errno != EINTR) throw Failure("wait4: " + errno_text(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Failure("the " + op + " process failed (see above)");
  maxrss_kib = usage.ru_maxrss;
  auto answer = nlohmann::json::parse(text, nullptr, false);
  if (!answer.is_object()) throw Failure("the " + op + " process answered " + nlohmann::json(text).dump());
  return answer;
}

nlohmann::json transfer_result(const std::string& op, std::uint64_t size, const nlohmann::json& child, long maxrss,
                               const std::string& sum) {
  const double seconds = child.at("seconds").get<double>();
  return {{"impl", "workspace"},
          {"op", op},
          {"bytes", size},
          {"seconds", std::round(seconds * 1e4) / 1e4},
          {"mb_per_s", seconds > 0 ? std::round(static_cast<double>(size) / 1e6 / seconds * 100) / 100 : 0.0},
          {"peak_rss_kib", child.at("peak_rss_kib")},
          {"rss_before_kib", child.at("rss_before_kib")},
          {"maxrss_kib", maxrss},
          {"cksum", sum}};
}

nlohmann::json upload(std::uint64_t size, const std::string& local_src, const std::string& remote_dst) {
  const std::string sum = write_random_file(local_src, size);
  long maxrss = 0;
  const auto child = spawn_transfer("upload", local_src, remote_dst, maxrss);
  if (child.at("bytes").get<std::uint64_t>() != size)
    throw Failure("upload reported " + child.at("bytes").dump() + " bytes of " + std::to_string(size));
  auto ws = open_workspace();
  const std::string got = remote_cksum(ws, remote_dst);
  if (got != sum) throw Failure("uploaded " + local_src + " (cksum " + sum + "), the server has " + got);
  return transfer_result("upload", size, child, maxrss, sum);
}

nlohmann::json download(std::uint64_t size, const std::string& remote_src, const std::string& local_dst) {
  auto ws = open_workspace();
  const std::string q = shell_quote(remote_src);
  workspace::CommandOptions o;
  o.timeout = std::chrono::minutes(10);
  const std::string sum =
      remote_cksum_of(ws.execute_command("mkdir -p \"$(dirname " + q + ")\" && head -c " + std::to_string(size) +
                                             " /dev/urandom > " + q + " && cksum " + q,
                                         o),
                      "creating " + remote_src + " on the server");
  std::error_code ec;
  fs::remove(local_dst, ec);
  long maxrss = 0;
  const auto child = spawn_transfer("download", remote_src, local_dst, maxrss);
  if (child.at("bytes").get<std::uint64_t>() != size)
    throw Failure("download reported " + child.at("bytes").dump() + " bytes of " + std::to_string(size));
  const std::string got = file_cksum(local_dst);
  if (got != sum) throw Failure("downloaded " + remote_src + " (cksum " + sum + " on the server), got " + got);
  return transfer_result("download", size, child, maxrss, sum);
}

std::uint64_t size_argument(const std::string& text, std::uint64_t default_size) {
  if (text == "-") return default_size;
  char* end = nullptr;
  const auto v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v == 0) throw Failure("bad SIZE_BYTES '" + text + "'");
  return v;
}

constexpr const char* usage =
    "usage: workspace.benchmarks.remote [--transfer_mb=N] latency N | upload SIZE_BYTES|- LOCAL_SRC REMOTE_DST"
    " | download SIZE_BYTES|- REMOTE_SRC LOCAL_DST";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 4 && args[0] == "--transfer-child") return transfer_child(args[1], args[2], args[3]);
  std::uint64_t megabytes = 100;
  if (!args.empty() && args[0].rfind("--transfer_mb=", 0) == 0) {
    megabytes = std::strtoull(args[0].c_str() + 14, nullptr, 10);
    args.erase(args.begin());
  }
  try {
    nlohmann::json out;
    if (args.size() == 2 && args[0] == "latency") out = latency(std::atoi(args[1].c_str()));
    else if (args.size() == 4 && args[0] == "upload")
      out = upload(size_argument(args[1], megabytes * 1000 * 1000), args[2], args[3]);
    else if (args.size() == 4 && args[0] == "download")
      out = download(size_argument(args[1], megabytes * 1000 * 1000), args[2], args[3]);
    else {
      std::fprintf(stderr, "%s\n", usage);
      return 2;
    }
    std::cout << out.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "remote benchmark: %s\n", e.what());
    return 1;
  }
}
