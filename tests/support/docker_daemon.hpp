// Test support: the real Docker daemon for the DockerWorkspace tests. scripts/run-tests starts
// one (scripts/lib/dockerd.sh: Debian's dockerd 20.10, API 1.41, --bridge=none) and exports
// DOCKER_HOST; these helpers find it, check it answers, prepare the offline busybox image build
// context, and list containers by label. They talk to the daemon with plain POSIX sockets, not
// through the library under test.
//
//   class DockerTest : public ::testing::Test {
//    protected:
//     void SetUp() override { workspace_test::require_docker(); }  // fails when unreachable
//   };
//   TEST(Docker, Something) { WORKSPACE_REQUIRE_DOCKER(); ... }   // in a test body
#pragma once

#include "process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace workspace_test {

namespace fs = std::filesystem;

inline constexpr std::string_view default_docker_host = "unix:///var/run/docker.sock";

// DOCKER_HOST when set and not empty, else the default socket.
inline std::string docker_host() {
  const char* env = std::getenv("DOCKER_HOST");
  return (env != nullptr && *env != '\0') ? std::string(env) : std::string(default_docker_host);
}

// The socket path of docker_host(); empty when DOCKER_HOST is not a unix:// address.
inline fs::path docker_socket_path() {
  const std::string host = docker_host();
  constexpr std::string_view scheme = "unix://";
  if (host.compare(0, scheme.size(), scheme) != 0) return {};
  return fs::path(host.substr(scheme.size()));
}

struct DockerResponse {
  int status = 0;           // HTTP status code
  std::string headers;      // the raw header block (status line excluded)
  std::string body;         // de-chunked
};

namespace detail {

inline std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The value of header `name` (case-insensitive) in a raw header block; empty if absent.
inline std::string header_value(std::string_view headers, std::string_view name) {
  const std::string lower = lowercase(headers);
  const std::string key = "\r\n" + lowercase(name) + ":";
  const std::string block = "\r\n" + lower;
  const std::size_t at = block.find(key);
  if (at == std::string::npos) return {};
  std::size_t begin = at + key.size() - 2;  // offset into `headers`
  const std::size_t end = headers.find("\r\n", begin);
  std::string value(headers.substr(begin, end == std::string_view::npos ? headers.size() - begin
                                                                       : end - begin));
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  return value;
}

inline std::string dechunk(std::string_view body) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t eol = body.find("\r\n", pos);
    if (eol == std::string_view::npos) throw std::runtime_error("docker: truncated chunked body");
    const std::string size_line(body.substr(pos, eol - pos));
    const unsigned long size = std::stoul(size_line, nullptr, 16);
    pos = eol + 2;
    if (size == 0) return out;
    if (body.size() < pos + size) throw std::runtime_error("docker: truncated chunk");
    out.append(body.substr(pos, size));
    pos += size + 2;
  }
}

inline std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0x0F];
    }
  }
  return out;
}

// True when the ELF file at `path` has a PT_INTERP program header (is dynamically linked).
inline bool elf_is_dynamic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char ident[64] = {};
  if (!in.read(reinterpret_cast<char*>(ident), sizeof ident) ||
      std::memcmp(ident, "\x7f" "ELF", 4) != 0 || ident[4] != 2 /* ELFCLASS64 */ ||
      ident[5] != 1 /* little-endian */)
    throw std::runtime_error(path.string() + " is not a 64-bit little-endian ELF file");
  auto u16 = [&](std::size_t at) { return static_cast<std::uint16_t>(ident[at] | ident[at + 1] << 8); };
  std::uint64_t phoff = 0;
  for (int i = 7; i >= 0; --i) phoff = phoff << 8 | ident[0x20 + i];
  const std::uint16_t phentsize = u16(0x36);
  const std::uint16_t phnum = u16(0x38);
  for (std::uint16_t i = 0; i < phnum; ++i) {
    unsigned char type[4] = {};
    in.seekg(static_cast<std::streamoff>(phoff + std::uint64_t{i} * phentsize));
    if (!in.read(reinterpret_cast<char*>(type), sizeof type)) break;
    if (type[0] == 3 && type[1] == 0 && type[2] == 0 && type[3] == 0) return true;  // PT_INTERP
  }
  return false;
}

}  // namespace detail

// One request over the daemon's Unix socket (HTTP/1.0, so the daemon closes the connection after
// the response and does not chunk it). Throws std::runtime_error when it cannot connect or the
// exchange fails or takes longer than `timeout_seconds`.
inline DockerResponse docker_request(const std::string& method, const std::string& target,
                                     int timeout_seconds = 10) {
  const fs::path socket_path = docker_socket_path();
  if (socket_path.empty())
    throw std::runtime_error("DOCKER_HOST=" + docker_host() + " is not a unix:// address");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("docker: socket");
  timeval tv{};
  tv.tv_sec = timeout_seconds;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const sockaddr_un addr = unix_address(socket_path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("docker: connect " + socket_path.string());

  const std::string request = method + " " + target +
                              " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: workspace-tests\r\n\r\n";
  std::string_view rest = request;
  while (!rest.empty()) {
    const ssize_t n = ::send(fd.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("docker: send to " + socket_path.string());
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("docker: recv from " + socket_path.string());
    if (n == 0) break;
    raw.append(buf, static_cast<std::size_t>(n));
  }

  const std::size_t head_end = raw.find("\r\n\r\n");
  const std::size_t line_end = raw.find("\r\n");
  if (head_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0)
    throw std::runtime_error("docker: malformed response to " + method + " " + target + ": " +
                             raw.substr(0, 200));
  DockerResponse response;
  const std::size_t space = raw.find(' ');
  response.status = std::atoi(raw.c_str() + (space == std::string::npos ? 0 : space + 1));
  response.headers = raw.substr(line_end + 2, head_end + 2 - (line_end + 2));
  response.body = raw.substr(head_end + 4);
  if (detail::lowercase(detail::header_value(response.headers, "Transfer-Encoding")) == "chunked")
    response.body = detail::dechunk(response.body);
  return response;
}

// Why the daemon cannot be used, or empty when GET /_ping answers 200 OK.
inline std::string docker_unreachable_reason() {
  try {
    const DockerResponse r = docker_request("GET", "/_ping", 5);
    if (r.status == 200 && r.body == "OK") return {};
    return "GET /_ping on " + docker_host() + " answered " + std::to_string(r.status) + ": " +
           r.body.substr(0, 200);
  } catch (const std::exception& e) {
    return std::string("no Docker daemon answers on ") + docker_host() + " (" + e.what() + ")";
  }
}

// True when the daemon at docker_host() answers GET /_ping with 200 OK.
inline bool docker_reachable() { return docker_unreachable_reason().empty(); }

// Whether the engine is Podman's Docker-compatible service (its /_ping names its own API).
inline bool engine_is_podman() {
  return !detail::header_value(docker_request("GET", "/_ping", 5).headers, "Libpod-Api-Version").empty();
}

// The path prefix for versioned API calls ("/v1.41"), from the daemon's Api-Version header;
// empty (unversioned paths) if the header is missing.
inline std::string docker_api_prefix() {
  const DockerResponse r = docker_request("GET", "/_ping", 5);
  const std::string version = detail::header_value(r.headers, "Api-Version");
  return version.empty() ? std::string() : "/v" + version;
}

// For fixtures: call from SetUp() (gtest then does not run the test body) or use
// WORKSPACE_REQUIRE_DOCKER() at the top of a TEST body. An unreachable daemon fails the test:
// the daemon runs on this machine (scripts/run-tests starts one), so a test that cannot reach it
// has not checked anything.
inline void require_docker() {
  const std::string why = docker_unreachable_reason();
  if (why.empty()) return;
  GTEST_FAIL() << "the Docker daemon is unreachable: " << why
               << ". scripts/run-tests starts one (scripts/lib/dockerd.sh) and exports "
                  "DOCKER_HOST; see its log in /var/log/workspace-test-dockerd.log";
}

// The same in a TEST body: returns from the test when the daemon is unreachable.
#define WORKSPACE_REQUIRE_DOCKER()                                     \
  do {                                                                 \
    ::workspace_test::require_docker();                               \
    if (::testing::Test::HasFatalFailure()) return;                   \
  } while (false)

// The Dockerfile of the test image: busybox-static FROM scratch, its applets installed as
// symlinks in /bin, a world-writable /tmp, /root, a home for an unprivileged user (uid 1000)
// and an /etc/passwd naming root, user and nobody. Built offline: nothing is pulled, and the
// RUN steps need no network (build with networkmode=none; checked with dockerd 20.10).
// No LABEL: containers inherit image labels, which would confuse containers_with_label().
inline constexpr std::string_view busybox_dockerfile =
    "FROM scratch\n"
    "COPY busybox /bin/busybox\n"
    "RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
    "RUN mkdir -p /tmp /root /home/user /etc && chmod 1777 /tmp && chown 1000:1000 /home/user && "
    "printf 'root:x:0:0:root:/root:/bin/sh\\nuser:x:1000:1000:user:/home/user:/bin/sh\\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\\n' > /etc/passwd && "
    "printf 'root:x:0:\\nuser:x:1000:\\nnogroup:x:65534:\\n' > /etc/group\n"
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";

// Prepares an image build context in `dir` (created if missing): a copy of /bin/busybox (which
// must be the static one, Debian package busybox-static) and the Dockerfile above. Returns the
// Dockerfile text. Throws std::runtime_error if busybox is missing or dynamically linked.
inline std::string busybox_context(const fs::path& dir) {
  const fs::path busybox = "/bin/busybox";
  if (!fs::exists(busybox))
    throw std::runtime_error("/bin/busybox is missing: install the Debian package busybox-static");
  if (detail::elf_is_dynamic(busybox))
    throw std::runtime_error(
        "/bin/busybox is dynamically linked and cannot run in a FROM scratch image: install the "
        "Debian package busybox-static");
  fs::create_directories(dir);
  fs::copy_file(busybox, dir / "busybox", fs::copy_options::overwrite_existing);
  fs::permissions(dir / "busybox", fs::perms(0755), fs::perm_options::replace);
  write_file(dir / "Dockerfile", busybox_dockerfile);
  return std::string(busybox_dockerfile);
}

// The ids of all containers (running or not) carrying `label`, either "key" or "key=value":
// GET /containers/json?all=1&filters={"label":[label]}. Throws if the daemon cannot be asked.
inline std::vector<std::string> containers_with_label(std::string label) {
  const nlohmann::json filters = {{"label", nlohmann::json::array({std::move(label)})}};
  const std::string target = docker_api_prefix() + "/containers/json?all=1&filters=" +
                             detail::url_encode(filters.dump());
  const DockerResponse r = docker_request("GET", target);
  if (r.status != 200)
    throw std::runtime_error("GET " + target + " answered " + std::to_string(r.status) + ": " +
                             r.body.substr(0, 300));
  std::vector<std::string> ids;
  for (const auto& container : nlohmann::json::parse(r.body))
    ids.push_back(container.at("Id").get<std::string>());
  return ids;
}

}  // namespace workspace_test
