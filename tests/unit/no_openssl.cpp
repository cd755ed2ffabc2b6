// A program on DockerWorkspace over a Unix socket that parses no OpenSSL header and links no
// OpenSSL: tests/CMakeLists.txt compiles it with every <openssl/...> header replaced by one that
// fails the build, and links it with workspace::headers only. Run, it meets a daemon that is not
// there (a connection Error) and a DOCKER_HOST over https, which without a TLS header in the
// program is an Error saying how to get TLS.
#include <workspace/docker.hpp>

#include <cstdio>
#include <string>

int main() {
  using workspace::DockerWorkspace;
  try {
    DockerWorkspace ws({.image = "busybox", .engine = {.host = "unix:///nonexistent/workspace-docker.sock"}});
    std::puts("a workspace on a socket that does not exist");
    return 1;
  } catch (const workspace::Error& e) {
    if (e.code() != workspace::errc::connection_failed) {
      std::printf("unexpected: %s\n", e.what());
      return 1;
    }
  }
  try {
    DockerWorkspace ws({.image = "busybox", .engine = {.host = "https://127.0.0.1:1"}});
    std::puts("https without TLS");
    return 1;
  } catch (const workspace::Error& e) {
    if (e.code() != workspace::errc::unsupported || std::string(e.what()).find("tls.hpp") == std::string::npos) {
      std::printf("unexpected: %s\n", e.what());
      return 1;
    }
  }
  std::puts("no OpenSSL needed");
  return 0;
}
