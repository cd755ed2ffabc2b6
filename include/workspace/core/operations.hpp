// The five operations in both forms, from one implementation: a back end writes them once as
// coroutines (co_execute_command, co_file_upload, co_file_download, co_file_write, co_file_read,
// taking their arguments by value so that the coroutine owns them) and derives from
// Operations<itself>, which gives
//  - the blocking calls of the Workspace concept, which run the coroutine to its end on the
//    calling thread, and
//  - the asynchronous calls of the AsyncWorkspace concept, which start it on the workspace's
//    executor (get_executor(); when empty, the completion handler's) with any completion token,
//    completing with (std::exception_ptr, result).
// The workspace must outlive its operations and stay where it is while they run. Operations on
// one workspace may run concurrently on one thread (or a strand); two threads never drive the
// same workspace at once.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/version.hpp>

#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN

// The asynchronous calls alone, for a type whose blocking calls are its own (LocalWorkspace's
// poll loop, FakeWorkspace's in-memory answers).
template <class Derived>
class AsyncOperations {
 public:
  template <class Token>
  auto async_execute_command(std::string command, CommandOptions options, Token&& token) {
    return start([this, command = std::move(command), options = std::move(options)]() mutable {
      return self().co_execute_command(std::move(command), std::move(options));
    }, std::forward<Token>(token));
  }
  template <class Token>
  auto async_execute_command(std::string command, Token&& token) {
    return async_execute_command(std::move(command), CommandOptions{}, std::forward<Token>(token));
  }
  template <class Token>
  auto async_file_upload(std::string local_path, std::string workspace_path, TransferOptions options, Token&& token) {
    return start([this, local_path = std::move(local_path), workspace_path = std::move(workspace_path),
                  options = std::move(options)]() mutable {
      return self().co_file_upload(std::move(local_path), std::move(workspace_path), std::move(options));
    }, std::forward<Token>(token));
  }
  template <class Token>
  auto async_file_download(std::string workspace_path, std::string local_path, TransferOptions options, Token&& token) {
    return start([this, workspace_path = std::move(workspace_path), local_path = std::move(local_path),
                  options = std::move(options)]() mutable {
      return self().co_file_download(std::move(workspace_path), std::move(local_path), std::move(options));
    }, std::forward<Token>(token));
  }
  template <class Token>
  auto async_file_write(std::string workspace_path, std::string content, Token&& token) {
    return start([this, workspace_path = std::move(workspace_path), content = std::move(content)]() mutable {
      return self().co_file_write(std::move(workspace_path), std::move(content));
    }, std::forward<Token>(token));
  }
  template <class Token>
  auto async_file_read(std::string workspace_path, Token&& token) {
    return start([this, workspace_path = std::move(workspace_path)]() mutable {
      return self().co_file_read(std::move(workspace_path));
    }, std::forward<Token>(token));
  }

 protected:
  AsyncOperations() = default;

  template <class Make, class Token>
  auto start(Make&& make, Token&& token) {
    return workspace::detail::async_run(self().get_executor(), std::forward<Make>(make), std::forward<Token>(token));
  }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

// Both forms.
template <class Derived>
class Operations : public AsyncOperations<Derived> {
 public:
  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    return blocking([&] { return self().co_execute_command(command, options); });
  }
  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) {
    return blocking([&] { return self().co_file_upload(local_path, workspace_path, options); });
  }
  FileOperationResult file_download(const std::string& workspace_path, const std::string& local_path,
                                    const TransferOptions& options = {}) {
    return blocking([&] { return self().co_file_download(workspace_path, local_path, options); });
  }
  FileOperationResult file_write(const std::string& workspace_path, std::string_view content) {
    return blocking([&] { return self().co_file_write(workspace_path, std::string(content)); });
  }
  FileReadResult file_read(const std::string& workspace_path) {
    return blocking([&] { return self().co_file_read(workspace_path); });
  }

 protected:
  Operations() = default;

  template <class Make>
  static auto blocking(Make&& make) {
    return workspace::detail::run_blocking(std::forward<Make>(make));
  }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

WORKSPACE_NAMESPACE_END
