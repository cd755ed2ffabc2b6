// Run by CTest after every APIRemoteWorkspace test (FIXTURES_CLEANUP, see tests/CMakeLists.txt),
// from an executable of its own so that it never runs among them: stops the contract suite's
// shared runtime and removes the shared folders.
#include "../support/runtime_api.hpp"

#include <gtest/gtest.h>

using namespace workspace_test;

TEST(RuntimeFixture, StopsTheSharedContractRuntime) {
  const std::string session = contract_session();
  try {
    const auto found = api_call("GET", "/sessions/" + session);
    if (found.value("status", "") != "stopped")
      api_call("POST", "/stop", nlohmann::json{{"runtime_id", found.value("runtime_id", "")}});
    EXPECT_EQ(api_call("GET", "/sessions/" + session).value("status", ""), "stopped");
  } catch (const workspace::Error& e) {
    if (e.http_status() != 404) throw;  // no contract test ran: nothing to stop
  }
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(shared_folder("x")).parent_path(), ec);
}
