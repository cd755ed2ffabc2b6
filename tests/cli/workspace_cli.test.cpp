// workspace-cli (examples/workspace_cli.cpp) as a user runs it: on every workspace type the suite
// reaches (this machine, the test Docker daemon, the real agent server, the runtime API and
// Daytona test servers), and its failures: each a single line on stderr and a non-zero status.
// The CLI runs under a LocalWorkspace, which keeps its stdout, stderr and status apart.
#include <workspace/core/detail/owner.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/daytona.hpp>
#include <workspace/docker.hpp>
#include <workspace/local.hpp>

#include "../support/agent_server.hpp"
#include "../support/daytona_server.hpp"
#include "../support/docker_daemon.hpp"
#include "../support/process.hpp"
#include "../support/runtime_api.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace ts = workspace_test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* cli_path = WORKSPACE_CLI;
constexpr const char* test_image = "workspace-test-busybox:latest";

struct CliRun {
  int status = -1;
  std::string out, err;
};

// Runs workspace-cli with `args` (and `env` added to this process's environment).
CliRun cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
        std::chrono::milliseconds timeout = 240s) {
  static workspace::LocalWorkspace here(fs::temp_directory_path());
  std::string command = workspace::shell::shell_quote(cli_path);
  for (const auto& arg : args) command += " " + workspace::shell::shell_quote(arg);
  workspace::CommandOptions options;
  options.env = env;
  options.timeout = timeout;
  const auto r = here.execute_command(command, options);
  EXPECT_FALSE(r.timeout_occurred) << command;
  return {r.exit_code, r.std_out, r.std_err};
}

// A failure of the CLI itself: one line on stderr, naming the program, and status 125.
void expect_one_line_error(const CliRun& r, const std::string& needle) {
  EXPECT_EQ(r.status, 125) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("workspace-cli: ", 0), 0u) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

std::string random_bytes(std::size_t size) {
  std::mt19937_64 random(size);
  std::string bytes(size, '\0');
  for (auto& c : bytes) c = static_cast<char>(random() & 0xff);
  return bytes;
}

// The id the CLI printed for what it kept ("workspace-cli: kept <mode> <id>").
std::string kept_id(const CliRun& r) {
  const std::string marker = "workspace-cli: kept ";
  const auto at = r.err.rfind(marker);
  if (at == std::string::npos) return {};
  const auto id_at = r.err.find(' ', at + marker.size()) + 1;
  return r.err.substr(id_at, r.err.find('\n', id_at) - id_at);
}

// What every reachable workspace type must do through the CLI: a command's output and status
// pass through, and a binary file survives upload and download.
// Each call of the CLI makes a fresh container, runtime or sandbox; with `remove` the calls
// share one instead: the first keeps it (--keep), the others attach to it (--attach), and
// `remove` removes it at the end.
void exercise(const std::vector<std::string>& workspace_args, const std::map<std::string, std::string>& env,
              const std::function<void(const std::string& id)>& remove = {}) {
  std::string id;
  const auto with = [&](std::vector<std::string> rest, bool keep = true) {
    std::vector<std::string> args = workspace_args;
    if (remove && !id.empty()) args.insert(args.end(), {"--attach", id});
    if (remove && keep) args.emplace_back("--keep");
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
  };
  const CliRun run = cli(with({"run", "printf out; printf err >&2; exit 7"}), env);
  EXPECT_EQ(run.status, 7) << run.err;
  EXPECT_EQ(run.out, "out");
  if (remove) {
    id = kept_id(run);
    ASSERT_FALSE(id.empty()) << run.err;
    EXPECT_EQ(run.err.substr(0, 3), "err") << run.err;
  } else {
    EXPECT_EQ(run.err, "err");
  }

  ts::TempDir local;
  const std::string content = random_bytes(300 * 1024) + std::string("\0\r\n\xff", 4);
  ts::write_file(local.path() / "up.bin", content);
  const CliRun up = cli(with({"upload", (local.path() / "up.bin").string(), "cli/in/data.bin"}), env);
  EXPECT_EQ(up.status, 0) << up.err;
  const CliRun size = cli(with({"run", "wc -c < cli/in/data.bin | tr -d ' '"}), env);
  EXPECT_EQ(size.out, std::to_string(content.size()) + "\n") << size.err;
  const CliRun down = cli(with({"download", "cli/in/data.bin", (local.path() / "down.bin").string()}, false), env);
  EXPECT_EQ(down.status, 0) << down.err;
  EXPECT_EQ(ts::read_file(local.path() / "down.bin"), content);
  if (remove) remove(id);
}

// Whether a process whose command line contains `needle` runs on this machine.
bool process_running(const std::string& needle) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos && cmdline.find("workspace-cli") == std::string::npos) return true;
  }
  return false;
}

template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

std::string owner_label(pid_t pid) {
  return std::string(workspace::detail::owner_pid_label) + "=" + std::to_string(pid);
}

// --- local

TEST(CliLocal, CommandOutputAndStatusPassThrough) {
  ts::TempDir dir;
  exercise({"--working-dir", dir.path().string()}, {});
}

TEST(CliLocal, WordsJoinAndRunOptionsApply) {
  ts::TempDir dir;
  fs::create_directories(dir.path() / "sub");
  const CliRun r = cli({"--working-dir", dir.path().string(), "run", "--cwd", "sub", "--env", "GREETING=hello", "--",
                     "printf", "'%s %s'", "\"$GREETING\"", "\"$(basename \"$PWD\")\""});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "hello sub");
}

TEST(CliLocal, OutputIsByteExact) {
  const CliRun r = cli({"run", "printf 'a\\000b\\377'; printf '\\001' >&2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, std::string("a\0b\xff", 4));
  EXPECT_EQ(r.err, std::string("\x01", 1));
}

TEST(CliLocal, TimeoutExits124AndKillsTheCommand) {
  const auto start = std::chrono::steady_clock::now();
  const CliRun r = cli({"run", "--timeout", "0.3", "sleep 31.3 & sleep 31.3"});
  EXPECT_EQ(r.status, 124);
  EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(eventually([] { return !process_running("sleep 31.3"); }, 2s));
}

TEST(CliLocal, ProgressBarOnRequest) {
  ts::TempDir dir;
  ts::write_file(dir.path() / "big.bin", random_bytes(8 << 20));
  const CliRun r = cli({"--working-dir", (dir.path() / "ws").string(), "upload", "--progress",
                     (dir.path() / "big.bin").string(), "big.bin"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("100% ["), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("8.0 MiB / 8.0 MiB"), std::string::npos) << r.err;
  EXPECT_EQ(fs::file_size(dir.path() / "ws" / "big.bin"), 8u << 20);

  // Not a terminal and not asked for: no bar.
  const CliRun quiet = cli({"--working-dir", (dir.path() / "ws").string(), "download", "big.bin",
                         (dir.path() / "back.bin").string()});
  EXPECT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_TRUE(quiet.err.empty()) << quiet.err;
}

TEST(CliLocal, FailedTransferExits1WithOneLine) {
  ts::TempDir dir;
  const CliRun r = cli({"--working-dir", dir.path().string(), "download", "no-such-file", (dir.path() / "x").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("workspace-cli: file_download", 0), 0u) << r.err;
  // The path once: the error of the library says it, and the CLI adds nothing.
  std::size_t named = 0;
  for (auto at = r.err.find("no-such-file"); at != std::string::npos; at = r.err.find("no-such-file", at + 1)) ++named;
  EXPECT_EQ(named, 1u) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "x"));
}

TEST(CliLocal, NoTimeoutUnlessAskedFor) {
  // The library's 30 s default suits programs; a person at a terminal gets none, as with
  // docker exec.
  const CliRun r = cli({"run", "sleep 31; echo done"}, {}, 120s);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "done\n");
}

TEST(CliLocal, SigintKillsTheCommand) {
  ts::TempDir dir;
  ts::ChildProcess child({cli_path, "run", "sleep 32.4"}, dir.path() / "log");
  ASSERT_TRUE(eventually([] { return process_running("sleep 32.4"); }, 10s));
  ::kill(child.pid(), SIGINT);
  EXPECT_EQ(child.wait_for_exit(10s), 130) << ts::read_file(dir.path() / "log");
  EXPECT_TRUE(eventually([] { return !process_running("sleep 32.4"); }, 2s));
}

// --- the CLI's own failures

TEST(CliErrors, BadFlag) { expect_one_line_error(cli({"--frobnicate", "run", "true"}), "unknown option --frobnicate"); }

TEST(CliErrors, BadRunFlag) { expect_one_line_error(cli({"run", "--frobnicate", "true"}), "unknown option --frobnicate"); }

TEST(CliErrors, UnknownMode) { expect_one_line_error(cli({"--mode", "cloud", "run", "true"}), "unknown mode 'cloud'"); }

TEST(CliErrors, UnknownModeFromTheEnvironment) {
  expect_one_line_error(cli({"run", "true"}, {{"WORKSPACE_MODE", "cloud"}}), "WORKSPACE_MODE");
}

TEST(CliErrors, FlagThatDoesNotApplyToTheMode) {
  expect_one_line_error(cli({"--image", "debian:12", "run", "true"}), "--image does not apply to mode local");
}

TEST(CliErrors, RunWithoutCommand) { expect_one_line_error(cli({"run"}), "no command"); }

TEST(CliErrors, BadTimeout) { expect_one_line_error(cli({"run", "--timeout", "soon", "true"}), "--timeout"); }

TEST(CliErrors, TransferNeedsTwoPaths) { expect_one_line_error(cli({"upload", "one"}), "expected two paths"); }

TEST(CliErrors, MissingImage) {
  ts::require_docker();
  // The daemon tries to pull it from a registry on loopback port 1, where nothing listens.
  expect_one_line_error(cli({"--mode", "docker", "--image", "127.0.0.1:1/workspace-no-such-image:latest", "run", "true"}),
                        "127.0.0.1:1/workspace-no-such-image");
}

TEST(CliErrors, UnreachableAgentServer) {
  expect_one_line_error(cli({"--mode", "remote", "--host", "http://127.0.0.1:1", "run", "true"}),
                        "127.0.0.1:1");
}

TEST(CliErrors, UnreachableRuntimeApi) {
  expect_one_line_error(cli({"--mode", "api_remote", "--host", "http://127.0.0.1:1", "--image", "agent-server:test",
                             "run", "true"},
                            {{"WORKSPACE_API_KEY", "some-key"}}),
                        "127.0.0.1:1");
}

TEST(CliErrors, ModeFlagTakesTheBackEndsOwnVariables) {
  // --mode api_remote with the runtime API's own variables set, and no --host or key flag.
  expect_one_line_error(cli({"--mode", "api_remote", "--image", "agent-server:test", "run", "true"},
                            {{"RUNTIME_API_URL", "http://127.0.0.1:1"}, {"RUNTIME_API_KEY", "some-key"}}),
                        "127.0.0.1:1");
}

TEST(CliErrors, UnreachableDaytona) {
  expect_one_line_error(cli({"--mode", "daytona", "--host", "http://127.0.0.1:1/api", "run", "true"},
                            {{"WORKSPACE_API_KEY", "some-key"}}),
                        "127.0.0.1:1");
}

TEST(CliErrors, UnreachableDockerDaemon) {
  ts::TempDir dir;
  expect_one_line_error(cli({"--mode", "docker", "--host", "unix://" + (dir.path() / "none.sock").string(), "--image",
                             test_image, "run", "true"}),
                        "none.sock");
}

TEST(CliErrors, KeyNeverInTheMessage) {
  const CliRun r = cli({"--mode", "daytona", "--host", "http://127.0.0.1:1/api", "run", "true"},
                    {{"WORKSPACE_API_KEY", "secret-key-4711"}});
  expect_one_line_error(r, "127.0.0.1:1");
  EXPECT_EQ(r.err.find("secret-key-4711"), std::string::npos) << r.err;
}

// --- docker

// The test image, built offline from busybox as the Docker tests build it.
const std::string& docker_image() {
  static const std::string built = [] {
    ts::require_docker();
    ts::TempDir context;
    ts::busybox_context(context.path());
    workspace::docker::Engine().build_folder(context.path().string(), test_image);
    return std::string(test_image);
  }();
  return built;
}

TEST(CliDocker, CommandOutputAndStatusPassThrough) {
  // The kept container goes with `rm`.
  exercise({"--mode", "docker", "--image", docker_image()}, {}, [](const std::string& id) {
    const CliRun rm = cli({"--mode", "docker", "rm", id});
    EXPECT_EQ(rm.status, 0) << rm.err;
    EXPECT_THROW(workspace::docker::Engine().inspect(id), workspace::Error) << "rm left the container";
  });
}

TEST(CliDocker, ContainerRemovedAfterwards) {
  const std::string image = docker_image();
  ts::TempDir dir;
  ts::ChildProcess child({cli_path, "--mode", "docker", "--image", image, "run", "true"}, dir.path() / "log");
  EXPECT_EQ(child.wait_for_exit(60s), 0) << ts::read_file(dir.path() / "log");
  // Every container it makes carries its pid; none is left.
  EXPECT_TRUE(ts::containers_with_label(owner_label(child.pid())).empty());
}

TEST(CliDocker, SigintRemovesTheContainer) {
  const std::string image = docker_image();
  ts::TempDir dir;
  ts::ChildProcess child({cli_path, "--mode", "docker", "--image", image, "run", "sleep 30"}, dir.path() / "log");
  const std::string label = owner_label(child.pid());
  ASSERT_TRUE(eventually([&] { return !ts::containers_with_label(label).empty(); }, 30s))
      << ts::read_file(dir.path() / "log");
  std::this_thread::sleep_for(500ms);  // the command is running
  ::kill(child.pid(), SIGINT);
  EXPECT_EQ(child.wait_for_exit(30s), 130) << ts::read_file(dir.path() / "log");
  EXPECT_TRUE(ts::containers_with_label(label).empty());
}

TEST(CliDocker, KeepLeavesTheContainerAndPrintsItsId) {
  const CliRun r = cli({"--mode", "docker", "--image", docker_image(), "--keep", "run", "true"});
  EXPECT_EQ(r.status, 0) << r.err;
  const std::string prefix = "workspace-cli: kept docker ";
  ASSERT_EQ(r.err.rfind(prefix, 0), 0u) << r.err;
  const std::string id = r.err.substr(prefix.size(), r.err.size() - prefix.size() - 1);
  // It runs, and a later call attaches to it.
  const CliRun attached = cli({"--mode", "docker", "--attach", id, "run", "echo attached"});
  EXPECT_EQ(attached.status, 0) << attached.err;
  EXPECT_EQ(attached.out, "attached\n");
  workspace::docker::Engine().remove(id);
}

// --- the OpenHands agent server

TEST(CliRemote, CommandOutputAndStatusPassThrough) {
  const auto server = ts::agent_server();
  // The key from the environment, not the command line, as the help advises.
  exercise({"--mode", "remote", "--host", server.url, "--working-dir", ts::fresh_agent_dir("cli")},
           {{"WORKSPACE_API_KEY", server.session_key}});
}

TEST(CliRemote, WrongKeyIsOneLine) {
  const auto server = ts::agent_server();
  const CliRun r = cli({"--mode", "remote", "--host", server.url, "--working-dir", ts::fresh_agent_dir("cli"), "run", "true"},
                    {{"WORKSPACE_API_KEY", "not-the-key"}});
  expect_one_line_error(r, server.url);
  EXPECT_EQ(r.err.find("not-the-key"), std::string::npos) << r.err;
}

// --- the runtime API

TEST(CliApiRemote, CommandOutputAndStatusPassThrough) {
  const auto api = ts::runtime_api();
  const std::string folder = ts::shared_folder("cli-" + std::to_string(::getpid()));
  // Attached to without --keep, the last call stops the runtime.
  exercise({"--mode", "api_remote", "--host", api.url, "--image", "ghcr.io/openhands/agent-server:test", "--environment",
            "RUNTIME_TEST_WORKSPACE_DIR=" + folder, "--working-dir", folder},
           {{"WORKSPACE_API_KEY", api.key}}, [](const std::string&) {});
}

TEST(CliApiRemote, KeptRuntimeIsStoppedByRm) {
  const auto api = ts::runtime_api();
  const std::string folder = ts::shared_folder("cli-rm-" + std::to_string(::getpid()));
  const CliRun kept = cli({"--mode", "api_remote", "--host", api.url, "--image", "ghcr.io/openhands/agent-server:test",
                           "--environment", "RUNTIME_TEST_WORKSPACE_DIR=" + folder, "--working-dir", folder, "--keep",
                           "run", "true"},
                          {{"WORKSPACE_API_KEY", api.key}});
  EXPECT_EQ(kept.status, 0) << kept.err;
  const std::string session = kept_id(kept);
  ASSERT_FALSE(session.empty()) << kept.err;
  EXPECT_EQ(ts::api_call("GET", "/sessions/" + session).value("status", ""), "running");
  const CliRun rm = cli({"--mode", "api_remote", "--host", api.url, "rm", session}, {{"WORKSPACE_API_KEY", api.key}});
  EXPECT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(ts::api_call("GET", "/sessions/" + session).value("status", ""), "stopped");
}

TEST(CliApiRemote, KeepWithARuntimeThatFailsToStartLeavesNothingRunning) {
  // The session is named (--attach names a session that does not exist yet, which starts it)
  // so that the test can ask for it afterwards.
  const auto api = ts::runtime_api();
  const std::string session = "cli-failed-start-" + std::to_string(::getpid());
  const CliRun r = cli({"--mode", "api_remote", "--host", api.url, "--image", "ghcr.io/openhands/agent-server:test",
                        "--environment", "RUNTIME_TEST_FAIL=1", "--attach", session, "--keep", "run", "true"},
                       {{"WORKSPACE_API_KEY", api.key}});
  expect_one_line_error(r, "failed");
  EXPECT_EQ(ts::api_call("GET", "/sessions/" + session).value("status", ""), "stopped");
}

// --- Daytona

TEST(CliDaytona, CommandOutputAndStatusPassThrough) {
  const auto server = ts::daytona_server();
  exercise({"--mode", "daytona", "--host", server.api_url, "--snapshot", "daytona-small"},
           {{"WORKSPACE_API_KEY", server.api_key}}, [&](const std::string& id) {
             // The kept sandbox goes with `rm`.
             const CliRun rm = cli({"--mode", "daytona", "--host", server.api_url, "rm", id},
                                   {{"WORKSPACE_API_KEY", server.api_key}});
             EXPECT_EQ(rm.status, 0) << rm.err;
             EXPECT_TRUE(eventually([&] {
               const auto state = ts::daytona_sandbox_state(id);
               return state == "gone" || state == "destroyed";
             }, 30s)) << "rm left the sandbox";
           });
}

TEST(CliDaytona, SigintDeletesTheSandbox) {
  const auto server = ts::daytona_server();
  ts::TempDir dir;
  const std::vector<std::string> args = {cli_path, "--mode", "daytona", "--host", server.api_url, "--snapshot",
                                         "daytona-small", "run", "sleep 30"};
  // ChildProcess passes this process's environment on: the key goes through it.
  ::setenv("WORKSPACE_API_KEY", server.api_key.c_str(), 1);
  ts::ChildProcess child(args, dir.path() / "log");
  ::unsetenv("WORKSPACE_API_KEY");
  const auto sandboxes = [&] {
    const nlohmann::json labels = {{workspace::detail::owner_pid_label, std::to_string(child.pid())}};
    auto list = ts::daytona_api("GET", workspace::http::make_target("/sandbox", {{"labels", labels.dump()}}));
    if (list.is_object() && list.contains("items")) list = list["items"];
    std::vector<std::string> live;
    for (const auto& s : list)
      if (s.value("state", std::string()) != "destroyed") live.push_back(s.value("id", std::string()));
    return live;
  };
  ASSERT_TRUE(eventually([&] { return !sandboxes().empty(); }, 60s)) << ts::read_file(dir.path() / "log");
  std::this_thread::sleep_for(2s);  // started, and the command is running
  ::kill(child.pid(), SIGINT);
  EXPECT_EQ(child.wait_for_exit(30s), 130) << ts::read_file(dir.path() / "log");
  EXPECT_TRUE(eventually([&] { return sandboxes().empty(); }, 10s));
}

}  // namespace
