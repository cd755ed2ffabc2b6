// The concepts accept what they should and refuse what they should, checked with archetypes
// (minimal models) in the style of Asio's tests.
#include <workspace/core.hpp>
#include <workspace/local.hpp>
#include <workspace/testing/fake_workspace.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace workspace;

// The smallest type that models Workspace.
struct WorkspaceArchetype {
  std::string_view working_dir() const { return "/"; }
  CommandResult execute_command(const std::string&, const CommandOptions& = {}) { return {}; }
  FileOperationResult file_upload(const std::string&, const std::string&,
                                  const TransferOptions& = {}) {
    return {};
  }
  FileOperationResult file_download(const std::string&, const std::string&,
                                    const TransferOptions& = {}) {
    return {};
  }
  FileOperationResult file_write(const std::string&, std::string_view) { return {}; }
  FileReadResult file_read(const std::string&) { return {}; }
};

struct PausableArchetype : WorkspaceArchetype {
  void pause() {}
  void resume() {}
};

struct GitArchetype : WorkspaceArchetype {
  std::vector<GitChange> git_changes(const std::string&) { return {}; }
  GitDiff git_diff(const std::string&) { return {}; }
};

struct AttachableArchetype : WorkspaceArchetype {
  std::string_view id() const { return "abc"; }
  static AttachableArchetype attach(const std::string&) { return {}; }
  void detach() {}
};

// Each of these lacks or mistypes one member.
struct NoWorkingDir {
  CommandResult execute_command(const std::string&, const CommandOptions& = {});
  FileOperationResult file_upload(const std::string&, const std::string&, const TransferOptions& = {});
  FileOperationResult file_download(const std::string&, const std::string&, const TransferOptions& = {});
  FileOperationResult file_write(const std::string&, std::string_view);
  FileReadResult file_read(const std::string&);
};
struct NoUpload : WorkspaceArchetype {
  void file_upload() = delete;
};
struct NoOptionsOverload : WorkspaceArchetype {
  CommandResult execute_command(const std::string&);  // hides the options form
};
struct WrongResultType : WorkspaceArchetype {
  int execute_command(const std::string&, const CommandOptions& = {});
};
struct NoInMemoryForms {
  std::string_view working_dir() const;
  CommandResult execute_command(const std::string&, const CommandOptions& = {});
  FileOperationResult file_upload(const std::string&, const std::string&, const TransferOptions& = {});
  FileOperationResult file_download(const std::string&, const std::string&, const TransferOptions& = {});
};
struct NoProgressForm : WorkspaceArchetype {
  FileOperationResult file_download(const std::string&, const std::string&);
};

static_assert(Workspace<WorkspaceArchetype>);
static_assert(Workspace<LocalWorkspace>);
static_assert(Workspace<workspace::testing::FakeWorkspace>);
static_assert(!Workspace<NoWorkingDir>);
static_assert(!Workspace<NoUpload>);
static_assert(!Workspace<NoOptionsOverload>);
static_assert(!Workspace<WrongResultType>);
static_assert(!Workspace<NoInMemoryForms>);
static_assert(!Workspace<NoProgressForm>);
static_assert(!Workspace<int>);

static_assert(Pausable<PausableArchetype>);
static_assert(Pausable<workspace::testing::FakeWorkspace>);
static_assert(!Pausable<WorkspaceArchetype>);
static_assert(!Pausable<LocalWorkspace>);  // pausing this machine is not something we offer

static_assert(GitCapable<GitArchetype>);
static_assert(!GitCapable<WorkspaceArchetype>);
static_assert(Attachable<AttachableArchetype>);
static_assert(!Attachable<WorkspaceArchetype>);
static_assert(!Attachable<LocalWorkspace>);

// Generic code written against the concepts compiles with the archetypes.
template <Workspace W>
bool succeeded(W& w) {
  return w.execute_command("true").ok() && w.file_write("x", "y").success;
}
template <Pausable W>
void cycle(W& w) {
  w.pause();
  w.resume();
}

TEST(Concepts, GenericCodeRunsOnTheArchetypes) {
  WorkspaceArchetype plain;
  EXPECT_FALSE(succeeded(plain));  // the archetype's results are default-constructed failures
  PausableArchetype pausable;
  cycle(pausable);
}

TEST(Concepts, DefaultResultsAreFailures) {
  // A default CommandResult must not look like a success.
  EXPECT_FALSE(CommandResult{}.ok());
  EXPECT_FALSE(FileOperationResult{}.success);
  EXPECT_FALSE(FileReadResult{}.success);
}

}  // namespace
