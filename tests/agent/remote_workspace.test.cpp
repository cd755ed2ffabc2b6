// RemoteWorkspace against the real OpenHands agent server (openhands-agent-server from PyPI,
// started on 127.0.0.1 by scripts/run-tests). Without one these tests fail, never skip.
#include <workspace/agent.hpp>
#include <workspace/testing/contract.hpp>
#include <workspace/testing/through_async.hpp>

#include "../support/agent_server.hpp"
#include "../support/nginx.hpp"
#include "../support/process.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <string>

using namespace workspace;
namespace ts = workspace_test;

namespace {

RemoteWorkspace make_remote(const std::string& prefix, RemoteWorkspaceOptions options = {}) {
  const auto server = ts::agent_server();
  options.host = server.url;
  options.session_api_key = server.session_key;
  options.working_dir = ts::fresh_agent_dir(prefix);
  return RemoteWorkspace(std::move(options));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A loopback port with nothing listening.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      ts::agent_server();
    } catch (const std::exception& e) {
      GTEST_FAIL() << e.what();
    }
  }
};

}  // namespace

template <>
struct workspace::testing::ContractTraits<RemoteWorkspace> {
  static RemoteWorkspace make() { return make_remote("contract"); }
  static constexpr bool runs_shell = true;
  static constexpr std::chrono::milliseconds timeout_grace{1500};
};

namespace workspace::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(Remote, WorkspaceContract, ::testing::Types<RemoteWorkspace>);
// The same suite through the asynchronous API.
INSTANTIATE_TYPED_TEST_SUITE_P(RemoteAsync, WorkspaceContract, ::testing::Types<workspace::testing::ThroughAsync<RemoteWorkspace>>);
}

TEST_F(RemoteTest, TheFirstCommandCreatesAMissingWorkingDir) {
  const auto server = ts::agent_server();
  const std::string dir = ts::fresh_agent_dir("missing") + "/not/made/yet";
  RemoteWorkspace ws({.host = server.url, .session_api_key = server.session_key, .working_dir = dir});
  const auto r = ws.execute_command("pwd");
  EXPECT_EQ(r.exit_code, 0) << r.std_err;
  EXPECT_EQ(r.std_out, dir + "\n");
  // Only working_dir: another missing cwd is still an Error naming it.
  CommandOptions o;
  o.cwd = "elsewhere";
  EXPECT_THROW(ws.execute_command("true", o), Error);
}

TEST_F(RemoteTest, AnswersHealthAndServerInfo) {
  auto ws = make_remote("health");
  EXPECT_TRUE(ws.alive());
  const auto info = ws.server_info();
  EXPECT_TRUE(info.contains("version")) << info.dump();
}

TEST_F(RemoteTest, AWrongSessionKeyIsAnAuthenticationErrorThatDoesNotQuoteTheKey) {
  const std::string wrong = "wrong-key-0123456789";
  RemoteWorkspaceOptions o;
  o.host = ts::agent_server().url;
  o.session_api_key = wrong;
  o.working_dir = ts::fresh_agent_dir("wrong-key");
  RemoteWorkspace ws(o);
  EXPECT_TRUE(ws.alive());  // /health needs no key
  try {
    ws.execute_command("true");
    FAIL() << "a wrong key must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
    // 401 from the REST API; the event socket's upgrade is refused with 403.
    EXPECT_TRUE(e.http_status() == 401 || e.http_status() == 403) << e.http_status();
    EXPECT_EQ(std::string(e.what()).find(wrong), std::string::npos) << e.what();
  }
  EXPECT_THROW(ws.file_write("x.txt", "x"), Error);
  EXPECT_THROW(ws.file_read("x.txt"), Error);
  o.session_api_key.clear();
  RemoteWorkspace keyless(o);
  try {
    keyless.execute_command("true");
    FAIL() << "a missing key must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::authentication_failed) << e.what();
  }
}

TEST_F(RemoteTest, AnUnreachableServerIsAnErrorAtOnce) {
  RemoteWorkspace ws("http://127.0.0.1:" + std::to_string(closed_port()), "key", "/workspace");
  EXPECT_FALSE(ws.alive());
  const auto start = std::chrono::steady_clock::now();
  try {
    ws.execute_command("true");
    FAIL() << "no server, no result";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::connection_failed) << e.what();
  }
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST_F(RemoteTest, AHalfSecondTimeoutIsHonouredNotTruncatedToZero) {
  auto ws = make_remote("half-second");
  CommandOptions o;
  o.timeout = std::chrono::milliseconds(500);
  // Long enough to finish inside 0.5 s, which a timeout truncated to 0 would not allow.
  auto quick = ws.execute_command("sleep 0.1; echo done", o);
  EXPECT_FALSE(quick.timeout_occurred);
  EXPECT_EQ(quick.exit_code, 0);
  EXPECT_EQ(quick.std_out, "done\n");

  const auto start = std::chrono::steady_clock::now();
  auto slow = ws.execute_command("echo started; sleep 5; echo never", o);
  const double elapsed = seconds_since(start);
  EXPECT_TRUE(slow.timeout_occurred);
  EXPECT_EQ(slow.exit_code, -1);
  EXPECT_EQ(slow.std_out, "started\n");
  EXPECT_GE(elapsed, 0.5);
  EXPECT_LT(elapsed, 1.5) << "the command was not stopped near its 0.5 s deadline";
}

TEST_F(RemoteTest, TimeoutKillsADaemonThatLeftTheProcessGroup) {
  auto ws = make_remote("daemon");
  CommandOptions o;
  o.timeout = std::chrono::milliseconds(700);
  auto r = ws.execute_command("setsid sleep 60 & echo $!; sleep 60", o);
  ASSERT_TRUE(r.timeout_occurred);
  const std::string pid = r.std_out.substr(0, r.std_out.find('\n'));
  ASSERT_FALSE(pid.empty());
  std::string alive = "?";
  for (int i = 0; i < 40 && !alive.empty(); ++i) {
    alive = ws.execute_command("s=$(cut -d' ' -f3 /proc/" + pid + "/stat 2>/dev/null); case \"$s\" in ''|Z|X) ;; *) echo alive;; esac").std_out;
    if (!alive.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(alive, "") << "the setsid daemon " << pid << " survived the timeout";
}

// The server emits output in 1 MiB events; pushed through them (not the spool files), several
// MiB arrive whole and in order.
TEST_F(RemoteTest, OutputOverOneMebibyteThroughEventsArrivesWholeAndInOrder) {
  RemoteWorkspaceOptions o;
  o.commands.inline_output_limit = 64u << 20;
  auto ws = make_remote("events", o);
  CommandOptions options;
  options.timeout = std::chrono::seconds(120);
  std::string streamed;
  options.on_output = [&](OutputStream s, std::string_view chunk) {
    if (s == OutputStream::std_out) streamed.append(chunk);
  };
  auto r = ws.execute_command("seq 1 700000; seq 1 300000 >&2", options);
  ASSERT_EQ(r.exit_code, 0) << r.std_err.substr(0, 200);
  std::string expected_out, expected_err;
  for (int i = 1; i <= 700000; ++i) expected_out += std::to_string(i) + "\n";
  for (int i = 1; i <= 300000; ++i) expected_err += std::to_string(i) + "\n";
  ASSERT_GT(expected_out.size(), 4u << 20);
  EXPECT_EQ(r.std_out.size(), expected_out.size());
  EXPECT_TRUE(r.std_out == expected_out);
  EXPECT_TRUE(r.std_err == expected_err);
  EXPECT_TRUE(streamed == expected_out);
}

// The server decodes UTF-8 per 8 KiB read with replacement; through the runner no character is
// ever split, in either output path, nor in the callback's concatenation.
TEST_F(RemoteTest, MultiByteCharactersAreNeverReplaced) {
  for (std::uint64_t limit : {std::uint64_t{0}, std::uint64_t{64} << 20}) {
    RemoteWorkspaceOptions o;
    o.commands.inline_output_limit = limit;
    auto ws = make_remote("utf8", o);
    CommandOptions options;
    std::string streamed;
    options.on_output = [&](OutputStream, std::string_view chunk) { streamed.append(chunk); };
    // 3-byte and 4-byte characters, 100k of them: 8 KiB boundaries fall inside characters.
    auto r = ws.execute_command("i=0; while [ $i -lt 2000 ]; do printf '\xe2\x9c\x93\xf0\x9f\x98\x80%.0s' "
                                "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; "
                                "i=$((i+1)); done",
                                options);
    ASSERT_EQ(r.exit_code, 0);
    std::string expected;
    for (int i = 0; i < 2000 * 25; ++i) expected += "\xe2\x9c\x93\xf0\x9f\x98\x80";
    EXPECT_EQ(r.std_out.size(), expected.size()) << "inline limit " << limit;
    EXPECT_TRUE(r.std_out == expected) << "inline limit " << limit;
    EXPECT_EQ(r.std_out.find("\xef\xbf\xbd"), std::string::npos) << "a replacement character appeared";
    EXPECT_TRUE(streamed == expected);
  }
}

TEST_F(RemoteTest, EnvironmentNamesThatAreNotShellNamesStillArrive) {
  auto ws = make_remote("env-names");
  CommandOptions o;
  o.env = {{"WITH-DASH", "a b"}, {"PLAIN", "it's"}};
  // dash drops names it cannot hold when it starts, so read the shell's own starting environment.
  auto r = ws.execute_command("tr '\\0' '\\n' </proc/$$/environ | grep -E '^(WITH-DASH|PLAIN)=' | sort", o);
  EXPECT_EQ(r.std_out, "PLAIN=it's\nWITH-DASH=a b\n");
}

TEST_F(RemoteTest, ServerErrorsCarryTheServersDetail) {
  auto ws = make_remote("detail");
  ASSERT_TRUE(ws.file_write("file", "x").success);
  auto r = ws.file_write("file/child", "y");
  ASSERT_FALSE(r.success);
  ASSERT_TRUE(r.error);
  // The status and the server's own words (its "detail").
  EXPECT_NE(r.error->find("400"), std::string::npos) << *r.error;
  EXPECT_NE(r.error->find("not a directory"), std::string::npos) << *r.error;
  EXPECT_NE(r.error->find("file/child"), std::string::npos) << *r.error;
}

TEST_F(RemoteTest, GitChangesAndDiffComeFromTheServer) {
  auto ws = make_remote("git");
  auto init = ws.execute_command(
      "git init -q . && git config user.email t@example.invalid && git config user.name t && "
      "printf 'one\\n' > tracked.txt && git add tracked.txt && git commit -q -m first && "
      "printf 'two\\n' > tracked.txt && printf 'new\\n' > added.txt");
  ASSERT_EQ(init.exit_code, 0) << init.std_err;
  const auto changes = ws.git_changes(".");
  bool saw_updated = false, saw_added = false;
  for (const auto& c : changes) {
    if (c.path.find("tracked.txt") != std::string::npos) saw_updated = c.status == GitChangeStatus::updated;
    if (c.path.find("added.txt") != std::string::npos) saw_added = c.status == GitChangeStatus::added;
  }
  EXPECT_TRUE(saw_updated);
  EXPECT_TRUE(saw_added);
  const auto diff = ws.git_diff("tracked.txt");
  // The server reads both versions line by line and joins them without the final line break.
  EXPECT_EQ(diff.original.value_or("<none>"), "one");
  EXPECT_EQ(diff.modified.value_or("<none>"), "two");
}

TEST_F(RemoteTest, ConcurrentCommandsOnOneWorkspaceKeepTheirOwnOutput) {
  auto ws = make_remote("concurrent");
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const std::string word = "t" + std::to_string(t) + "i" + std::to_string(i);
        auto r = ws.execute_command("printf %s " + word + "; printf e%s " + word + " >&2");
        if (r.std_out == word && r.std_err == "e" + word && r.exit_code == 0) ++good;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 20);
}

// A server of its own, SIGKILLed (its whole process group) while a command runs: the call ends
// with an Error promptly instead of waiting for its 60 s timeout.
TEST_F(RemoteTest, AServerKilledMidCommandIsAnErrorNotAHang) {
  const auto port = ts::free_tcp_port();
  const std::string key = "killed-server-key";
  const std::string dir = ts::fresh_agent_dir("killed");
  const std::string state = dir + ".state";
  const std::string command = std::string(WORKSPACE_SOURCE_DIR) + "/scripts/agent-server-instance start " +
                              std::to_string(port) + " " + key + " '" + dir + "' '" + state + "'";
  std::FILE* out = ::popen(command.c_str(), "r");
  ASSERT_NE(out, nullptr);
  char buffer[64] = {};
  const bool read = std::fgets(buffer, sizeof buffer, out) != nullptr;
  ASSERT_EQ(::pclose(out), 0) << command;
  ASSERT_TRUE(read);
  const pid_t leader = static_cast<pid_t>(std::atol(buffer));
  ASSERT_GT(leader, 1);
  struct Stop {
    pid_t pid;
    ~Stop() { ::kill(-pid, SIGKILL); }
  } stop{leader};

  RemoteWorkspace ws("http://127.0.0.1:" + std::to_string(port), key, dir);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (!ws.alive() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  ASSERT_TRUE(ws.alive()) << "the second agent server did not start; see " << state << "/server.log";
  ASSERT_EQ(ws.execute_command("echo up").std_out, "up\n");

  auto killer = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ::kill(-leader, SIGKILL);
  });
  CommandOptions o;
  o.timeout = std::chrono::seconds(60);
  const auto start = std::chrono::steady_clock::now();
  try {
    ws.execute_command("sleep 50", o);
    FAIL() << "a dead server gives no result";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::connection_failed) << e.what();
  }
  EXPECT_LT(seconds_since(start), 15.0) << "the client hung on a dead server";
  killer.get();
  EXPECT_FALSE(ws.alive());
}

// Over https through a TLS-terminating proxy (nginx, websockets passed through): the pushed
// events arrive in TLS records that the TLS layer may read from the socket together, leaving
// one decrypted but invisible to poll(); each command must still end at once, not when the
// next reconciling search comes a second later.
TEST_F(RemoteTest, WorksOverHttpsThroughAProxyWithoutWaitingOnBufferedTlsRecords) {
  const auto server = ts::agent_server();
  ts::Nginx nginx(ts::TlsCerts::shared(), server.url);
  RemoteWorkspaceOptions o;
  o.host = "https://localhost:" + std::to_string(nginx.tls_port()) + "/proxy";
  o.session_api_key = server.session_key;
  o.working_dir = ts::fresh_agent_dir("tls");
  o.http.tls.ca_file = nginx.certs().ca_cert().string();
  RemoteWorkspace ws(o);
  ASSERT_TRUE(ws.alive());
  double slowest = 0;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = ws.execute_command("echo " + std::to_string(i));
    slowest = std::max(slowest, seconds_since(start));
    ASSERT_EQ(r.std_out, std::to_string(i) + "\n");
  }
  EXPECT_LT(slowest, 0.9) << "a command waited for the reconciling search";
  const std::string data = workspace::testing::contract::random_bytes(1u << 20, 5);
  ASSERT_TRUE(ws.file_write("blob", data).success);
  EXPECT_TRUE(ws.file_read("blob").content == data);
}
