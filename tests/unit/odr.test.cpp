// Two translation units (odr_a.cpp, odr_b.cpp) that include every public header link into this
// program; and everything lives in the versioned inline namespace.
#include <workspace/testing/contract.hpp>
#include <workspace/version.hpp>

#include <gtest/gtest.h>

#include <string>

// The two translation units include the contract suite (every header) but run it on nothing.
namespace workspace::testing {
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(WorkspaceContract);
}  // namespace workspace::testing

namespace odr_a {
std::string names();
const workspace::Version& version();
}  // namespace odr_a
namespace odr_b {
std::string names();
const workspace::Version& version();
}  // namespace odr_b

namespace {

#define WORKSPACE_TEST_STRINGIFY_(x) #x
#define WORKSPACE_TEST_STRINGIFY(x) WORKSPACE_TEST_STRINGIFY_(x)

TEST(Odr, BothTranslationUnitsSeeTheSameEntities) {
  EXPECT_EQ(odr_a::names(), odr_b::names());
  // One object, not a copy per translation unit.
  EXPECT_EQ(&odr_a::version(), &odr_b::version());
  EXPECT_EQ(&odr_a::version(), &workspace::version);
}

TEST(Odr, TypesCarryTheVersionedNamespace) {
  // The mangled names hold the inline namespace, e.g. N9workspace6v0_1_013CommandResultE.
  const std::string tag = WORKSPACE_TEST_STRINGIFY(WORKSPACE_ABI_TAG);
  EXPECT_EQ(tag, "v" + std::to_string(WORKSPACE_VERSION_MAJOR) + "_" + std::to_string(WORKSPACE_VERSION_MINOR) + "_" +
                     std::to_string(WORKSPACE_VERSION_PATCH));
  const std::string names = odr_a::names();
  EXPECT_NE(names.find(std::to_string(tag.size()) + tag + "13CommandResult"), std::string::npos) << names;
  EXPECT_NE(names.find(tag + "17BasicAnyWorkspace"), std::string::npos) << names;
}

TEST(Odr, VersionMatchesTheMacros) {
  EXPECT_EQ(workspace::version.major, WORKSPACE_VERSION_MAJOR);
  EXPECT_EQ(workspace::version.minor, WORKSPACE_VERSION_MINOR);
  EXPECT_EQ(workspace::version.patch, WORKSPACE_VERSION_PATCH);
  EXPECT_EQ(std::string(WORKSPACE_VERSION_STRING), std::to_string(WORKSPACE_VERSION_MAJOR) + "." +
                                                       std::to_string(WORKSPACE_VERSION_MINOR) + "." +
                                                       std::to_string(WORKSPACE_VERSION_PATCH));
}

}  // namespace
