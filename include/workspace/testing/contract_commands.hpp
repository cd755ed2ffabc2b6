// The contract suite's tests of commands. See contract.hpp.
#pragma once

#include <workspace/testing/contract_fixture.hpp>

WORKSPACE_NAMESPACE_BEGIN
namespace testing {

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

}  // namespace testing
WORKSPACE_NAMESPACE_END
