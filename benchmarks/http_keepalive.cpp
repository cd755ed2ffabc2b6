// Keep-alive GET requests per second against a local nginx: http::Client<http::Tcp> against
// libcurl's easy interface (one CURL handle reused, so it keeps its connection), for a small
// (100-byte) and a 64 KiB static file. Same server, same requests, same process; with
// --benchmark_enable_random_interleaving the repetitions of the four benchmarks alternate.
//
// Every response is checked inside the timed loop (status 200 and the body's exact size), so a
// broken exchange cannot pass for a fast one. Our client returns a fresh Response (and body
// string) per request; libcurl appends into one std::string reused across requests (cleared, its
// capacity kept), the cheapest way to use it, so the baseline is not flattered. Proxies are off on
// both sides; libcurl has TCP_NODELAY on (its default) and so does the client; every other libcurl
// option is its default.
//
// The benchmark starts its own nginx (one process, daemon off, access_log off, keepalive_requests
// 1000000) on 127.0.0.1 and a free port, in a mkdtemp folder it removes at exit.
//
// Typical use (scripts/run-benchmarks does this and prints the workspace/libcurl ratio per size):
//   workspace.benchmarks.http_keepalive --benchmark_repetitions=20 --benchmark_min_time=0.2
//       --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true
//
// Profiling mode (no Google Benchmark; a fixed number of requests, e.g. under callgrind):
//   workspace.benchmarks.http_keepalive --profile=workspace|libcurl --requests=N [--size=100|65536]
#include <workspace/http.hpp>

#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace http = workspace::http;

constexpr std::array<std::size_t, 2> sizes{100, 64 * 1024};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "http_keepalive: %s\n", what.c_str());
  std::exit(2);
}

std::string file_tail(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

// A port that was free a moment ago (nginx may lose a race for it: the caller retries).
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: " + std::generic_category().message(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    die("bind 127.0.0.1:0: " + std::generic_category().message(errno));
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// nginx in a folder of its own, serving /bytes/<size> files; stopped and reaped when destroyed.
class Nginx {
 public:
  Nginx() {
    std::string dir_template = (fs::temp_directory_path() / "workspace-bench-nginx-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) die("mkdtemp: " + std::generic_category().message(errno));
    dir_ = dir_template;
    fs::create_directories(dir_ / "www" / "bytes");
    fs::create_directories(dir_ / "temp");
    for (std::size_t size : sizes) {
      std::string content(size, '\0');
      for (std::size_t i = 0; i < size; ++i) content[i] = static_cast<char>('a' + i % 26);
      std::ofstream(dir_ / "www" / "bytes" / std::to_string(size), std::ios::binary) << content;
    }
    for (int attempt = 1;; ++attempt) {
      port_ = free_port();
      write_config();
      if (start()) break;
      const std::string log = file_tail(dir_ / "error.log");
      if (log.find("Address already in use") == std::string::npos || attempt == 5)
        die("nginx did not start:\n" + log);
    }
  }

  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  ~Nginx() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void write_config() const {
    const std::string d = dir_.string();
    std::string conf;
    // As root, nginx resolves the `user` directive even with no workers (default nobody/nogroup).
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwuid(0);
      const group* gr = ::getgrgid(0);
      if (pw != nullptr && gr != nullptr) conf += "user " + std::string(pw->pw_name) + " " + gr->gr_name + ";\n";
    }
    conf += "daemon off;\nmaster_process off;\nworker_processes 1;\n";
    conf += "pid " + d + "/nginx.pid;\nlock_file " + d + "/nginx.lock;\n";
    conf += "error_log " + d + "/error.log warn;\n";
    conf += "events { worker_connections 64; }\n";
    conf += "http {\n  access_log off;\n  server_tokens off;\n  default_type application/octet-stream;\n";
    conf += "  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n";
    for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
      conf += "  " + std::string(t) + "_temp_path " + d + "/temp/" + t + ";\n";
    conf += "  server {\n    listen 127.0.0.1:" + std::to_string(port_) + ";\n    root " + d + "/www;\n  }\n}\n";
    std::ofstream(dir_ / "nginx.conf") << conf;
  }

  bool start() {
    const std::string prefix = dir_.string() + "/";
    const std::string conf = (dir_ / "nginx.conf").string();
    const std::string log = (dir_ / "error.log").string();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) die("fork: " + std::generic_category().message(errno));
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the benchmark
      if (::getppid() != parent) ::_exit(127);
      const int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
      }
      ::execlp("nginx", "nginx", "-p", prefix.c_str(), "-c", conf.c_str(), "-e", log.c_str(),
               static_cast<char*>(nullptr));
      std::perror("exec nginx");
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (accepts(port_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    die("nginx did not accept connections within 20 s:\n" + file_tail(dir_ / "error.log"));
  }

  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  fs::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

Nginx* server = nullptr;  // set by main() before any benchmark runs

std::string target_for(std::size_t size) { return "/bytes/" + std::to_string(size); }

http::ClientOptions client_options() {
  http::ClientOptions options;
  options.proxy = http::ProxySettings::none();
  return options;
}

// Our client: one GET, checked. Returns an error text, empty when the response is right.
std::string workspace_get(http::Client<http::Tcp>& client, const std::string& target, std::size_t size) {
  http::Response response = client.get(target);
  if (response.status != 200) return "workspace client: status " + std::to_string(response.status);
  if (response.body.size() != size)
    return "workspace client: body of " + std::to_string(response.body.size()) + " bytes, expected " +
           std::to_string(size);
  benchmark::DoNotOptimize(response.body.data());
  return {};
}

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// One easy handle, kept for the whole benchmark so libcurl keeps its connection.
class Curl {
 public:
  explicit Curl(const std::string& url) : handle_(curl_easy_init()) {
    if (handle_ == nullptr) die("curl_easy_init failed");
    curl_easy_setopt(handle_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle_, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(handle_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(handle_, CURLOPT_WRITEFUNCTION, &append_body);
    curl_easy_setopt(handle_, CURLOPT_WRITEDATA, &body_);
  }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;
  ~Curl() { curl_easy_cleanup(handle_); }

  // One GET, checked. Returns an error text, empty when the response is right.
  std::string get(std::size_t size) {
    body_.clear();  // keeps its capacity: no allocation after the first request
    std::string& body = body_;
    const CURLcode rc = curl_easy_perform(handle_);
    if (rc != CURLE_OK) return std::string("libcurl: ") + curl_easy_strerror(rc);
    long status = 0;
    long connects = 0;
    curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(handle_, CURLINFO_NUM_CONNECTS, &connects);
    new_connections_ += connects;
    if (status != 200) return "libcurl: status " + std::to_string(status);
    if (body.size() != size)
      return "libcurl: body of " + std::to_string(body.size()) + " bytes, expected " + std::to_string(size);
    benchmark::DoNotOptimize(body.data());
    return {};
  }

  long new_connections() const noexcept { return new_connections_; }

 private:
  CURL* handle_;
  std::string body_{};
  long new_connections_ = 0;
};

void workspace_client(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::string target = target_for(size);
  http::Client<http::Tcp> client(server->base_url(), client_options());
  if (auto error = workspace_get(client, target, size); !error.empty()) {  // connects
    state.SkipWithError(error.c_str());
    return;
  }
  for (auto _ : state) {
    if (auto error = workspace_get(client, target, size); !error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
  }
  // The one connection went back to the pool after every request.
  if (client.idle_connections() != 1) state.SkipWithError("the client did not keep its connection alive");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void libcurl_easy(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  Curl curl(server->base_url() + target_for(size));
  if (auto error = curl.get(size); !error.empty()) {  // connects
    state.SkipWithError(error.c_str());
    return;
  }
  const long connected = curl.new_connections();
  for (auto _ : state) {
    if (auto error = curl.get(size); !error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
  }
  if (curl.new_connections() != connected) state.SkipWithError("libcurl did not keep its connection alive");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

BENCHMARK(workspace_client)->Arg(sizes[0])->Arg(sizes[1])->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(libcurl_easy)->Arg(sizes[0])->Arg(sizes[1])->UseRealTime()->Unit(benchmark::kMicrosecond);

// --profile=workspace|libcurl --requests=N [--size=S]: N checked requests on one connection and
// nothing else, for callgrind and friends. Returns the exit status.
int profile(std::string_view which, long requests, std::size_t size) {
  const std::string target = target_for(size);
  const auto start = std::chrono::steady_clock::now();
  if (which == "workspace") {
    http::Client<http::Tcp> client(server->base_url(), client_options());
    for (long i = 0; i < requests; ++i)
      if (auto error = workspace_get(client, target, size); !error.empty()) die(error);
  } else if (which == "libcurl") {
    Curl curl(server->base_url() + target);
    for (long i = 0; i < requests; ++i)
      if (auto error = curl.get(size); !error.empty()) die(error);
  } else {
    die("--profile takes workspace or libcurl");
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%s: %ld GETs of %zu bytes in %.3f s: %.0f requests/s\n", std::string(which).c_str(),
              requests, size, took.count(), static_cast<double>(requests) / took.count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> profile_client;
  long requests = 10000;
  std::size_t size = sizes[0];
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--profile=")) {
      profile_client = std::string(arg.substr(10));
    } else if (arg.starts_with("--requests=")) {
      requests = std::strtol(argv[i] + 11, nullptr, 10);
    } else if (arg.starts_with("--size=")) {
      size = static_cast<std::size_t>(std::strtoul(argv[i] + 7, nullptr, 10));
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (size != sizes[0] && size != sizes[1]) die("--size must be 100 or 65536");

  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 0;
  {
    Nginx nginx;
    server = &nginx;
    if (profile_client) {
      rc = profile(*profile_client, requests, size);
    } else {
      int count = static_cast<int>(rest.size());
      benchmark::Initialize(&count, rest.data());
      if (benchmark::ReportUnrecognizedArguments(count, rest.data())) {
        rc = 1;
      } else {
        benchmark::RunSpecifiedBenchmarks();
      }
      benchmark::Shutdown();
    }
    server = nullptr;
  }
  curl_global_cleanup();
  return rc;
}
