// The contract suite on LocalWorkspace. The contract header comes first: it must be
// self-contained.
#include <workspace/testing/contract.hpp>

#include <workspace/local.hpp>

namespace workspace::testing {

template <>
struct ContractTraits<LocalWorkspace> {
  static LocalWorkspace make() {
    static std::atomic<int> counter{0};
    auto dir = contract::process_scratch("workspace-local") / std::to_string(counter.fetch_add(1));
    std::filesystem::remove_all(dir);
    return LocalWorkspace(dir);
  }
  static constexpr bool runs_shell = true;
  static constexpr std::chrono::milliseconds timeout_grace{1000};
};

INSTANTIATE_TYPED_TEST_SUITE_P(Local, WorkspaceContract, ::testing::Types<LocalWorkspace>);

}  // namespace workspace::testing

// The same suite through the asynchronous API (pipes and pidfd watched by an executor).
#include <workspace/testing/through_async.hpp>
namespace workspace::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(LocalAsync, WorkspaceContract, ::testing::Types<ThroughAsync<LocalWorkspace>>);
}  // namespace workspace::testing
