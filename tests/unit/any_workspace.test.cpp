// AnyWorkspace and WorkspaceConfig: choosing the workspace type at run time. The remote types
// are reached in tests/cli (through workspace-cli); here the configuration they get, and the
// whole contract suite on an AnyWorkspace holding a LocalWorkspace.
#include <workspace/testing/contract.hpp>
#include <workspace/testing/through_async.hpp>

#include <workspace/any_workspace.hpp>
#include <workspace/testing/fake_workspace.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <unistd.h>

namespace fs = std::filesystem;
using workspace::AnyWorkspace;
using workspace::WorkspaceConfig;
using workspace::WorkspaceMode;

static_assert(workspace::Workspace<AnyWorkspace>);
static_assert(workspace::Workspace<workspace::BasicAnyWorkspace<workspace::LocalWorkspace>>);

namespace workspace::testing {

template <>
struct ContractTraits<AnyWorkspace> {
  static AnyWorkspace make() {
    static std::atomic<int> counter{0};
    const auto dir = contract::process_scratch("workspace-any") / std::to_string(counter.fetch_add(1));
    fs::remove_all(dir);
    WorkspaceConfig config;
    config.working_dir = dir.string();
    return AnyWorkspace(config);
  }
  static constexpr bool runs_shell = true;
  static constexpr std::chrono::milliseconds timeout_grace{1000};
};

INSTANTIATE_TYPED_TEST_SUITE_P(Any, WorkspaceContract, ::testing::Types<AnyWorkspace>);
// The same suite through the asynchronous API.
INSTANTIATE_TYPED_TEST_SUITE_P(AnyAsync, WorkspaceContract, ::testing::Types<workspace::testing::ThroughAsync<AnyWorkspace>>);

}  // namespace workspace::testing

namespace {

// An environment of our own making, for from_env.
WorkspaceConfig::Lookup environment(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const char* name) -> std::optional<std::string> {
    auto it = variables.find(name);
    if (it == variables.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

void expect_invalid_argument_naming(const std::function<void()>& f, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const workspace::Error& e) {
    EXPECT_EQ(e.code(), workspace::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(WorkspaceMode, SpellingsRoundTrip) {
  for (auto mode : {WorkspaceMode::local, WorkspaceMode::docker, WorkspaceMode::remote, WorkspaceMode::api_remote,
                    WorkspaceMode::daytona})
    EXPECT_EQ(workspace::parse_workspace_mode(workspace::to_string(mode)), mode);
  EXPECT_EQ(workspace::parse_workspace_mode("Docker"), std::nullopt);
  EXPECT_EQ(workspace::parse_workspace_mode(""), std::nullopt);
}

TEST(WorkspaceConfig, EmptyEnvironmentIsLocal) {
  const auto c = WorkspaceConfig::from_env(environment({}));
  EXPECT_EQ(c.mode, WorkspaceMode::local);
  EXPECT_TRUE(c.working_dir.empty());
  EXPECT_FALSE(c.keep);
  EXPECT_EQ(c.local_working_dir(), fs::current_path());
}

TEST(WorkspaceConfig, EachVariableFillsItsField) {
  const auto c = WorkspaceConfig::from_env(environment({{"WORKSPACE_MODE", "docker"},
                                                        {"WORKSPACE_WORKING_DIR", "/work"},
                                                        {"WORKSPACE_IMAGE", "debian:12"},
                                                        {"WORKSPACE_SNAPSHOT", "snap"},
                                                        {"WORKSPACE_ATTACH", "abc123"},
                                                        {"WORKSPACE_HOST", "unix:///run/d.sock"},
                                                        {"WORKSPACE_API_KEY", "k"},
                                                        {"WORKSPACE_NETWORK", "host"},
                                                        {"WORKSPACE_KEEP", "yes"}}));
  EXPECT_EQ(c.mode, WorkspaceMode::docker);
  EXPECT_EQ(c.working_dir, "/work");
  EXPECT_EQ(c.image, "debian:12");
  EXPECT_EQ(c.snapshot, "snap");
  EXPECT_EQ(c.attach_to, "abc123");
  EXPECT_EQ(c.host, "unix:///run/d.sock");
  EXPECT_EQ(c.api_key, "k");
  EXPECT_EQ(c.network, "host");
  EXPECT_TRUE(c.keep);
}

TEST(WorkspaceConfig, BadValuesNameTheVariable) {
  expect_invalid_argument_naming([] { WorkspaceConfig::from_env(environment({{"WORKSPACE_MODE", "cloud"}})); },
                                 "WORKSPACE_MODE");
  expect_invalid_argument_naming([] { WorkspaceConfig::from_env(environment({{"WORKSPACE_KEEP", "maybe"}})); },
                                 "WORKSPACE_KEEP");
  for (const char* no : {"0", "false", "no", "off"})
    EXPECT_FALSE(WorkspaceConfig::from_env(environment({{"WORKSPACE_KEEP", no}})).keep) << no;
}

TEST(WorkspaceConfig, BackEndsOwnVariablesAreFallbacks) {
  auto remote = WorkspaceConfig::from_env(environment({{"WORKSPACE_MODE", "remote"}, {"SESSION_API_KEY", "s"}}));
  EXPECT_EQ(remote.api_key, "s");
  remote = WorkspaceConfig::from_env(
      environment({{"WORKSPACE_MODE", "remote"}, {"SESSION_API_KEY", "s"}, {"WORKSPACE_API_KEY", "w"}}));
  EXPECT_EQ(remote.api_key, "w");

  const auto api = WorkspaceConfig::from_env(environment(
      {{"WORKSPACE_MODE", "api_remote"}, {"RUNTIME_API_URL", "http://rt"}, {"RUNTIME_API_KEY", "rk"}}));
  EXPECT_EQ(api.host, "http://rt");
  EXPECT_EQ(api.api_key, "rk");
  // Another mode does not pick up the runtime API's variables.
  const auto docker = WorkspaceConfig::from_env(
      environment({{"WORKSPACE_MODE", "docker"}, {"RUNTIME_API_URL", "http://rt"}, {"SESSION_API_KEY", "s"}}));
  EXPECT_TRUE(docker.host.empty());
  EXPECT_TRUE(docker.api_key.empty());
}

TEST(WorkspaceConfig, OptionsOfEachType) {
  WorkspaceConfig c;
  c.working_dir = "/w";
  c.image = "img";
  c.snapshot = "snap";
  c.attach_to = "id";
  c.host = "http://h";
  c.api_key = "key";
  c.network = "host";
  c.keep = true;
  c.environment = {{"A", "1"}};

  const auto docker = c.docker_options();
  EXPECT_EQ(docker.image, "img");
  EXPECT_EQ(docker.attach_to, "id");
  EXPECT_EQ(docker.working_dir, "/w");
  EXPECT_EQ(docker.network_mode, "host");
  EXPECT_EQ(docker.engine.host, "http://h");
  EXPECT_EQ(docker.on_close, workspace::OnClose::keep);
  EXPECT_EQ(docker.environment.at("A"), "1");

  const auto remote = c.remote_options();
  EXPECT_EQ(remote.host, "http://h");
  EXPECT_EQ(remote.session_api_key, "key");
  EXPECT_EQ(remote.working_dir, "/w");

  const auto api = c.api_remote_options();
  EXPECT_EQ(api.runtime_api_url, "http://h");
  EXPECT_EQ(api.runtime_api_key, "key");
  EXPECT_EQ(api.server_image, "img");
  EXPECT_EQ(api.attach_to, "id");
  EXPECT_EQ(api.working_dir, "/w");
  EXPECT_EQ(api.on_close, workspace::OnClose::keep);
  EXPECT_EQ(api.environment.at("A"), "1");

  const auto daytona = c.daytona_options();
  EXPECT_EQ(daytona.api_url, "http://h");
  EXPECT_EQ(daytona.api_key, "key");
  EXPECT_EQ(daytona.image, "img");
  EXPECT_EQ(daytona.snapshot, "snap");
  EXPECT_EQ(daytona.attach_to, "id");
  EXPECT_EQ(daytona.working_dir, "/w");
  EXPECT_EQ(daytona.on_close, workspace::OnClose::keep);
  EXPECT_EQ(daytona.environment.at("A"), "1");
}

TEST(WorkspaceConfig, DefaultsOfEachTypeStandWhenUnset) {
  const WorkspaceConfig c;
  EXPECT_EQ(c.docker_options().working_dir, workspace::DockerWorkspaceOptions{}.working_dir);
  EXPECT_EQ(c.docker_options().network_mode, "none");
  EXPECT_EQ(c.docker_options().on_close, workspace::OnClose::remove);
  EXPECT_EQ(c.api_remote_options().working_dir, workspace::APIRemoteWorkspaceOptions{}.working_dir);
  EXPECT_EQ(c.daytona_options().on_close, workspace::OnClose::remove);
  // The agent server's URL has no default.
  expect_invalid_argument_naming([&] { (void)c.remote_options(); }, "WORKSPACE_HOST");
}

TEST(WorkspaceConfig, CustomizeHasTheLastWord) {
  WorkspaceConfig c;
  c.image = "img";
  c.customize_docker = [](workspace::DockerWorkspaceOptions& o) {
    o.image = "other";
    o.pids_limit = 64;
  };
  c.customize_daytona = [](workspace::DaytonaWorkspaceOptions& o) { o.cpu = 2; };
  c.customize_api_remote = [](workspace::APIRemoteWorkspaceOptions& o) { o.resource_factor = 4; };
  c.host = "http://h";
  c.customize_remote = [](workspace::RemoteWorkspaceOptions& o) { o.commands.use_websocket = false; };
  EXPECT_EQ(c.docker_options().image, "other");
  EXPECT_EQ(c.docker_options().pids_limit, 64);
  EXPECT_EQ(c.daytona_options().cpu, 2);
  EXPECT_EQ(c.api_remote_options().resource_factor, 4);
  EXPECT_FALSE(c.remote_options().commands.use_websocket);
}

class AnyLocal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("workspace-any-unit-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  AnyWorkspace make() {
    return AnyWorkspace::from_env(environment({{"WORKSPACE_MODE", "local"}, {"WORKSPACE_WORKING_DIR", dir_.string()}}));
  }
  fs::path dir_;
};

TEST_F(AnyLocal, FromEnvMakesALocalWorkspace) {
  auto ws = make();
  EXPECT_EQ(ws.mode(), WorkspaceMode::local);
  EXPECT_TRUE(ws.holds<workspace::LocalWorkspace>());
  ASSERT_NE(ws.get_if<workspace::LocalWorkspace>(), nullptr);
  EXPECT_EQ(ws.get_if<workspace::DockerWorkspace>(), nullptr);
  EXPECT_EQ(ws.working_dir(), dir_.string());
  EXPECT_TRUE(fs::is_directory(dir_));

  const auto r = ws.execute_command("printf out; printf err >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.std_out, "out");
  EXPECT_EQ(r.std_err, "err");
  EXPECT_TRUE(ws.file_write("a/b.txt", "bytes").success);
  EXPECT_EQ(ws.file_read("a/b.txt").content, "bytes");
  EXPECT_EQ(ws.visit([](auto& w) { return std::string(w.working_dir()); }), dir_.string());

  // Moving keeps the workspace.
  AnyWorkspace moved = std::move(ws);
  EXPECT_EQ(moved.execute_command("cat a/b.txt").std_out, "bytes");
}

TEST_F(AnyLocal, CapabilitiesItLacksAreUnsupported) {
  auto ws = make();
  EXPECT_FALSE(ws.can_pause());
  EXPECT_FALSE(ws.can_git());
  EXPECT_FALSE(ws.can_attach());
  const auto expect_unsupported = [](const std::function<void()>& f, const std::string& what) {
    try {
      f();
      ADD_FAILURE() << what << ": no error";
    } catch (const workspace::Error& e) {
      EXPECT_EQ(e.code(), workspace::errc::unsupported) << what;
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("local"), std::string::npos) << e.what();
    }
  };
  expect_unsupported([&] { ws.pause(); }, "pause");
  expect_unsupported([&] { ws.resume(); }, "resume");
  expect_unsupported([&] { (void)ws.git_changes("."); }, "git_changes");
  expect_unsupported([&] { (void)ws.git_diff("x"); }, "git_diff");
  expect_unsupported([&] { (void)ws.id(); }, "id");
  expect_unsupported([&] { ws.detach(); }, "detach");
}

TEST(BasicAnyWorkspace, NarrowerSetsAndInPlaceConstruction) {
  using Small = workspace::BasicAnyWorkspace<workspace::LocalWorkspace, workspace::testing::FakeWorkspace>;
  Small fake(std::in_place_type<workspace::testing::FakeWorkspace>, "/project");
  ASSERT_TRUE(fake.holds<workspace::testing::FakeWorkspace>());
  fake.get_if<workspace::testing::FakeWorkspace>()->on(
      "make", workspace::testing::FakeResponse{.std_out = "built\n", .exit_code = 0});
  EXPECT_EQ(fake.execute_command("make").std_out, "built\n");
  EXPECT_EQ(fake.working_dir(), "/project");

  // A mode whose type is not in the set is refused before anything is made.
  WorkspaceConfig docker;
  docker.mode = WorkspaceMode::docker;
  docker.image = "never-pulled";
  try {
    workspace::BasicAnyWorkspace<workspace::LocalWorkspace> only_local(docker);
    ADD_FAILURE() << "no error";
  } catch (const workspace::Error& e) {
    EXPECT_EQ(e.code(), workspace::errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("docker"), std::string::npos) << e.what();
  }
}

}  // namespace
