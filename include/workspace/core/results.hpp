// What workspace operations return.
#pragma once

#include <workspace/version.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN

// The outcome of a command that ran. The output members are std_out/std_err rather than the
// OpenHands SDK's stdout/stderr because those are macros in C: musl defines
// `#define stdout (stdout)`, which would make `result.stdout` a syntax error.
struct CommandResult {
  std::string command{};            // the command as given
  int exit_code = -1;             // exit status; -1 when the command timed out
  std::string std_out{};            // bytes, exactly as written (binary-safe)
  std::string std_err{};            // bytes, exactly as written, kept apart from std_out
  bool timeout_occurred = false;  // the command hit its timeout and was killed
  int signal = 0;                 // the signal that ended the command's shell, 0 if it exited;
                                  // exit_code is then 128 + signal, as a shell reports it

  bool ok() const noexcept { return exit_code == 0 && !timeout_occurred; }
};

// The outcome of moving a file into or out of a workspace. A transfer that could not be done
// is success == false with an error naming the path, never an exception.
struct FileOperationResult {
  bool success = false;
  std::string source_path{};
  std::string destination_path{};
  std::optional<std::uint64_t> file_size{};  // bytes written, on success
  std::optional<std::string> error{};        // why it failed, on failure
};

// The outcome of reading a workspace file into memory.
struct FileReadResult {
  bool success = false;
  std::string path{};     // the workspace path, resolved against working_dir
  std::string content{};  // the file's bytes, on success
  std::optional<std::string> error{};
};

namespace detail {
// A shell's exit status as the result holds it: a shell reports a signal death as 128 + signal,
// so codes in that range read as that signal (all a back end that only sees the status can
// tell; exit_code keeps the number).
inline void set_shell_status(CommandResult& result, int status) noexcept {
  result.exit_code = status;
  result.signal = status > 128 && status < 128 + 65 ? status - 128 : 0;
}
}  // namespace detail

// Git capability types, as the OpenHands agent server reports them.
enum class GitChangeStatus { added, deleted, updated, moved };

struct GitChange {
  GitChangeStatus status = GitChangeStatus::updated;
  std::string path{};
};

struct GitDiff {
  std::optional<std::string> modified{};  // the file now, if it exists
  std::optional<std::string> original{};  // the file at the base revision, if it existed
};

WORKSPACE_NAMESPACE_END
