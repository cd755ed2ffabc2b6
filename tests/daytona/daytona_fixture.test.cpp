// CTest's setup and cleanup around the DaytonaWorkspace tests (a fixture, see
// tests/CMakeLists.txt), in an executable of its own so that they never run among those tests.
#include "../support/daytona_server.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace ts = workspace_test;

// Run by CTest before every Daytona test (FIXTURES_SETUP, see tests/CMakeLists.txt): zeroes the
// server's counters, so the cleanup test below sees this run's requests only.
TEST(DaytonaFixture, Reset) {
  ts::daytona_test_reset();
  const auto stats = ts::daytona_test_stats();
  EXPECT_EQ(stats.value("rejected", -1), 0) << stats.dump(2);
}

// Run by CTest after every Daytona test (FIXTURES_CLEANUP): every request the suite sent
// validated against the specs, every answer of the server did too, and no sandbox is left.
TEST(DaytonaFixture, EveryRequestValidatedAndNoSandboxIsLeft) {
  nlohmann::json ours;
  EXPECT_TRUE(ts::daytona_eventually(
      [&] {
        ours = ts::daytona_sandboxes_with({{ts::daytona_run_label, ts::daytona_run_id()}});
        return ours.empty();
      },
      std::chrono::seconds(60)))
      << "sandboxes of this run left behind: " << ours.dump(2);
  nlohmann::json stats;
  ts::daytona_eventually(
      [&] {
        stats = ts::daytona_test_stats();
        return stats.value("sandboxes_alive", -1) == 0;
      },
      std::chrono::seconds(60));
  EXPECT_GT(stats.value("validated", 0), 0) << "no request reached the server: " << stats.dump(2);
  EXPECT_EQ(stats.value("rejected", -1), 0) << "requests that do not validate against the specs:\n"
                                            << stats["rejections"].dump(2);
  EXPECT_EQ(stats.value("response_violations", -1), 0) << "answers of the test server that violate the specs:\n"
                                                       << stats["response_violation_list"].dump(2);
  EXPECT_EQ(stats.value("sandboxes_alive", -1), 0) << "sandboxes left: " << stats.dump(2);
  RecordProperty("validated", std::to_string(stats.value("validated", 0)));
}
