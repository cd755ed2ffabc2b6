// DockerWorkspace against the real Docker daemon (started by scripts/run-tests; its socket in
// DOCKER_HOST). The test image is built FROM scratch with busybox, offline, through our own
// Engine client; containers use network mode none. Under CI=true an unreachable daemon fails
// these tests instead of skipping them.
#include <workspace/docker.hpp>
#include <workspace/testing/contract.hpp>
#include <workspace/testing/through_async.hpp>

#include "../support/docker_daemon.hpp"
#include "../support/process.hpp"
#include "../support/scripted_server.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <string>

#include "docker_test_image.hpp"

using namespace workspace;
namespace ts = workspace_test;

namespace workspace::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(Docker, WorkspaceContract, ::testing::Types<DockerWorkspace>);
// The same suite through the asynchronous API.
INSTANTIATE_TYPED_TEST_SUITE_P(DockerAsync, WorkspaceContract, ::testing::Types<ThroughAsync<DockerWorkspace>>);
}

TEST_F(DockerTest, NonRootUserWritesItsWorkingDirAndOwnsUploads) {
  DockerWorkspace ws(non_root_options());
  const auto id = ws.execute_command("id -u");
  EXPECT_EQ(id.std_out, std::to_string(probe_uid) + "\n");
  const auto touch = ws.execute_command("touch made-by-user && stat -c %u made-by-user .");
  EXPECT_EQ(touch.exit_code, 0) << touch.std_err;
  EXPECT_EQ(touch.std_out, std::to_string(probe_uid) + "\n" + std::to_string(probe_uid) + "\n");

  ts::TempDir local;
  ts::write_file(local.path() / "up.txt", "uploaded");
  ASSERT_TRUE(ws.file_upload((local.path() / "up.txt").string(), "deep/er/up.txt").success);
  ASSERT_TRUE(ws.file_write("written.txt", "written").success);
  const auto owners = ws.execute_command("stat -c '%u:%g %n' deep deep/er deep/er/up.txt written.txt");
  const std::string owner = std::to_string(probe_uid) + ":" + std::to_string(probe_uid);
  EXPECT_EQ(owners.std_out, owner + " deep\n" + owner + " deep/er\n" + owner + " deep/er/up.txt\n" + owner +
                                " written.txt\n");
  // A folder outside working_dir that the user could not make itself is still made, and given
  // to the user (the daemon extracts as root, as `docker cp` does).
  ASSERT_TRUE(ws.file_write("/etc/made-for-probe/file", "x").success);
  EXPECT_EQ(ws.execute_command("stat -c %u /etc/made-for-probe /etc/made-for-probe/file /etc").std_out,
            std::to_string(probe_uid) + "\n" + std::to_string(probe_uid) + "\n0\n");
}

TEST_F(DockerTest, AFailedStartRemovesTheContainerEvenWithKeepAlive) {
  // The daemon creates the container, then refuses to start it for a user the image lacks.
  const std::string case_label = "org.workspace-cpp.test-case=failed-start-" + std::to_string(::getpid());
  DockerWorkspaceOptions o = options();
  o.labels["org.workspace-cpp.test-case"] = "failed-start-" + std::to_string(::getpid());
  o.user = "no-such-user-4711";
  o.on_close = OnClose::keep;
  EXPECT_THROW(DockerWorkspace ws(std::move(o)), Error);
  EXPECT_TRUE(ts::containers_with_label(case_label).empty()) << "the container was left behind";
}

TEST_F(DockerTest, AWorkingDirWithContentIsNotHandedOver) {
  // The image's own folders stay as the image has them.
  DockerWorkspaceOptions o = non_root_options();
  o.working_dir = "/etc";
  DockerWorkspace ws(std::move(o));
  EXPECT_EQ(ws.execute_command("stat -c %u /etc").std_out, "0\n");
}

TEST_F(DockerTest, TimeoutKillsTheWholeTreeInsideTheContainer) {
  DockerWorkspace ws(options());
  CommandOptions o;
  o.timeout = std::chrono::seconds(1);
  const auto start = std::chrono::steady_clock::now();
  const auto r = ws.execute_command("sleep 30 & sleep 30", o);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_LT(took, std::chrono::milliseconds(2500));
  // No sleep left: every process but the container's own idle loop is gone.
  const auto ps = ws.execute_command("for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline; echo; done");
  EXPECT_EQ(ps.std_out.find("sleep 30"), std::string::npos) << ps.std_out;
}

TEST_F(DockerTest, DaemonsStartedByACommandAreKilledOnTimeout) {
  DockerWorkspace ws(options());
  CommandOptions o;
  o.timeout = std::chrono::milliseconds(800);
  // A double fork into a new session: outside the command's process group, still ours.
  const auto r = ws.execute_command("(setsid sh -c 'sleep 40' &) ; sleep 40", o);
  EXPECT_TRUE(r.timeout_occurred);
  const auto ps = ws.execute_command("for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline; echo; done");
  EXPECT_EQ(ps.std_out.find("sleep 40"), std::string::npos) << ps.std_out;
}

// The end of a command comes from the stream itself: the wrapper's status frame, which neither
// the caller nor on_output ever sees, and the daemon's word only when the wrapper was killed.
TEST_F(DockerTest, TheStatusFrameStaysOutOfTheOutput) {
  DockerWorkspace ws(options());
  std::string streamed;
  CommandOptions o;
  o.on_output = [&](OutputStream s, std::string_view d) {
    if (s == OutputStream::std_err) streamed.append(d);
  };
  // A shell reports a child's signal death on its stderr; none of that reaches the result.
  const auto killed = ws.execute_command("echo partial >&2; kill -9 $$", o);
  EXPECT_EQ(killed.signal, 9);
  EXPECT_EQ(killed.std_err, "partial\n");
  EXPECT_EQ(streamed, "partial\n");
  // What looks like a frame is the command's own output, byte for byte.
  const std::string lookalike = "\\001workspace: exit 0123 7\\001 \\001workspace: exit ";
  const auto forged = ws.execute_command("printf '" + lookalike + "' >&2; exit 5");
  EXPECT_EQ(forged.exit_code, 5);
  EXPECT_EQ(forged.std_err, "\x01workspace: exit 0123 7\x01 \x01workspace: exit ");
  // The wrapper killed under the command: the command still runs to its end, and the daemon
  // reports the wrapper's death.
  const auto orphaned = ws.execute_command("kill -9 $PPID; echo after");
  EXPECT_EQ(orphaned.std_out, "after\n");
  EXPECT_EQ(orphaned.signal, 9);
  EXPECT_EQ(ws.execute_command("echo next").std_out, "next\n");
}

TEST_F(DockerTest, ADisabledNetworkIsLoopbackOnly) {
  DockerWorkspaceOptions o = options();
  o.network_mode = "disabled";
  DockerWorkspace ws(std::move(o));
  const auto r = ws.execute_command("ls /sys/class/net; [ -s /etc/hosts ] || echo no-hosts");
  EXPECT_EQ(r.exit_code, 0) << r.std_err;
  // dockerd leaves the sandbox's files empty; Podman writes /etc/hosts whatever the network.
  EXPECT_EQ(r.std_out, ts::engine_is_podman() ? "lo\n" : "lo\nno-hosts\n");
  DockerWorkspace none(options());
  EXPECT_EQ(none.execute_command("ls /sys/class/net; grep -q localhost /etc/hosts && echo resolves").std_out,
            "lo\nresolves\n");
}

TEST_F(DockerTest, ContainersCarryOwnerLabelsAndAreRemoved) {
  std::string id;
  {
    DockerWorkspace ws(options());
    id = ws.id();
    const auto info = ws.engine().inspect(id);
    const auto& labels = info["Config"]["Labels"];
    EXPECT_EQ(labels["org.workspace-cpp.managed"], "true");
    EXPECT_EQ(labels["org.workspace-cpp.owner-pid"], std::to_string(::getpid()));
    EXPECT_EQ(info["HostConfig"]["NetworkMode"], "none");
  }
  docker::Engine engine;
  try {
    engine.inspect(id);
    FAIL() << "container still exists";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::not_found);
  }
}

TEST_F(DockerTest, KeepAliveAndAttach) {
  std::string id;
  {
    auto o = options();
    o.on_close = OnClose::keep;
    DockerWorkspace ws(o);
    id = ws.id();
    ASSERT_TRUE(ws.file_write("kept.txt", "still here").success);
  }
  {
    auto attached = DockerWorkspace::attach(id);
    EXPECT_EQ(attached.working_dir(), "/workspace");
    EXPECT_EQ(attached.file_read("kept.txt").content, "still here");
  }
  docker::Engine engine;
  EXPECT_NO_THROW(engine.inspect(id));  // attaching never removes
  engine.remove(id);
}

TEST_F(DockerTest, PauseAndResume) {
  DockerWorkspace ws(options());
  ws.pause();
  EXPECT_TRUE(ws.engine().inspect(ws.id())["State"]["Paused"].get<bool>());
  ws.resume();
  EXPECT_EQ(ws.execute_command("echo back").std_out, "back\n");
}

TEST_F(DockerTest, OrphansOfAKilledOwnerAreReaped) {
  // A child process makes a workspace and is killed with SIGKILL: its container stays behind,
  // labelled with the dead owner, and reap_orphans() removes it.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string img = image();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    try {
      auto o = options();
      DockerWorkspace ws(o);
      const std::string id = ws.id() + "\n";
      if (::write(fds[1], id.data(), id.size()) < 0) ::_exit(2);
      ::pause();
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(fds[1]);
  std::string id;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') id += c;
  ::close(fds[0]);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_FALSE(id.empty());
  docker::Engine engine;
  EXPECT_NO_THROW(engine.inspect(id));
  EXPECT_GE(DockerWorkspace::reap_orphans(), 1u);
  EXPECT_THROW(engine.inspect(id), Error);
}

TEST_F(DockerTest, MissingImageIsAClearError) {
  auto o = options();
  o.image = "workspace-test-no-such-image:never";
  o.pull_if_missing = false;
  try {
    DockerWorkspace ws(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::not_found);
    EXPECT_NE(std::string(e.what()).find("workspace-test-no-such-image"), std::string::npos) << e.what();
  }
}

TEST_F(DockerTest, BuildsFromDockerfileTextAndReportsBuildErrors) {
  docker::Engine engine;
  std::vector<std::string> lines;
  const std::string id = engine.build_dockerfile("FROM " + image() + "\nRUN echo built > /built.txt\n",
                                                 "workspace-test-derived:latest",
                                                 [&](std::string_view line) { lines.emplace_back(line); });
  EXPECT_FALSE(lines.empty());
  auto o = options();
  o.image = "workspace-test-derived:latest";
  DockerWorkspace ws(o);
  EXPECT_EQ(ws.file_read("/built.txt").content, "built\n");
  try {
    engine.build_dockerfile("FROM " + image() + "\nRUN exit 3\n", "workspace-test-broken:latest");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("build"), std::string::npos) << e.what();
  }
}

TEST_F(DockerTest, PullErrorsInsideTheStreamSurface) {
  // No registry is reachable with the bridge off: the daemon reports the failure, we raise it.
  docker::Engine engine;
  try {
    engine.pull("127.0.0.1:1/workspace-test/nothing:latest");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pull"), std::string::npos) << e.what();
  }
}

// A daemon that answers a download with a hostile archive: the download is refused and nothing
// lands outside the destination. (The real daemon never makes such archives, so a scripted one
// speaks for it over a Unix socket.)
TEST(DockerArchive, MaliciousArchivesAreRefused) {
  ts::TempDir dir;
  // Raw archives: our Writer refuses such paths, so the headers are encoded by hand.
  using tar::Entry;
  using tar::EntryType;
  const auto member = [](Entry e, const std::string& body = {}) {
    e.size = body.size();
    std::string out = tar::encode_header(e) + body;
    out.append((512 - body.size() % 512) % 512, '\0');
    return out;
  };
  const auto file = [&](std::string path, std::string body) {
    Entry e;
    e.path = std::move(path);
    return member(e, body);
  };
  Entry link;
  link.path = "link";
  link.type = EntryType::symlink;
  link.typeflag = '2';
  link.linkname = "/";
  const std::string end(1024, '\0');
  const std::vector<std::string> hostile_archives = {
      file("../evil.txt", "pwned") + end,
      file("/etc/evil.txt", "pwned") + end,
      file("a/../../evil.txt", "pwned") + end,
      member(link) + file("link/tmp/evil.txt", "pwned") + end,
  };
  for (const std::string& tar : hostile_archives) {
    const std::string socket = (dir.path() / "docker.sock").string();
    auto server = ts::ScriptedServer::unix_socket(socket, ts::serve([&](const ts::Request& r) {
      if (r.head.target.find("/_ping") != std::string::npos)
        return ts::Response{200, "OK", {{"Api-Version", "1.41"}}};
      if (r.head.target.find("/archive") != std::string::npos)
        return ts::Response{200, tar, {{"Content-Type", "application/x-tar"}}};
      return ts::Response{200, R"({"Id":"abc","Config":{"WorkingDir":"/workspace"}})", {{"Content-Type", "application/json"}}};
    }));
    DockerWorkspaceOptions o;
    o.engine.host = "unix://" + socket;
    auto ws = DockerWorkspace::attach("abc", o);
    const auto dest = dir.path() / "out" / "file.txt";
    const auto r = ws.file_download("file.txt", dest.string());
    EXPECT_FALSE(r.success);
    ASSERT_TRUE(r.error);
    EXPECT_NE(r.error->find("tar: "), std::string::npos) << *r.error;
    EXPECT_FALSE(std::filesystem::exists(dest));
    EXPECT_FALSE(std::filesystem::exists("/tmp/evil.txt"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "evil.txt"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "out" / "evil.txt"));
    server.stop();
    std::filesystem::remove(socket);
  }
}
