// ThroughAsync<W>: a Workspace whose every call goes through W's asynchronous API (async_*, a
// callback bound to an io_context of its own, run until the operation completes). The contract
// suite instantiated on ThroughAsync<W> runs unchanged against the asynchronous form:
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(DockerAsync, WorkspaceContract,
//                                  ::testing::Types<testing::ThroughAsync<DockerWorkspace>>);
//
// ContractTraits<ThroughAsync<W>> is ContractTraits<W> around the same workspaces.
#pragma once

#include <workspace/core/concepts.hpp>
#include <workspace/testing/contract_fixture.hpp>
#include <workspace/version.hpp>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <chrono>

WORKSPACE_NAMESPACE_BEGIN
namespace testing {

template <AsyncWorkspace W>
class ThroughAsync {
 public:
  // The workspace `make()` returns, made in place (a workspace need not be movable).
  template <class Make>
  ThroughAsync(std::in_place_t, Make&& make) : inner_(std::forward<Make>(make)()) {}

  W& inner() noexcept { return inner_; }
  std::string_view working_dir() const { return inner_.working_dir(); }

  CommandResult execute_command(const std::string& command, const CommandOptions& options = {}) {
    return drive<CommandResult>([&](auto handler) { inner_.async_execute_command(command, options, std::move(handler)); });
  }
  FileOperationResult file_upload(const std::string& local_path, const std::string& workspace_path,
                                  const TransferOptions& options = {}) {
    return drive<FileOperationResult>(
        [&](auto handler) { inner_.async_file_upload(local_path, workspace_path, options, std::move(handler)); });
  }
  FileOperationResult file_download(const std::string& workspace_path, const std::string& local_path,
                                    const TransferOptions& options = {}) {
    return drive<FileOperationResult>(
        [&](auto handler) { inner_.async_file_download(workspace_path, local_path, options, std::move(handler)); });
  }
  FileOperationResult file_write(const std::string& workspace_path, std::string_view content) {
    return drive<FileOperationResult>(
        [&](auto handler) { inner_.async_file_write(workspace_path, std::string(content), std::move(handler)); });
  }
  FileReadResult file_read(const std::string& workspace_path) {
    return drive<FileReadResult>([&](auto handler) { inner_.async_file_read(workspace_path, std::move(handler)); });
  }

 private:
  // Starts the operation with a callback bound to a fresh io_context, runs that context until
  // nothing is left (so nothing of the operation outlives the call), and returns its result.
  template <class R, class Start>
  R drive(Start&& start) {
    asio::io_context context(1);
    std::exception_ptr failure;
    std::optional<R> value;
    bool completed = false;
    start(asio::bind_executor(context, [&](std::exception_ptr e, R r) {
      completed = true;
      failure = e;
      if (!e) value.emplace(std::move(r));
    }));
    context.run();
    if (!completed) throw Error(errc::bad_state, "ThroughAsync: the operation never completed");
    if (failure) std::rethrow_exception(failure);
    return std::move(*value);
  }

  W inner_;
};

template <class W>
struct ContractTraits<ThroughAsync<W>> {
  using Inner = ContractTraits<W>;
  static ThroughAsync<W> make() { return ThroughAsync<W>(std::in_place, [] { return Inner::make(); }); }
  static constexpr bool runs_shell = Inner::runs_shell;
  static constexpr std::chrono::milliseconds timeout_grace = Inner::timeout_grace;
  template <class Handler>
  static void script(ThroughAsync<W>& w, const std::string& command, Handler h) {
    Inner::script(w.inner(), command, std::move(h));
  }
  static ThroughAsync<W> make_non_root()
    requires requires { Inner::make_non_root(); }
  {
    return ThroughAsync<W>(std::in_place, [] { return Inner::make_non_root(); });
  }
};

}  // namespace testing
WORKSPACE_NAMESPACE_END
