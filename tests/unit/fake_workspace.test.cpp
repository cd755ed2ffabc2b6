// FakeWorkspace as a user would use it: scripting, recorded calls, its file system, pausing,
// and a piece of "user code" written against the concept and tested with the fake.
#include <workspace/testing/fake_workspace.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using workspace::CommandOptions;
using workspace::testing::FakeCall;
using workspace::testing::FakeResponse;
using workspace::testing::FakeWorkspace;

// User code: builds a project and collects its report, written against the concept only.
template <workspace::Workspace W>
std::string build_and_report(W& ws) {
  CommandOptions options;
  options.cwd = "project";
  options.timeout = 60s;
  auto build = ws.execute_command("make -j2", options);
  if (build.timeout_occurred) return "build timed out";
  if (!build.ok()) return "build failed: " + build.std_err;
  auto report = ws.file_read("project/report.txt");
  return report.success ? report.content : "no report";
}

TEST(FakeWorkspace, DrivesUserCodeThroughEveryBranch) {
  FakeWorkspace ws("/work");
  ws.add_directory("project");
  ws.on("make -j2", FakeResponse{.std_out = "ok\n"});
  EXPECT_EQ(build_and_report(ws), "no report");
  ASSERT_TRUE(ws.file_write("project/report.txt", "all green").success);
  EXPECT_EQ(build_and_report(ws), "all green");
  ws.on("make -j2", FakeResponse{.std_err = "cc: error\n", .exit_code = 2});
  EXPECT_EQ(build_and_report(ws), "build failed: cc: error\n");
  ws.on("make -j2", FakeResponse{.duration = 2min});
  EXPECT_EQ(build_and_report(ws), "build timed out");

  auto calls = ws.calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].command, "make -j2");
  EXPECT_EQ(calls[0].cwd, "/work/project");
  EXPECT_EQ(calls[0].timeout, 60s);
}

TEST(FakeWorkspace, UnscriptedCommandsFailLikeAMissingProgram) {
  FakeWorkspace ws;
  auto r = ws.execute_command("frobnicate");
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.std_err.find("frobnicate"), std::string::npos);
  ws.otherwise([](const FakeCall& call) { return FakeResponse{.std_out = "echo:" + call.command}; });
  EXPECT_EQ(ws.execute_command("anything").std_out, "echo:anything");
}

TEST(FakeWorkspace, HandlersSeeCwdEnvironmentAndTimeout) {
  FakeWorkspace ws("/w");
  ws.add_directory("/tmp/x");
  FakeCall seen;
  ws.on("probe", [&](const FakeCall& call) {
    seen = call;
    return FakeResponse{};
  });
  CommandOptions options;
  options.cwd = "/tmp/x/../x/.";
  options.env = {{"K", "V"}};
  options.timeout = 1500ms;
  ws.execute_command("probe", options);
  EXPECT_EQ(seen.cwd, "/tmp/x");
  EXPECT_EQ(seen.env.at("K"), "V");
  EXPECT_EQ(seen.timeout, 1500ms);
}

TEST(FakeWorkspace, TimeoutsAreSimulatedWithoutWaiting) {
  FakeWorkspace ws;
  ws.on("slow", FakeResponse{.std_out = "partial", .duration = 1h});
  CommandOptions options;
  options.timeout = 10s;
  const auto start = std::chrono::steady_clock::now();
  auto r = ws.execute_command("slow", options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(r.timeout_occurred);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.std_out, "partial");
  options.timeout = workspace::no_timeout;
  EXPECT_FALSE(ws.execute_command("slow", options).timeout_occurred);
}

TEST(FakeWorkspace, FileSystemNormalisesPaths) {
  FakeWorkspace ws("/home/u");
  ASSERT_TRUE(ws.file_write("a/./b/../c.txt", "x").success);
  EXPECT_EQ(ws.file("/home/u/a/c.txt"), "x");
  EXPECT_TRUE(ws.is_directory("/home/u/a"));
  EXPECT_TRUE(ws.is_directory("/"));
  EXPECT_FALSE(ws.file("a/b/c.txt"));
  EXPECT_EQ(ws.file_read("/home/u/a/c.txt").path, "/home/u/a/c.txt");
}

TEST(FakeWorkspace, PausedWorkspaceRefusesCommands) {
  static_assert(workspace::Pausable<FakeWorkspace>);
  FakeWorkspace ws;
  ws.on("true", FakeResponse{});
  ws.pause();
  EXPECT_TRUE(ws.paused());
  try {
    ws.execute_command("true");
    FAIL();
  } catch (const workspace::Error& e) {
    EXPECT_EQ(e.code(), workspace::errc::bad_state);
  }
  ws.resume();
  EXPECT_EQ(ws.execute_command("true").exit_code, 0);
}

TEST(FakeWorkspace, SafeToUseFromManyThreads) {
  FakeWorkspace ws;
  ws.otherwise([](const FakeCall& call) { return FakeResponse{.std_out = call.command}; });
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string id = std::to_string(t) + "/" + std::to_string(i);
        if (ws.execute_command(id).std_out != id) ++wrong;
        if (!ws.file_write(id, id).success || ws.file_read(id).content != id) ++wrong;
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ws.calls().size(), 8u * 200u);
}

}  // namespace
