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

#include <workspace/testing/contract_commands.hpp>
#include <workspace/testing/contract_files.hpp>
#include <workspace/testing/contract_fixture.hpp>

WORKSPACE_NAMESPACE_BEGIN
namespace testing {

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
