// The contract every workspace type keeps, as GoogleTest type-parameterised tests.
//
// To run it on a workspace type W, specialise workspace::testing::ContractTraits<W> and add one
// line to a test file:
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(Mine, WorkspaceContract, ::testing::Types<MyWorkspace>);
//
// ContractTraits<W> provides:
//   static W make();                                   // a fresh workspace for one test
//   static constexpr bool runs_shell;                  // commands run in a real POSIX shell
//   static constexpr std::chrono::milliseconds timeout_grace;  // how late a timed-out call
//                                                              // may return
//   static void script(W&, const std::string& command, FakeWorkspace::Handler);
//                                                      // only when !runs_shell: teach a
//                                                      // scripted workspace what `command` does
//   static W make_non_root();                          // optional: a workspace whose commands
//                                                      // run as a user other than root, for
//                                                      // the ownership tests
//
// Every command test states the command and what it must do. A shell workspace runs it; a
// scripted one is taught the same outcome through script(), so the suite checks that it carries
// that outcome faithfully (bytes, streams, timeouts, callbacks, cwd and environment handling).
// This header needs GoogleTest; it is not part of the library's own dependencies.
#pragma once

#include <gtest/gtest.h>

#include <workspace/core.hpp>
#include <workspace/testing/fake_workspace.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

WORKSPACE_NAMESPACE_BEGIN
namespace testing {

template <class W>
struct ContractTraits;  // specialise for each workspace type

template <>
struct ContractTraits<FakeWorkspace> {
  static FakeWorkspace make() { return FakeWorkspace("/home/user/project"); }
  static constexpr bool runs_shell = false;
  static constexpr std::chrono::milliseconds timeout_grace{250};
  static void script(FakeWorkspace& w, const std::string& command, FakeWorkspace::Handler h) {
    w.on(command, std::move(h));
  }
};

namespace contract {

// A folder on the local side for sources and destinations of transfers, removed afterwards.
class LocalScratch {
 public:
  LocalScratch() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("workspace-contract-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter.fetch_add(1)));
    std::filesystem::create_directories(path_);
  }
  ~LocalScratch() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  LocalScratch(const LocalScratch&) = delete;
  LocalScratch& operator=(const LocalScratch&) = delete;

  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A folder of this process under the temporary directory, removed with all in it when the
// process ends: where a ContractTraits<W>::make() of a local kind puts its working dirs, so that
// the suite leaves nothing behind.
inline std::filesystem::path process_scratch(const std::string& prefix) {
  struct Root {
    std::filesystem::path path;
    ~Root() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Root root{std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()))};
  return root.path;
}

inline void write_local(const std::string& path, const std::string& content) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

inline std::string read_local(const std::string& path) {
  return workspace::detail::read_file(path).content;
}

inline std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 engine(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(engine() & 0xff);
  return out;
}

// What `yes <line> | head -c <size>` prints.
inline std::string repeated_lines(const std::string& line, std::size_t size) {
  std::string out;
  out.reserve(size + line.size() + 1);
  while (out.size() < size) {
    out += line;
    out += '\n';
  }
  out.resize(size);
  return out;
}

inline FakeWorkspace::Handler respond(FakeResponse response) {
  return [response = std::move(response)](const FakeCall&) { return response; };
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace contract

template <class W>
class WorkspaceContract : public ::testing::Test {
 protected:
  using Traits = ContractTraits<W>;
  static constexpr bool runs_shell = Traits::runs_shell;

  WorkspaceContract() : ws_(Traits::make()) {}

  // Runs `command`, first teaching a scripted workspace what it does.
  CommandResult run(const std::string& command, FakeWorkspace::Handler does,
                    const CommandOptions& options = {}) {
    if constexpr (!runs_shell) Traits::script(ws_, command, std::move(does));
    return ws_.execute_command(command, options);
  }
  CommandResult run(const std::string& command, FakeResponse does,
                    const CommandOptions& options = {}) {
    return run(command, contract::respond(std::move(does)), options);
  }

  // The workspace path a relative path resolves to.
  std::string in_working_dir(const std::string& relative) const {
    std::string dir(ws_.working_dir());
    return dir == "/" ? "/" + relative : dir + "/" + relative;
  }

  // Pids of processes still alive (not zombies) among `pids`, asked inside the workspace and
  // retried for a while: killed processes take a moment to be reaped.
  std::string alive_among(const std::vector<std::string>& pids) {
    std::string list;
    for (const auto& pid : pids) list += pid + " ";
    const std::string probe =
        "for p in " + list +
        "; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); case \"$s\" in ''|Z|X) ;; "
        "*) printf '%s ' $p;; esac; done";
    std::string alive;
    for (int attempt = 0; attempt < 40; ++attempt) {
      alive = ws_.execute_command(probe).std_out;
      if (alive.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return alive;
  }

  // Checks, on `w`, that the commands' user can write in working_dir and owns what the file
  // calls wrote (and the folders they made); returns that user's uid.
  template <class Any>
  std::string expect_user_owns_its_files(Any& w) {
    auto id = w.execute_command("id -u");
    EXPECT_EQ(id.exit_code, 0) << id.std_err;
    std::string uid = id.std_out;
    while (!uid.empty() && (uid.back() == '\n' || uid.back() == '\r')) uid.pop_back();
    auto touch = w.execute_command("touch made-by-user && rm made-by-user");
    EXPECT_EQ(touch.exit_code, 0) << "the user cannot write in working_dir: " << touch.std_err;
    const std::string source = local_ / "to-upload.txt";
    contract::write_local(source, "uploaded");
    auto up = w.file_upload(source, "owned/uploaded.txt");
    EXPECT_TRUE(up.success) << up.error.value_or("");
    auto written = w.file_write("owned/new folder/written.txt", "written");
    EXPECT_TRUE(written.success) << written.error.value_or("");
    auto owners = w.execute_command(
        "stat -c %u owned/uploaded.txt 'owned/new folder/written.txt' 'owned/new folder' owned");
    EXPECT_EQ(owners.exit_code, 0) << owners.std_err;
    EXPECT_EQ(owners.std_out, uid + "\n" + uid + "\n" + uid + "\n" + uid + "\n")
        << "files written for user " << uid << " belong to someone else";
    auto inside = w.execute_command("touch 'owned/new folder/by-command' && echo x >> owned/uploaded.txt");
    EXPECT_EQ(inside.exit_code, 0) << "the user cannot write in the folders uploads made: " << inside.std_err;
    return uid;
  }

  // A timed-out call must return within the workspace's grace of its deadline.
  static void expect_prompt_return(double elapsed, std::chrono::milliseconds timeout) {
    EXPECT_LT(elapsed, std::chrono::duration<double>(timeout + Traits::timeout_grace).count())
        << "the call returned too long after its deadline";
  }

  W ws_;
  contract::LocalScratch local_;
};

TYPED_TEST_SUITE_P(WorkspaceContract);

// --- commands ------------------------------------------------------------------------------

TYPED_TEST_P(WorkspaceContract, ReportsExitCodes) {
  auto zero = this->run("true", FakeResponse{});
  EXPECT_EQ(zero.exit_code, 0);
  EXPECT_TRUE(zero.ok());
  EXPECT_EQ(zero.command, "true");
  auto three = this->run("exit 3", FakeResponse{.exit_code = 3});
  EXPECT_EQ(three.exit_code, 3);
  EXPECT_FALSE(three.ok());
  EXPECT_FALSE(three.timeout_occurred);
  EXPECT_EQ(three.signal, 0);
  auto missing = this->run("no-such-command-xyz",
                           FakeResponse{.std_err = "sh: no-such-command-xyz: not found\n",
                                        .exit_code = 127});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.std_err.find("no-such-command-xyz"), std::string::npos);
}

TYPED_TEST_P(WorkspaceContract, KeepsStdoutAndStderrApart) {
  auto r = this->run("printf out; printf err >&2; printf more",
                     FakeResponse{.std_out = "outmore", .std_err = "err"});
  EXPECT_EQ(r.std_out, "outmore");
  EXPECT_EQ(r.std_err, "err");
}

TYPED_TEST_P(WorkspaceContract, CarriesBinaryOutputWithNulBytes) {
  const std::string expected("a\0b\377c\n", 6);
  auto r = this->run("printf 'a\\000b\\377c\\n'", FakeResponse{.std_out = expected});
  EXPECT_EQ(r.std_out, expected);
  EXPECT_EQ(r.std_out.size(), 6u);
}

TYPED_TEST_P(WorkspaceContract, CarriesLargeOutputOnBothStreams) {
  const std::string line = "0123456789abcdef";
  const std::size_t out_size = 20u << 20, err_size = 5u << 20;
  const std::string out = contract::repeated_lines(line, out_size);
  const std::string err = contract::repeated_lines(line, err_size);
  std::size_t streamed_out = 0, streamed_err = 0;
  CommandOptions options;
  options.timeout = std::chrono::seconds(120);
  options.on_output = [&](OutputStream s, std::string_view chunk) {
    (s == OutputStream::std_out ? streamed_out : streamed_err) += chunk.size();
  };
  auto r = this->run("(yes " + line + " | head -c " + std::to_string(err_size) +
                         " >&2) & yes " + line + " | head -c " + std::to_string(out_size) +
                         "; wait",
                     FakeResponse{.std_out = out, .std_err = err}, options);
  EXPECT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.std_out.size(), out_size);
  ASSERT_EQ(r.std_err.size(), err_size);
  EXPECT_TRUE(r.std_out == out);  // not EXPECT_EQ: a mismatch would print 20 MB
  EXPECT_TRUE(r.std_err == err);
  EXPECT_EQ(streamed_out, out_size);
  EXPECT_EQ(streamed_err, err_size);
}

TYPED_TEST_P(WorkspaceContract, CarriesUnicode) {
  const std::string text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac";
  auto r = this->run("printf '%s' '" + text + "'", FakeResponse{.std_out = text});
  EXPECT_EQ(r.std_out, text);
}

TYPED_TEST_P(WorkspaceContract, RunsInWorkingDirByDefault) {
  auto r = this->run("pwd", [](const FakeCall& c) { return FakeResponse{.std_out = c.cwd + "\n"}; });
  EXPECT_EQ(r.std_out, std::string(this->ws_.working_dir()) + "\n");
}

TYPED_TEST_P(WorkspaceContract, ResolvesRelativeAndAbsoluteCwd) {
  ASSERT_TRUE(this->ws_.file_write("sub dir/nested/marker", "x").success);
  auto pwd = [](const FakeCall& c) { return FakeResponse{.std_out = c.cwd + "\n"}; };
  CommandOptions relative;
  relative.cwd = "sub dir/nested";
  EXPECT_EQ(this->run("pwd", pwd, relative).std_out, this->in_working_dir("sub dir/nested") + "\n");
  CommandOptions absolute;
  absolute.cwd = this->in_working_dir("sub dir");
  EXPECT_EQ(this->run("pwd", pwd, absolute).std_out, this->in_working_dir("sub dir") + "\n");
}

TYPED_TEST_P(WorkspaceContract, MissingCwdIsAnErrorNamingIt) {
  CommandOptions options;
  options.cwd = "no/such/dir";
  try {
    this->run("true", FakeResponse{}, options);
    FAIL() << "a missing cwd must be an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), errc::not_found);
  }
}

TYPED_TEST_P(WorkspaceContract, AddsEnvironmentForOneCommand) {
  CommandOptions options;
  options.env = {{"WS_FOO", "bar baz"}, {"WS_UNICODE", "\xc3\xbc"}};
  auto echo = [](const FakeCall& c) {
    auto get = [&](const char* k) {
      auto it = c.env.find(k);
      return it == c.env.end() ? std::string("unset") : it->second;
    };
    return FakeResponse{.std_out = get("WS_FOO") + "|" + get("WS_UNICODE")};
  };
  const std::string command = "printf '%s|%s' \"${WS_FOO-unset}\" \"${WS_UNICODE-unset}\"";
  EXPECT_EQ(this->run(command, echo, options).std_out, "bar baz|\xc3\xbc");
  EXPECT_EQ(this->run(command, echo).std_out, "unset|unset");
}

TYPED_TEST_P(WorkspaceContract, EnvironmentOverridesTheWorkspaces) {
  // A variable the workspace already has (HOME is set everywhere) takes the command's value.
  CommandOptions options;
  options.env = {{"HOME", "/overridden home"}};
  auto echo = [](const FakeCall& c) {
    auto it = c.env.find("HOME");
    return FakeResponse{.std_out = it == c.env.end() ? std::string("unset") : it->second};
  };
  EXPECT_EQ(this->run("printf '%s' \"${HOME-unset}\"", echo, options).std_out, "/overridden home");
}

TYPED_TEST_P(WorkspaceContract, TimeoutKillsAndReportsIt) {
  CommandOptions options;
  options.timeout = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  auto r = this->run("printf before; sleep 30",
                     FakeResponse{.std_out = "before", .duration = std::chrono::seconds(30)},
                     options);
  const double elapsed = contract::seconds_since(start);
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.std_out, "before");  // output produced before the deadline is kept
  this->expect_prompt_return(elapsed, options.timeout);
}

TYPED_TEST_P(WorkspaceContract, TimeoutKillsBackgroundChildrenToo) {
  CommandOptions options;
  options.timeout = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  auto r = this->run("echo $$; sleep 30 & echo $!; sleep 30",
                     FakeResponse{.std_out = "1\n2\n", .duration = std::chrono::seconds(30)},
                     options);
  const double elapsed = contract::seconds_since(start);
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_EQ(r.exit_code, -1);
  this->expect_prompt_return(elapsed, options.timeout);
  if constexpr (TestFixture::runs_shell) {
    std::istringstream lines(r.std_out);
    std::vector<std::string> pids;
    for (std::string pid; std::getline(lines, pid);) pids.push_back(pid);
    ASSERT_EQ(pids.size(), 2u) << r.std_out;
    EXPECT_EQ(this->alive_among(pids), "") << "processes of the timed-out command survived";
  }
}

TYPED_TEST_P(WorkspaceContract, SubSecondTimeouts) {
  CommandOptions short_timeout;
  short_timeout.timeout = std::chrono::milliseconds(150);
  auto slow = this->run("sleep 5", FakeResponse{.duration = std::chrono::seconds(5)}, short_timeout);
  EXPECT_TRUE(slow.timeout_occurred);
  CommandOptions enough;
  enough.timeout = std::chrono::milliseconds(900);
  auto fast = this->run("true", FakeResponse{}, enough);
  EXPECT_FALSE(fast.timeout_occurred);
  EXPECT_EQ(fast.exit_code, 0);
}

TYPED_TEST_P(WorkspaceContract, BackgroundJobDoesNotHoldTheCall) {
  // The shell exits at once; a background job still holding the output must not make the call
  // wait for it (nor turn it into a timeout).
  CommandOptions options;
  options.timeout = std::chrono::seconds(10);
  const auto start = std::chrono::steady_clock::now();
  auto r = this->run("sleep 3 & echo started", FakeResponse{.std_out = "started\n"}, options);
  EXPECT_LT(contract::seconds_since(start), 2.0);
  EXPECT_FALSE(r.timeout_occurred);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.std_out, "started\n");
}

TYPED_TEST_P(WorkspaceContract, BackgroundJobOutlivesTheCall) {
  // `server &` keeps running after the call returns: a job that writes a file two seconds
  // later must still be alive to write it.
  CommandOptions options;
  options.timeout = std::chrono::seconds(10);
  const auto start = std::chrono::steady_clock::now();
  auto r = this->run("(sleep 2; echo alive > background-job.txt) >/dev/null 2>&1 & echo returned",
                     FakeResponse{.std_out = "returned\n"}, options);
  EXPECT_LT(contract::seconds_since(start), 2.0);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.std_out, "returned\n");
  if constexpr (TestFixture::runs_shell) {
    EXPECT_FALSE(this->ws_.file_read("background-job.txt").success) << "the job ran before the call returned";
    FileReadResult written;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!(written = this->ws_.file_read("background-job.txt")).success &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(written.success) << "the background job did not outlive the call";
    EXPECT_EQ(written.content, "alive\n");
  }
}

TYPED_TEST_P(WorkspaceContract, NoTimeoutRunsToTheEnd) {
  CommandOptions options;
  options.timeout = no_timeout;
  auto r = this->run("sleep 1; echo done", FakeResponse{.std_out = "done\n", .duration = std::chrono::seconds(1)},
                     options);
  EXPECT_FALSE(r.timeout_occurred);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.std_out, "done\n");
}

TYPED_TEST_P(WorkspaceContract, SignalDeathIsNotATimeout) {
  auto r = this->run("kill -TERM $$", FakeResponse{.signal = 15});
  EXPECT_FALSE(r.timeout_occurred);
  EXPECT_EQ(r.signal, 15);
  EXPECT_EQ(r.exit_code, 128 + 15);
}

TYPED_TEST_P(WorkspaceContract, StreamsOutputToTheCallback) {
  std::string out, err;
  std::chrono::steady_clock::time_point first_chunk{};
  CommandOptions options;
  options.on_output = [&](OutputStream s, std::string_view chunk) {
    if (first_chunk == std::chrono::steady_clock::time_point{})
      first_chunk = std::chrono::steady_clock::now();
    (s == OutputStream::std_out ? out : err).append(chunk);
  };
  const auto start = std::chrono::steady_clock::now();
  auto r = this->run("printf first; printf oops >&2; sleep 1; printf second",
                     FakeResponse{.std_out = "firstsecond", .std_err = "oops"}, options);
  EXPECT_EQ(out, r.std_out);
  EXPECT_EQ(err, r.std_err);
  EXPECT_EQ(r.std_out, "firstsecond");
  EXPECT_EQ(r.std_err, "oops");
  if constexpr (TestFixture::runs_shell) {
    // The first chunk arrived while the command was still sleeping.
    EXPECT_LT(std::chrono::duration<double>(first_chunk - start).count(), 0.8);
  }
}

TYPED_TEST_P(WorkspaceContract, RejectsBadArguments) {
  EXPECT_THROW(this->ws_.execute_command(std::string("echo a\0b", 8)), Error);
  CommandOptions bad_env;
  bad_env.env = {{"A=B", "x"}};
  EXPECT_THROW(this->ws_.execute_command("true", bad_env), Error);
  CommandOptions empty_env;
  empty_env.env = {{"", "x"}};
  EXPECT_THROW(this->ws_.execute_command("true", empty_env), Error);
  CommandOptions zero;
  zero.timeout = std::chrono::milliseconds(0);
  try {
    this->ws_.execute_command("true", zero);
    FAIL() << "a zero timeout must be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
  }
}

// --- files ---------------------------------------------------------------------------------

TYPED_TEST_P(WorkspaceContract, UploadAndDownloadRoundTrip) {
  const std::string source = this->local_ / "in.txt", back = this->local_ / "out.txt";
  contract::write_local(source, "hello workspace\n");
  auto up = this->ws_.file_upload(source, "round/trip.txt");
  ASSERT_TRUE(up.success) << up.error.value_or("");
  EXPECT_EQ(up.file_size, 16u);
  EXPECT_EQ(up.source_path, source);
  EXPECT_EQ(up.destination_path, this->in_working_dir("round/trip.txt"));
  EXPECT_FALSE(up.error);
  auto down = this->ws_.file_download("round/trip.txt", back);
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(down.file_size, 16u);
  EXPECT_EQ(contract::read_local(back), "hello workspace\n");
}

TYPED_TEST_P(WorkspaceContract, BinaryFilesSurviveBothWays) {
  const std::string data = contract::random_bytes(3u << 20, 7);
  const std::string source = this->local_ / "bin", back = this->local_ / "bin.back";
  contract::write_local(source, data);
  ASSERT_TRUE(this->ws_.file_upload(source, "data.bin").success);
  ASSERT_TRUE(this->ws_.file_download("data.bin", back).success);
  EXPECT_TRUE(contract::read_local(back) == data);
  auto read = this->ws_.file_read("data.bin");
  ASSERT_TRUE(read.success);
  EXPECT_TRUE(read.content == data);
}

TYPED_TEST_P(WorkspaceContract, EmptyFiles) {
  const std::string source = this->local_ / "empty", back = this->local_ / "empty.back";
  contract::write_local(source, "");
  auto up = this->ws_.file_upload(source, "empty");
  ASSERT_TRUE(up.success) << up.error.value_or("");
  EXPECT_EQ(up.file_size, 0u);
  ASSERT_TRUE(this->ws_.file_download("empty", back).success);
  EXPECT_TRUE(std::filesystem::exists(back));
  EXPECT_EQ(std::filesystem::file_size(back), 0u);
  EXPECT_TRUE(this->ws_.file_write("empty2", "").success);
  auto read = this->ws_.file_read("empty2");
  EXPECT_TRUE(read.success);
  EXPECT_EQ(read.content, "");
}

TYPED_TEST_P(WorkspaceContract, PathsWithSpacesAndUnicode) {
  const std::string name = "dir with space/f\xc3\xafle \xe2\x9c\x93.txt";
  const std::string source = this->local_ / "my source.txt";
  const std::string back = this->local_ / ("back dir/" + name);
  contract::write_local(source, "spaced");
  ASSERT_TRUE(this->ws_.file_upload(source, name).success);
  auto down = this->ws_.file_download(name, back);
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(contract::read_local(back), "spaced");
}

TYPED_TEST_P(WorkspaceContract, CreatesParentFoldersBothWays) {
  ASSERT_TRUE(this->ws_.file_write("a/b/c/d.txt", "deep").success);
  EXPECT_EQ(this->ws_.file_read(this->in_working_dir("a/b/c/d.txt")).content, "deep");
  const std::string back = this->local_ / "x/y/z/d.txt";
  ASSERT_TRUE(this->ws_.file_download("a/b/c/d.txt", back).success);
  EXPECT_EQ(contract::read_local(back), "deep");
}

TYPED_TEST_P(WorkspaceContract, OverwritesWholeFiles) {
  ASSERT_TRUE(this->ws_.file_write("over.txt", "a much longer first version").success);
  ASSERT_TRUE(this->ws_.file_write("over.txt", "short").success);
  EXPECT_EQ(this->ws_.file_read("over.txt").content, "short");
}

TYPED_TEST_P(WorkspaceContract, InMemoryRoundTrip) {
  const std::string data = contract::random_bytes(100000, 11) + std::string("\0end", 4);
  auto written = this->ws_.file_write("mem/blob", data);
  ASSERT_TRUE(written.success) << written.error.value_or("");
  EXPECT_EQ(written.file_size, data.size());
  EXPECT_EQ(written.destination_path, this->in_working_dir("mem/blob"));
  auto read = this->ws_.file_read("mem/blob");
  ASSERT_TRUE(read.success) << read.error.value_or("");
  EXPECT_EQ(read.path, this->in_working_dir("mem/blob"));
  EXPECT_TRUE(read.content == data);
}

TYPED_TEST_P(WorkspaceContract, ShellSeesUploadedFiles) {
  ASSERT_TRUE(this->ws_.file_write("seen/by shell.txt", "visible").success);
  auto r = this->run("cat 'seen/by shell.txt'", FakeResponse{.std_out = "visible"});
  EXPECT_EQ(r.std_out, "visible");
  if constexpr (TestFixture::runs_shell) {
    ASSERT_EQ(this->ws_.execute_command("printf made > made.txt").exit_code, 0);
    EXPECT_EQ(this->ws_.file_read("made.txt").content, "made");
  }
}

TYPED_TEST_P(WorkspaceContract, MissingSourcesFailNamingThePath) {
  auto up = this->ws_.file_upload(this->local_ / "does-not-exist", "never.txt");
  EXPECT_FALSE(up.success);
  ASSERT_TRUE(up.error);
  EXPECT_NE(up.error->find("does-not-exist"), std::string::npos) << *up.error;
  EXPECT_FALSE(this->ws_.file_read("never.txt").success);

  const std::string back = this->local_ / "never-downloaded";
  auto down = this->ws_.file_download("no-such-file.txt", back);
  EXPECT_FALSE(down.success);
  ASSERT_TRUE(down.error);
  EXPECT_NE(down.error->find("no-such-file.txt"), std::string::npos) << *down.error;
  EXPECT_FALSE(std::filesystem::exists(back));

  auto read = this->ws_.file_read("no-such-file.txt");
  EXPECT_FALSE(read.success);
  ASSERT_TRUE(read.error);
  EXPECT_NE(read.error->find("no-such-file.txt"), std::string::npos) << *read.error;
}

TYPED_TEST_P(WorkspaceContract, UnwritableDestinationsFailNamingThePath) {
  ASSERT_TRUE(this->ws_.file_write("plain-file", "x").success);
  auto under_file = this->ws_.file_write("plain-file/child.txt", "y");
  EXPECT_FALSE(under_file.success);
  ASSERT_TRUE(under_file.error);
  EXPECT_NE(under_file.error->find("plain-file"), std::string::npos) << *under_file.error;

  ASSERT_TRUE(this->ws_.file_write("a-dir/inside.txt", "x").success);
  auto onto_dir = this->ws_.file_write("a-dir", "y");
  EXPECT_FALSE(onto_dir.success);
  EXPECT_EQ(this->ws_.file_read("a-dir/inside.txt").content, "x");

  contract::write_local(this->local_ / "local-file", "x");
  auto down = this->ws_.file_download("plain-file", this->local_ / "local-file/child");
  EXPECT_FALSE(down.success);
  ASSERT_TRUE(down.error);
  EXPECT_NE(down.error->find("local-file"), std::string::npos) << *down.error;

  EXPECT_FALSE(this->ws_.file_read("a-dir").success);
  EXPECT_FALSE(this->ws_.file_write("", "x").success);
  EXPECT_FALSE(this->ws_.file_read("").success);
}

TYPED_TEST_P(WorkspaceContract, RelativeLocalPathsResolveAgainstTheProcessDirectory) {
  // Local paths are as the calling process sees them: relative ones against its current
  // directory, not against working_dir.
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(this->local_.path());
  struct Restore {
    std::filesystem::path dir;
    ~Restore() { std::filesystem::current_path(dir); }
  } restore{previous};
  contract::write_local("relative-source.txt", "relative");
  auto up = this->ws_.file_upload("relative-source.txt", "relative/uploaded.txt");
  ASSERT_TRUE(up.success) << up.error.value_or("");
  auto down = this->ws_.file_download("relative/uploaded.txt", "relative-back/downloaded.txt");
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(contract::read_local(this->local_ / "relative-back/downloaded.txt"), "relative");
}

TYPED_TEST_P(WorkspaceContract, WrittenFilesBelongToTheCommandsUser) {
  // Whoever commands run as can write in working_dir, and owns what file_write and file_upload
  // made there, parent folders included. Checked on the workspace the suite makes and, where
  // the type can run commands as a non-root user, on one that does.
  if constexpr (TestFixture::runs_shell) {
    this->expect_user_owns_its_files(this->ws_);
    if constexpr (requires { TestFixture::Traits::make_non_root(); }) {
      auto non_root = TestFixture::Traits::make_non_root();
      const std::string uid = this->expect_user_owns_its_files(non_root);
      EXPECT_NE(uid, "0") << "make_non_root() made a workspace whose commands run as root";
    }
  } else {
    ASSERT_TRUE(this->ws_.file_write("owned/by-user.txt", "mine").success);
    EXPECT_EQ(this->ws_.file_read("owned/by-user.txt").content, "mine");
  }
}

TYPED_TEST_P(WorkspaceContract, ProgressIsReportedAndCanCancel) {
  const std::string data = contract::random_bytes(5u << 20, 3);
  const std::string source = this->local_ / "progress.bin";
  contract::write_local(source, data);
  std::uint64_t last = 0;
  bool monotonic = true;
  TransferOptions watch;
  watch.on_progress = [&](std::uint64_t done, std::optional<std::uint64_t>) {
    monotonic = monotonic && done >= last;
    last = done;
    return true;
  };
  ASSERT_TRUE(this->ws_.file_upload(source, "progress.bin", watch).success);
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(last, data.size());

  TransferOptions cancel;
  cancel.on_progress = [](std::uint64_t, std::optional<std::uint64_t>) { return false; };
  auto up = this->ws_.file_upload(source, "cancelled.bin", cancel);
  EXPECT_FALSE(up.success);
  ASSERT_TRUE(up.error);
  EXPECT_NE(up.error->find("cancel"), std::string::npos) << *up.error;
  EXPECT_FALSE(this->ws_.file_read("cancelled.bin").success);

  const std::string back = this->local_ / "cancelled.back";
  auto down = this->ws_.file_download("progress.bin", back, cancel);
  EXPECT_FALSE(down.success);
  EXPECT_FALSE(std::filesystem::exists(back));
}

REGISTER_TYPED_TEST_SUITE_P(WorkspaceContract, ReportsExitCodes, KeepsStdoutAndStderrApart,
                            CarriesBinaryOutputWithNulBytes, CarriesLargeOutputOnBothStreams,
                            CarriesUnicode, RunsInWorkingDirByDefault,
                            ResolvesRelativeAndAbsoluteCwd, MissingCwdIsAnErrorNamingIt,
                            AddsEnvironmentForOneCommand, TimeoutKillsAndReportsIt,
                            TimeoutKillsBackgroundChildrenToo, SubSecondTimeouts,
                            BackgroundJobDoesNotHoldTheCall, BackgroundJobOutlivesTheCall,
                            NoTimeoutRunsToTheEnd, EnvironmentOverridesTheWorkspaces,
                            SignalDeathIsNotATimeout,
                            StreamsOutputToTheCallback, RejectsBadArguments,
                            UploadAndDownloadRoundTrip, BinaryFilesSurviveBothWays, EmptyFiles,
                            PathsWithSpacesAndUnicode, CreatesParentFoldersBothWays,
                            OverwritesWholeFiles, InMemoryRoundTrip, ShellSeesUploadedFiles,
                            MissingSourcesFailNamingThePath,
                            UnwritableDestinationsFailNamingThePath,
                            RelativeLocalPathsResolveAgainstTheProcessDirectory,
                            WrittenFilesBelongToTheCommandsUser, ProgressIsReportedAndCanCancel);

}  // namespace testing
WORKSPACE_NAMESPACE_END
