// FakeWorkspace: a Workspace for testing code written against the concept.
//
// Commands are answered from a script (exact command -> response or handler) and every call is
// recorded. The workspace side is an in-memory file system; the local side of uploads and
// downloads is the real one. It keeps the contract that real workspaces keep, so that tests of
// user code see realistic behaviour:
//  - the same argument checks (a NUL in the command, a bad environment name, a non-positive
//    timeout are Errors);
//  - cwd resolves against working_dir and must name a directory of the fake file system;
//  - a response whose simulated duration exceeds the timeout comes back as a timeout (exit code
//    -1, timeout_occurred) with the output it had produced, without sleeping;
//  - output reaches the on_output callback in chunks before the call returns;
//  - file transfers fail with a result naming the path, never an exception.
// All members may be called concurrently.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/concepts.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/operations.hpp>
#include <workspace/core/results.hpp>
#include <workspace/core/detail/files.hpp>
#include <workspace/version.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace testing {

// What a scripted command does.
struct FakeResponse {
  std::string std_out{};
  std::string std_err{};
  int exit_code{0};
  int signal{0};                           // non-zero: the command died by this signal
  std::chrono::milliseconds duration{0};  // simulated run time, compared with the timeout
};

// One recorded execute_command call, as the workspace understood it.
struct FakeCall {
  std::string command{};
  std::string cwd{};  // resolved against working_dir
  std::map<std::string, std::string> env{};
  std::chrono::milliseconds timeout{};
};

namespace detail {
// Lexically normalises an absolute POSIX path ("a/./b/../c" -> "a/c"; ".." stops at "/").
inline std::string normalize_absolute(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view part = path.substr(pos, next - pos);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    pos = next + 1;
  }
  std::string out;
  for (auto part : parts) {
    out += '/';
    out += part;
  }
  return out.empty() ? std::string("/") : out;
}

inline std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
}
}  // namespace detail

class FakeWorkspace : public AsyncOperations<FakeWorkspace> {
 public:
  using Handler = std::function<FakeResponse(const FakeCall&)>;

  explicit FakeWorkspace(std::string working_dir = "/workspace")
      : working_dir_(detail::normalize_absolute(
            workspace::detail::resolve_workspace_path("/", working_dir))) {
    make_directories(working_dir_);
    otherwise_ = [](const FakeCall& call) {
      FakeResponse response;
      response.exit_code = 127;
      response.std_err = "fake: no response scripted for: " + call.command + "\n";
      return response;
    };
  }

  const std::string& working_dir() const noexcept { return working_dir_; }

  // --- scripting -------------------------------------------------------------------------

  // Answers `command` (matched exactly) with `response`; a later script for the same command
  // replaces an earlier one.
  FakeWorkspace& on(const std::string& command, FakeResponse response) {
    return on(command, Handler([response = std::move(response)](const FakeCall&) {
      return response;
    }));
  }
  FakeWorkspace& on(const std::string& command, Handler handler) {
    std::lock_guard lock(mutex_);
    scripts_[command] = std::move(handler);
    return *this;
  }
  // Answers every command without a script (by default: exit 127 and a message on stderr).
  FakeWorkspace& otherwise(Handler handler) {
    std::lock_guard lock(mutex_);
    otherwise_ = std::move(handler);
    return *this;
  }

  std::vector<FakeCall> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

  // --- the in-memory file system ---------------------------------------------------------

  void add_directory(const std::string& path) {
    std::lock_guard lock(mutex_);
    make_directories(resolve(path));
  }
  // The content of a workspace file, if it exists.
  std::optional<std::string> file(const std::string& path) const {
    std::lock_guard lock(mutex_);
    auto it = files_.find(resolve(path));
    return it == files_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  bool is_directory(const std::string& path) const {
    std::lock_guard lock(mutex_);
    return directories_.count(resolve(path)) != 0;
  }

  // --- Workspace --------------------------------------------------------------------------

  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    workspace::detail::validate_command(command, options);
    FakeCall call{command, options.cwd ? resolve(*options.cwd) : working_dir_, options.env,
                  options.timeout};
    Handler handler;
    {
      std::lock_guard lock(mutex_);
      if (paused_)
        throw Error(errc::bad_state, "execute_command: the workspace is paused");
      if (directories_.count(call.cwd) == 0)
        throw Error(files_.count(call.cwd) != 0 ? errc::invalid_argument : errc::not_found,
                    "execute_command: working directory " + workspace::detail::quote(call.cwd) +
                        (files_.count(call.cwd) != 0 ? " is not a directory"
                                                     : " does not exist"));
      calls_.push_back(call);
      auto it = scripts_.find(command);
      handler = it != scripts_.end() ? it->second : otherwise_;
    }
    FakeResponse response = handler(call);

    CommandResult result;
    result.command = command;
    result.std_out = std::move(response.std_out);
    result.std_err = std::move(response.std_err);
    if (options.on_output) {
      deliver(options.on_output, OutputStream::std_out, result.std_out);
      deliver(options.on_output, OutputStream::std_err, result.std_err);
    }
    if (options.timeout != no_timeout && response.duration > options.timeout) {
      result.timeout_occurred = true;
      result.exit_code = -1;
    } else if (response.signal != 0) {
      result.signal = response.signal;
      result.exit_code = 128 + response.signal;
    } else {
      result.exit_code = response.exit_code;
    }
    return result;
  }

  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) {
    const std::string destination = resolve_or_empty(workspace_path);
    FileReadResult source = workspace::detail::read_file(local_path);
    if (!source.success)
      return workspace::detail::transfer_failure(local_path, destination, *source.error);
    if (auto cancelled = report_progress(options, source.content.size(), local_path))
      return workspace::detail::transfer_failure(local_path, destination, *cancelled);
    FileOperationResult stored = store(destination, source.content);
    stored.source_path = local_path;
    return stored;
  }

  FileOperationResult file_download(const std::string& workspace_path,
                                    const std::string& local_path,
                                    const TransferOptions& options = {}) {
    FileReadResult source = file_read(workspace_path);
    if (!source.success)
      return workspace::detail::transfer_failure(source.path, local_path, *source.error);
    if (auto cancelled = report_progress(options, source.content.size(), source.path))
      return workspace::detail::transfer_failure(source.path, local_path, *cancelled);
    FileOperationResult written = workspace::detail::write_file(local_path, source.content);
    written.source_path = source.path;
    return written;
  }

  FileOperationResult file_write(const std::string& workspace_path, std::string_view content) {
    return store(resolve_or_empty(workspace_path), content);
  }

  FileReadResult file_read(const std::string& workspace_path) {
    FileReadResult result;
    result.path = resolve_or_empty(workspace_path);
    std::lock_guard lock(mutex_);
    if (result.path.empty()) {
      result.error = "the source path is empty";
    } else if (auto it = files_.find(result.path); it != files_.end()) {
      result.success = true;
      result.content = it->second;
    } else if (directories_.count(result.path) != 0) {
      result.error = "cannot read " + workspace::detail::quote(result.path) + ": it is a directory";
    } else {
      result.error =
          "cannot read " + workspace::detail::quote(result.path) + ": No such file or directory";
    }
    return result;
  }

  // --- AsyncWorkspace: the same answers through any completion token, on the executor given
  // here (none: the completion handler's).

  void set_executor(asio::any_io_executor executor) { executor_ = std::move(executor); }
  const asio::any_io_executor& get_executor() const noexcept { return executor_; }

  Task<CommandResult> co_execute_command(std::string command, CommandOptions options) {
    co_return execute_command(command, options);
  }
  Task<FileOperationResult> co_file_upload(std::string local_path, std::string workspace_path, TransferOptions options) {
    co_return file_upload(local_path, workspace_path, options);
  }
  Task<FileOperationResult> co_file_download(std::string workspace_path, std::string local_path, TransferOptions options) {
    co_return file_download(workspace_path, local_path, options);
  }
  Task<FileOperationResult> co_file_write(std::string workspace_path, std::string content) {
    co_return file_write(workspace_path, content);
  }
  Task<FileReadResult> co_file_read(std::string workspace_path) { co_return file_read(workspace_path); }

  // --- Pausable ---------------------------------------------------------------------------

  void pause() {
    std::lock_guard lock(mutex_);
    paused_ = true;
  }
  void resume() {
    std::lock_guard lock(mutex_);
    paused_ = false;
  }
  bool paused() const {
    std::lock_guard lock(mutex_);
    return paused_;
  }

 private:
  std::string resolve(const std::string& path) const {
    return detail::normalize_absolute(
        workspace::detail::resolve_workspace_path(working_dir_, path));
  }
  std::string resolve_or_empty(const std::string& path) const {
    return path.empty() ? std::string() : resolve(path);
  }

  // Requires the lock.
  void make_directories(const std::string& path) {
    for (std::string dir = path; directories_.insert(dir).second && dir != "/";)
      dir = detail::parent_of(dir);
  }

  FileOperationResult store(const std::string& destination, std::string_view content) {
    using workspace::detail::quote;
    using workspace::detail::transfer_failure;
    if (destination.empty()) return transfer_failure("", destination, "the destination path is empty");
    std::lock_guard lock(mutex_);
    if (directories_.count(destination) != 0)
      return transfer_failure("", destination,
                              "destination " + quote(destination) + " is a directory");
    for (std::string dir = detail::parent_of(destination);; dir = detail::parent_of(dir)) {
      if (files_.count(dir) != 0)
        return transfer_failure("", destination,
                                "cannot create folder " + quote(dir) + " for " +
                                    quote(destination) + ": Not a directory");
      if (dir == "/") break;
    }
    make_directories(detail::parent_of(destination));
    files_[destination] = std::string(content);
    FileOperationResult result;
    result.success = true;
    result.destination_path = destination;
    result.file_size = content.size();
    return result;
  }

  // Reports progress in 1 MiB steps; returns an error text if the caller cancelled.
  static std::optional<std::string> report_progress(const TransferOptions& options,
                                                    std::uint64_t total,
                                                    const std::string& source) {
    if (!options.on_progress) return std::nullopt;
    constexpr std::uint64_t step = 1 << 20;
    for (std::uint64_t done = std::min(step, total);; done = std::min(done + step, total)) {
      if (!options.on_progress(done, total))
        return "transfer of " + workspace::detail::quote(source) + " cancelled by the caller";
      if (done == total) return std::nullopt;
    }
  }

  static void deliver(const std::function<void(OutputStream, std::string_view)>& on_output,
                      OutputStream stream, std::string_view data) {
    constexpr std::size_t chunk = 64 * 1024;
    for (std::size_t pos = 0; pos < data.size(); pos += chunk)
      on_output(stream, data.substr(pos, chunk));
  }

  mutable std::mutex mutex_;
  asio::any_io_executor executor_;
  std::string working_dir_;
  std::map<std::string, Handler> scripts_;
  Handler otherwise_;
  std::vector<FakeCall> calls_;
  std::map<std::string, std::string> files_;
  std::set<std::string> directories_;
  bool paused_ = false;
};

static_assert(AsyncWorkspace<FakeWorkspace>);
static_assert(Pausable<FakeWorkspace>);

}  // namespace testing
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
