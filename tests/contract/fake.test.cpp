// The contract suite on FakeWorkspace, instantiated from outside the library's namespace to
// show that users can do the same.
#include <workspace/testing/contract.hpp>

using workspace::testing::FakeWorkspace;
using namespace workspace::testing;  // the suite's name lives there

INSTANTIATE_TYPED_TEST_SUITE_P(Fake, WorkspaceContract, ::testing::Types<FakeWorkspace>);

// The same suite through the asynchronous API.
#include <workspace/testing/through_async.hpp>
INSTANTIATE_TYPED_TEST_SUITE_P(FakeAsync, WorkspaceContract, ::testing::Types<ThroughAsync<FakeWorkspace>>);
