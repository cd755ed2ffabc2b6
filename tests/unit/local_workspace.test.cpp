// What LocalWorkspace guarantees beyond the contract: process hygiene (descriptors, signals,
// stdin, process groups), clean-up when the caller's callback throws, concurrency, and file
// details (modes, no partial files).
#include <workspace/local.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using workspace::CommandOptions;
using workspace::LocalWorkspace;

namespace fs = std::filesystem;

class LocalWorkspaceTest : public ::testing::Test {
 protected:
  LocalWorkspaceTest()
      : root_(fs::temp_directory_path() /
              ("workspace-unit-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())),
        ws_((fs::remove_all(root_), root_ / "work")) {}
  ~LocalWorkspaceTest() override { fs::remove_all(root_); }

  fs::path root_;
  LocalWorkspace ws_;
};

std::set<std::string> fds_of_this_process() {
  std::set<std::string> fds;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd"))
    fds.insert(entry.path().filename().string());
  return fds;
}

// Whether a pid names a live (non-zombie) process, waiting a little for it to die.
bool alive(const std::string& pid) {
  for (int attempt = 0; attempt < 40; ++attempt) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = content.rfind(')');
    if (!stat || close == std::string::npos || content.size() < close + 3 ||
        content[close + 2] == 'Z' || content[close + 2] == 'X')
      return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST_F(LocalWorkspaceTest, CreatesWorkingDirAndMakesItAbsolute) {
  EXPECT_TRUE(fs::is_directory(root_ / "work"));
  EXPECT_EQ(ws_.working_dir(), (root_ / "work").string());

  const auto previous = fs::current_path();
  fs::current_path(root_);
  LocalWorkspace relative("nested/./dir/");
  fs::current_path(previous);
  EXPECT_EQ(relative.working_dir(), (root_ / "nested/dir").string());
  EXPECT_TRUE(fs::is_directory(root_ / "nested/dir"));
}

TEST_F(LocalWorkspaceTest, WorkingDirThatIsAFileIsAnError) {
  std::ofstream(root_ / "file") << "x";
  try {
    LocalWorkspace bad(root_ / "file");
    FAIL() << "a file is not a working directory";
  } catch (const workspace::Error& e) {
    EXPECT_NE(std::string(e.what()).find((root_ / "file").string()), std::string::npos);
  }
  EXPECT_THROW(LocalWorkspace(""), workspace::Error);
}

TEST_F(LocalWorkspaceTest, CwdThatIsAFileIsAnErrorNamingIt) {
  ASSERT_TRUE(ws_.file_write("plain", "x").success);
  CommandOptions options;
  options.cwd = "plain";
  try {
    ws_.execute_command("true", options);
    FAIL();
  } catch (const workspace::Error& e) {
    EXPECT_NE(std::string(e.what()).find("plain"), std::string::npos) << e.what();
  }
}

TEST_F(LocalWorkspaceTest, NoDescriptorOfOursReachesTheChild) {
  // A descriptor the host opened without close-on-exec, as Asio does for its sockets.
  int leaky = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 0);
  ASSERT_GE(::dup2(leaky, 200), 0);
  auto r = ws_.execute_command("for f in /proc/$$/fd/*; do echo ${f##*/}; done");
  ::close(200);
  ::close(leaky);
  std::istringstream lines(r.std_out);
  std::set<std::string> fds;
  for (std::string fd; std::getline(lines, fd);) fds.insert(fd);
  // 0-2, plus the descriptor the shell's glob holds on /proc/$$/fd while it lists it.
  for (const auto& fd : fds) EXPECT_TRUE(fd == "0" || fd == "1" || fd == "2" || fd == "3") << fd;
  EXPECT_EQ(fds.count("200"), 0u);
}

TEST_F(LocalWorkspaceTest, StdinIsDevNull) {
  const auto start = std::chrono::steady_clock::now();
  auto r = ws_.execute_command("cat; readlink /proc/self/fd/0");
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_EQ(r.std_out, "/dev/null\n");
}

TEST_F(LocalWorkspaceTest, ChildGetsAnEmptySignalMaskAndDefaultDispositions) {
  sigset_t block, previous_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &previous_mask), 0);
  struct sigaction ignore {}, previous_pipe {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous_pipe), 0);

  auto r = ws_.execute_command("grep -E '^Sig(Blk|Ign)' /proc/self/status");
  CommandOptions options;
  options.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto timed = ws_.execute_command("sleep 30", options);
  const double elapsed = seconds_since(start);

  ::sigaction(SIGPIPE, &previous_pipe, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);

  EXPECT_NE(r.std_out.find("SigBlk:\t0000000000000000"), std::string::npos) << r.std_out;
  auto ign = r.std_out.find("SigIgn:\t");
  ASSERT_NE(ign, std::string::npos);
  const unsigned long long ignored = std::stoull(r.std_out.substr(ign + 8, 16), nullptr, 16);
  EXPECT_EQ(ignored & (1ull << (SIGPIPE - 1)), 0u) << "SIGPIPE is still ignored in the child";
  // SIGTERM reached the command although this thread blocks it: no wait for the SIGKILL grace.
  EXPECT_TRUE(timed.timeout_occurred);
  EXPECT_LT(elapsed, 0.3 + 0.15);
}

TEST_F(LocalWorkspaceTest, CommandThatIgnoresSigtermIsKilled) {
  // `trap '' TERM` makes the shell and its children ignore SIGTERM; SIGKILL follows the grace.
  CommandOptions options;
  options.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto r = ws_.execute_command("trap '' TERM; echo $$; sleep 30 & echo $!; wait", options);
  const double elapsed = seconds_since(start);
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_LT(elapsed, 0.3 + 0.2 + 0.5);
  std::istringstream lines(r.std_out);
  std::string shell, child;
  ASSERT_TRUE(std::getline(lines, shell) && std::getline(lines, child)) << r.std_out;
  EXPECT_FALSE(alive(shell));
  EXPECT_FALSE(alive(child));
}

TEST_F(LocalWorkspaceTest, EscapedGrandchildDoesNotHoldTheCallPastTheDeadline) {
  // setsid puts the sleeper out of the command's process group, beyond our signals; it still
  // holds the output pipe, and the call must return anyway.
  CommandOptions options;
  options.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto r = ws_.execute_command("setsid sleep 3 & sleep 30", options);
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_LT(seconds_since(start), 0.3 + 1.0);
}

TEST_F(LocalWorkspaceTest, KilledBySignalIsReportedAsSuch) {
  auto r = ws_.execute_command("kill -KILL $$");
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL);
  EXPECT_FALSE(r.timeout_occurred);
}

TEST_F(LocalWorkspaceTest, ThrowingCallbackKillsTheCommandAndPropagates) {
  std::string seen;
  CommandOptions options;
  options.on_output = [&](workspace::OutputStream, std::string_view chunk) {
    seen.append(chunk);
    if (std::count(seen.begin(), seen.end(), '\n') >= 2) throw std::runtime_error("stop");
  };
  EXPECT_THROW(ws_.execute_command("echo $$; sleep 30 & echo $!; wait", options),
               std::runtime_error);
  std::istringstream lines(seen);
  std::string shell, child;
  ASSERT_TRUE(std::getline(lines, shell) && std::getline(lines, child)) << seen;
  EXPECT_FALSE(alive(shell));
  EXPECT_FALSE(alive(child));
}

TEST_F(LocalWorkspaceTest, LeavesNoDescriptorsOpenInTheHost) {
  ws_.execute_command("true");  // let one-time allocations happen first
  const auto before = fds_of_this_process();
  CommandOptions timeout;
  timeout.timeout = 20ms;
  for (int i = 0; i < 50; ++i) {
    ws_.execute_command("echo out; echo err >&2");
    ws_.execute_command("sleep 1", timeout);
    ws_.file_write("f", "x");
    ws_.file_read("f");
  }
  EXPECT_EQ(fds_of_this_process(), before);
}

TEST_F(LocalWorkspaceTest, ConcurrentCommandsFromManyThreads) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        const std::string word = std::to_string(t) + "-" + std::to_string(i);
        auto r = ws_.execute_command("printf %s " + word + "; printf e%s " + word + " >&2");
        if (r.std_out != word || r.std_err != "e" + word || r.exit_code != 0) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(LocalWorkspaceTest, EnvironmentInheritsOverridesAndSetsPwd) {
  ::setenv("WORKSPACE_TEST_HOST", "host", 1);
  ::setenv("WORKSPACE_TEST_OVERRIDE", "host", 1);
  CommandOptions options;
  options.env = {{"WORKSPACE_TEST_OVERRIDE", "ours"}};
  options.cwd = ".";
  auto r = ws_.execute_command(
      "printf '%s %s %s' \"$WORKSPACE_TEST_HOST\" \"$WORKSPACE_TEST_OVERRIDE\" \"$PWD\"", options);
  ::unsetenv("WORKSPACE_TEST_HOST");
  ::unsetenv("WORKSPACE_TEST_OVERRIDE");
  EXPECT_EQ(r.std_out, "host ours " + ws_.working_dir() + "/.");
}

TEST_F(LocalWorkspaceTest, NoTimeoutMeansNoDeadline) {
  CommandOptions options;
  options.timeout = workspace::no_timeout;
  auto r = ws_.execute_command("sleep 0.2; echo done", options);
  EXPECT_FALSE(r.timeout_occurred);
  EXPECT_EQ(r.std_out, "done\n");
}

TEST_F(LocalWorkspaceTest, UploadKeepsThePermissionBits) {
  const auto script = root_ / "tool.sh";
  std::ofstream(script) << "#!/bin/sh\necho ran\n";
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  ASSERT_TRUE(ws_.file_upload(script.string(), "bin/tool.sh").success);
  EXPECT_EQ(fs::status(fs::path(ws_.working_dir()) / "bin/tool.sh").permissions(),
            fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  EXPECT_EQ(ws_.execute_command("./bin/tool.sh").std_out, "ran\n");
}

TEST_F(LocalWorkspaceTest, FailedAndCancelledTransfersLeaveNothingBehind) {
  ASSERT_TRUE(ws_.file_write("dest/keep.txt", "old").success);
  const auto source = root_ / "big";
  std::ofstream(source) << std::string(3 << 20, 'x');
  workspace::TransferOptions cancel;
  cancel.on_progress = [](std::uint64_t done, std::optional<std::uint64_t>) {
    return done < (1u << 20);
  };
  EXPECT_FALSE(ws_.file_upload(source.string(), "dest/keep.txt", cancel).success);
  EXPECT_EQ(ws_.file_read("dest/keep.txt").content, "old");  // the old file is intact
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(fs::path(ws_.working_dir()) / "dest"))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"keep.txt"});
}

TEST_F(LocalWorkspaceTest, LocalPathsAreRelativeToTheProcessNotTheWorkspace) {
  const auto previous = fs::current_path();
  fs::current_path(root_);
  std::ofstream("here.txt") << "local";
  auto up = ws_.file_upload("here.txt", "there.txt");
  fs::current_path(previous);
  ASSERT_TRUE(up.success) << up.error.value_or("");
  EXPECT_EQ(up.destination_path, ws_.working_dir() + "/there.txt");
  EXPECT_EQ(ws_.file_read("there.txt").content, "local");
}

}  // namespace
