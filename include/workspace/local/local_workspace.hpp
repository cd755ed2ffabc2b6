// LocalWorkspace: commands and files on this machine.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/core/detail/files.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/local/detail/process.hpp>
#include <workspace/local/detail/process_async.hpp>
#include <workspace/version.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN

struct LocalWorkspaceOptions {
  // On timeout the command's process group gets SIGTERM, and SIGKILL this long after.
  std::chrono::milliseconds kill_after{200};
};

// Runs commands with /bin/sh -c on this machine, each in a process group of its own, and copies
// files. Workspace paths (cwd, upload destinations, download sources) resolve against
// working_dir; local paths as the calling process sees them.
//
// Thread safety: calls on one LocalWorkspace may run concurrently from several threads.
// The host program must not reap children it did not start (waitpid(-1, ...)), or exit codes
// cannot be read.
class LocalWorkspace : public AsyncOperations<LocalWorkspace> {
 public:
  // Creates working_dir (and its parents) when it does not exist; it is made absolute against
  // the current directory now, so a later chdir of the process does not move the workspace.
  explicit LocalWorkspace(const std::filesystem::path& working_dir,
                          LocalWorkspaceOptions options = {})
      : options_(options) {
    namespace fs = std::filesystem;
    if (working_dir.empty())
      throw Error(errc::invalid_argument, "LocalWorkspace: working_dir is empty");
    std::error_code ec;
    fs::path absolute = fs::absolute(working_dir, ec).lexically_normal();
    if (ec)
      throw Error(ec, "LocalWorkspace: cannot resolve working_dir " +
                          detail::quote(working_dir.string()));
    fs::create_directories(absolute, ec);
    if (ec || !fs::is_directory(absolute))
      throw Error(ec ? ec : std::make_error_code(std::errc::not_a_directory),
                  "LocalWorkspace: cannot use working_dir " + detail::quote(absolute.string()));
    working_dir_ = absolute.string();
    if (working_dir_.size() > 1 && working_dir_.back() == '/') working_dir_.pop_back();
  }

  const std::string& working_dir() const noexcept { return working_dir_; }

  CommandResult execute_command(const std::string& command,
                                const CommandOptions& options = {}) const {
    detail::validate_command(command, options);
    std::string cwd = options.cwd ? resolve(*options.cwd) : working_dir_;
    detail::ProcessTimings timings;
    timings.term_grace = options_.kill_after;
    return detail::run_shell_command(command, cwd, options, timings);
  }

  // --- asynchronous: the command waits on its pipes and pidfd through the executor (set_executor,
  // else each operation's completion handler's); files are copied on it directly.
  void set_executor(asio::any_io_executor executor) { executor_ = std::move(executor); }
  const asio::any_io_executor& get_executor() const noexcept { return executor_; }

  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) const {
    detail::validate_command(command, options);
    std::string cwd = options.cwd ? resolve(*options.cwd) : working_dir_;
    detail::ProcessTimings timings;
    timings.term_grace = options_.kill_after;
    co_return co_await detail::co_run_shell_command(std::move(command), std::move(cwd), std::move(options), timings);
  }
  Task<FileOperationResult> co_file_upload(std::string local_path, std::string workspace_path, TransferOptions options) const {
    co_return file_upload(local_path, workspace_path, options);
  }
  Task<FileOperationResult> co_file_download(std::string workspace_path, std::string local_path, TransferOptions options) const {
    co_return file_download(workspace_path, local_path, options);
  }
  Task<FileOperationResult> co_file_write(std::string workspace_path, std::string content) const {
    co_return file_write(workspace_path, content);
  }
  Task<FileReadResult> co_file_read(std::string workspace_path) const { co_return file_read(workspace_path); }

  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) const {
    return named("file_upload", detail::copy_file(local_path, resolve(workspace_path), options));
  }

  FileOperationResult file_download(const std::string& workspace_path,
                                    const std::string& local_path,
                                    const TransferOptions& options = {}) const {
    return named("file_download", detail::copy_file(resolve(workspace_path), local_path, options));
  }

  FileOperationResult file_write(const std::string& workspace_path,
                                 std::string_view content) const {
    return named("file_write", detail::write_file(resolve(workspace_path), content));
  }

  FileReadResult file_read(const std::string& workspace_path) const {
    auto result = detail::read_file(resolve(workspace_path));
    if (result.error) result.error = "file_read: " + *result.error;
    return result;
  }

 private:
  std::string resolve(const std::string& path) const {
    if (path.empty()) return path;  // an empty path is reported as such, not as working_dir
    return detail::resolve_workspace_path(working_dir_, path);
  }

  // Errors start with the operation, as every workspace's do; the text after it names the path.
  static FileOperationResult named(const char* operation, FileOperationResult result) {
    if (result.error) result.error = std::string(operation) + ": " + *result.error;
    return result;
  }

  std::string working_dir_;
  LocalWorkspaceOptions options_;
  asio::any_io_executor executor_;
};

static_assert(AsyncWorkspace<LocalWorkspace>);

WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
