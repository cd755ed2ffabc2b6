// The Workspace concept and the capability concepts.
//
// Code written against these runs on any workspace type; tests swap the type at compile time.
// Ask for the capability you need (Pausable, GitCapable, Attachable), not a concrete type.
#pragma once

#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/version.hpp>

#include <asio/any_io_executor.hpp>

#include <concepts>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN

// Every workspace can run shell commands and move files in and out.
//  - execute_command(command, options = {}) runs `command` with /bin/sh -c in options.cwd
//    (default: working_dir()).
//  - file_upload(local_path, workspace_path [, transfer]) and
//    file_download(workspace_path, local_path [, transfer]) stream a file, creating parent
//    folders; relative workspace paths resolve against working_dir(), local ones against the
//    calling process's current directory.
//  - file_write(workspace_path, bytes) and file_read(workspace_path) are the in-memory forms.
template <class W>
concept Workspace = requires(W& w, const W& cw, const std::string& path, std::string_view bytes,
                             const CommandOptions& options, const TransferOptions& transfer) {
  { cw.working_dir() } -> std::convertible_to<std::string_view>;
  { w.execute_command(path) } -> std::same_as<CommandResult>;
  { w.execute_command(path, options) } -> std::same_as<CommandResult>;
  { w.file_upload(path, path) } -> std::same_as<FileOperationResult>;
  { w.file_upload(path, path, transfer) } -> std::same_as<FileOperationResult>;
  { w.file_download(path, path) } -> std::same_as<FileOperationResult>;
  { w.file_download(path, path, transfer) } -> std::same_as<FileOperationResult>;
  { w.file_write(path, bytes) } -> std::same_as<FileOperationResult>;
  { w.file_read(path) } -> std::same_as<FileReadResult>;
};

namespace detail {
// The least a completion handler of an operation completing with T is: what AsyncWorkspace is
// checked with, so that a type cannot rely on more than the token gives.
template <class T>
struct CompletionArchetype {
  void operator()(std::exception_ptr, T) const {}
};
}  // namespace detail

// A workspace whose operations also run asynchronously, on Asio's model: each async_* call takes
// the blocking call's arguments (by value) and a completion token, and completes with
// (std::exception_ptr, the blocking call's result); see core/async.hpp. get_executor() is where
// they run, or empty for the completion handler's executor.
template <class W>
concept AsyncWorkspace =
    Workspace<W> && requires(W& w, std::string s, CommandOptions options, TransferOptions transfer) {
      { w.get_executor() } -> std::convertible_to<asio::any_io_executor>;
      w.async_execute_command(s, options, detail::CompletionArchetype<CommandResult>{});
      w.async_execute_command(s, detail::CompletionArchetype<CommandResult>{});
      w.async_file_upload(s, s, transfer, detail::CompletionArchetype<FileOperationResult>{});
      w.async_file_download(s, s, transfer, detail::CompletionArchetype<FileOperationResult>{});
      w.async_file_write(s, s, detail::CompletionArchetype<FileOperationResult>{});
      w.async_file_read(s, detail::CompletionArchetype<FileReadResult>{});
    };

// A workspace whose processes can be frozen and thawed (a container, a runtime).
template <class W>
concept Pausable = Workspace<W> && requires(W& w) {
  { w.pause() } -> std::same_as<void>;
  { w.resume() } -> std::same_as<void>;
};

// A workspace that can report git changes below a path and the diff of one file.
template <class W>
concept GitCapable = Workspace<W> && requires(W& w, const std::string& path) {
  { w.git_changes(path) } -> std::same_as<std::vector<GitChange>>;
  { w.git_diff(path) } -> std::same_as<GitDiff>;
};

// A workspace backed by something with an identity (a container, a sandbox, a session) that a
// new object can attach to by id, and that can be released so it outlives this object.
template <class W>
concept Attachable = Workspace<W> && requires(W& w, const W& cw, const std::string& id) {
  { cw.id() } -> std::convertible_to<std::string_view>;
  { W::attach(id) } -> std::same_as<W>;
  { w.detach() } -> std::same_as<void>;
};

WORKSPACE_NAMESPACE_END
