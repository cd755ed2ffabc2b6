// What the Docker tests share: the offline busybox test image (and a non-root variant), the
// options every test container gets (a label the tests look for), and the contract traits.
#pragma once

#include <workspace/docker.hpp>
#include <workspace/testing/contract.hpp>

#include "../support/docker_daemon.hpp"
#include "../support/process.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

using namespace workspace;
namespace ts = workspace_test;

namespace {  // NOLINT: one test executable per including file

// For code that cannot skip (the contract suite's make(), the image build): an unreachable
// daemon is an error.
void require_docker_or_throw() {
  if (!ts::docker_reachable())
    throw std::runtime_error("the Docker daemon at " + ts::docker_host() + " cannot be reached");
}

constexpr const char* test_image = "workspace-test-busybox:latest";
constexpr const char* test_label = "org.workspace-cpp.test";

// Builds the test image once per process (a cached build is quick).
const std::string& image() {
  static const std::string built = [] {
    require_docker_or_throw();
    ts::TempDir context;
    ts::busybox_context(context.path());
    docker::Engine engine;
    engine.build_folder(context.path().string(), test_image);
    return std::string(test_image);
  }();
  return built;
}

DockerWorkspaceOptions options() {
  DockerWorkspaceOptions o;
  o.image = image();
  o.labels = {{test_label, "true"}};
  o.pull_if_missing = false;
  return o;
}

// The busybox image with one more layer: a user `probe` (uid 1001) with its home, as a Debian
// image would have one. Built offline from the image above; Debian's busybox-static has no
// adduser, so the layer writes what adduser would.
constexpr const char* probe_image = "workspace-test-busybox-probe:latest";
constexpr int probe_uid = 1001;

const std::string& non_root_image() {
  static const std::string built = [] {
    docker::Engine engine;
    engine.build_dockerfile(std::string("FROM ") + image() + "\nRUN echo 'probe:x:1001:1001:probe:/home/probe:/bin/sh' >> /etc/passwd && "
                            "echo 'probe:x:1001:' >> /etc/group && mkdir -p /home/probe && "
                            "chown 1001:1001 /home/probe\n", probe_image);
    return std::string(probe_image);
  }();
  return built;
}

// Commands run as `probe`, given by name, in a working_dir the image does not have.
DockerWorkspaceOptions non_root_options() {
  DockerWorkspaceOptions o = options();
  o.image = non_root_image();
  o.working_dir = "/home/probe/work";
  o.user = "probe";
  return o;
}

class DockerTest : public ::testing::Test {
 protected:
  void SetUp() override { ts::require_docker(); }
};

}  // namespace

template <>
struct workspace::testing::ContractTraits<DockerWorkspace> {
  static DockerWorkspace make() {
    require_docker_or_throw();
    return DockerWorkspace(options());
  }
  static DockerWorkspace make_non_root() { return DockerWorkspace(non_root_options()); }
  static constexpr bool runs_shell = true;
  static constexpr std::chrono::milliseconds timeout_grace{1500};
};

