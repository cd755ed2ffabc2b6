// File transfers for the back ends that move a file in one HTTP request (the agent server, the
// Daytona toolbox): a download streamed into a temporary file renamed into place, or into memory,
// and the progress of a file sent as the one file part of a multipart body; FormTransfers puts
// them together for a workspace.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/detail/files.hpp>
#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/http/body.hpp>
#include <workspace/http/message.hpp>
#include <workspace/version.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace shell {

inline FileOperationResult failed_transfer(FileOperationResult result, std::string why) {
  result.success = false;
  result.error = std::move(why);
  return result;
}

// `fetch(options)` is the coroutine (Task<void>) of the GET, the body going to options.on_body
// (2xx only); it throws workspace::Error on failure. The bytes go to a temporary file renamed
// into place at the end, so a failed or cancelled download leaves no partial file. A refused credential propagates (it is not about this file);
// anything else is a failed result naming both paths.
template <class Fetch>
Task<FileOperationResult> download_to_file(std::string remote, std::string local_path, TransferOptions options,
                                           Fetch fetch) {
  FileOperationResult result{.source_path = remote, .destination_path = local_path};
  std::string error;
  auto pending = workspace::detail::PendingFile::create(local_path, error);
  if (!pending) co_return failed_transfer(std::move(result), "file_download " + remote + ": " + error);
  std::uint64_t written = 0;
  bool write_failed = false;
  http::RequestOptions o;
  o.on_body = [&](std::string_view data) {
    if (!pending->write(data.data(), data.size(), error)) {
      write_failed = true;
      return false;
    }
    written += data.size();
    return true;
  };
  if (options.on_progress) o.on_download = options.on_progress;
  std::string why;
  try {
    co_await fetch(o);
  } catch (const Error& e) {
    if (e.code() == errc::authentication_failed) throw;
    why = write_failed ? error : std::string(e.what());
    if (why.empty()) why = "failed";
  }
  if (!why.empty()) co_return failed_transfer(std::move(result), "file_download " + remote + " -> " + local_path + ": " + why);
  if (!pending->commit(std::nullopt, error))
    co_return failed_transfer(std::move(result), "file_download " + remote + ": " + error);
  result.success = true;
  result.file_size = written;
  co_return result;
}

// The same into memory.
template <class Fetch>
Task<FileReadResult> download_to_memory(std::string remote, Fetch fetch) {
  FileReadResult result{.path = remote};
  std::string content;
  http::RequestOptions o;
  o.on_body = [&](std::string_view data) {
    content.append(data);
    return true;
  };
  try {
    co_await fetch(o);
  } catch (const Error& e) {
    if (e.code() == errc::authentication_failed) throw;
    result.error = "file_read " + remote + ": " + e.what();
  }
  if (result.error) co_return result;
  result.content = std::move(content);
  result.success = true;
  co_return result;
}

// The last component of a workspace path, for a multipart file name.
inline std::string file_name_of(const std::string& remote) {
  const auto slash = remote.rfind('/');
  std::string name = slash == std::string::npos ? remote : remote.substr(slash + 1);
  return name.empty() ? "file" : name;
}

// Maps the progress of a whole multipart body whose last part holds the file's `size` bytes
// onto the file's own bytes. `options` must outlive the request.
inline http::Progress file_part_progress(const http::Multipart& form, std::uint64_t size, const TransferOptions& options) {
  if (!options.on_progress) return {};
  // The closing boundary and the CRLF before it follow the file's bytes.
  const std::uint64_t head = form.size() - size - (form.boundary().size() + 8);
  return [&options, head, size](std::uint64_t done, std::optional<std::uint64_t>) {
    return options.on_progress(done <= head ? 0 : std::min(size, done - head), size);
  };
}

// The upload side of a back end that moves a file in one multipart request. `add(form, remote,
// part...)` puts the file into the form under the back end's own field names (part... being a
// BodySource and its size, or the bytes); `put(remote, form, size, progress)` is the coroutine
// (Task<void>) that sends it and throws on failure.
// A refused credential propagates; any other failure is a result naming the paths.
template <class Put>
Task<FileOperationResult> send_form(http::Multipart form, std::uint64_t size, FileOperationResult result,
                                    TransferOptions options, Put put) {
  auto progress = file_part_progress(form, size, options);
  std::string why;
  try {
    co_await put(result.destination_path, std::move(form), size, std::move(progress));
  } catch (const Error& e) {
    if (e.code() == errc::authentication_failed) throw;
    why = e.what();
  }
  if (!why.empty())
    co_return failed_transfer(std::move(result), "file_upload " +
                                                     (result.source_path.empty() ? std::string() : result.source_path + " -> ") +
                                                     result.destination_path + ": " + why);
  result.success = true;
  result.file_size = size;
  co_return result;
}

template <class Add, class Put>
Task<FileOperationResult> upload_file(std::string local_path, std::string remote, TransferOptions options, Add add,
                                      Put put) {
  FileOperationResult result{.source_path = local_path, .destination_path = remote};
  if (remote.empty()) co_return failed_transfer(result, "file_upload: empty workspace path");
  std::uint64_t size = 0;
  http::Multipart form;
  std::string why;
  try {
    auto source = http::file_source(local_path);
    size = source.size;
    add(form, remote, std::move(source.source), size);
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (!why.empty())
    co_return failed_transfer(result, "file_upload: cannot read " + workspace::detail::quote(local_path) + ": " + why);
  co_return co_await send_form(std::move(form), size, std::move(result), std::move(options), std::move(put));
}

template <class Add, class Put>
Task<FileOperationResult> write_file(std::string remote, std::string content, Add add, Put put) {
  FileOperationResult result{.source_path = {}, .destination_path = remote};
  if (remote.empty()) co_return failed_transfer(result, "file_write: empty workspace path");
  http::Multipart form;
  const std::uint64_t size = content.size();
  add(form, remote, std::move(content));
  TransferOptions none;
  co_return co_await send_form(std::move(form), size, std::move(result), std::move(none), std::move(put));
}

// The download side: `get(options)` is the coroutine that streams the file's bytes to
// options.on_body.
template <class Get>
Task<FileOperationResult> download_file(std::string remote, std::string local_path, TransferOptions options, Get get) {
  if (remote.empty())
    co_return failed_transfer(FileOperationResult{.source_path = remote, .destination_path = local_path},
                              "file_download: empty workspace path");
  co_return co_await download_to_file(std::move(remote), std::move(local_path), std::move(options), std::move(get));
}

template <class Get>
Task<FileReadResult> read_file(std::string remote, Get get) {
  if (remote.empty()) {
    FileReadResult result{.path = remote};
    result.error = "file_read: empty workspace path";
    co_return result;
  }
  co_return co_await download_to_memory(std::move(remote), std::move(get));
}

// The four transfers of a workspace that moves a file in one HTTP request, written once. Derived
// (a friend) has resolve(path), a static add_part (how the file goes into the form), put() and
// get(remote); all that differs between such back ends is those.
template <class Derived>
class FormTransfers {
 public:
  Task<FileOperationResult> co_file_upload(std::string local_path, std::string workspace_path, TransferOptions options) {
    auto& self = static_cast<Derived&>(*this);
    std::string remote = self.resolve(workspace_path);
    co_return co_await upload_file(std::move(local_path), std::move(remote), std::move(options), Derived::add_part,
                                   self.put());
  }
  Task<FileOperationResult> co_file_write(std::string workspace_path, std::string content) {
    auto& self = static_cast<Derived&>(*this);
    std::string remote = self.resolve(workspace_path);
    co_return co_await write_file(std::move(remote), std::move(content), Derived::add_part, self.put());
  }
  Task<FileOperationResult> co_file_download(std::string workspace_path, std::string local_path, TransferOptions options) {
    auto& self = static_cast<Derived&>(*this);
    std::string remote = self.resolve(workspace_path);
    co_return co_await download_file(remote, std::move(local_path), std::move(options), self.get(remote));
  }
  Task<FileReadResult> co_file_read(std::string workspace_path) {
    auto& self = static_cast<Derived&>(*this);
    std::string remote = self.resolve(workspace_path);
    co_return co_await read_file(remote, self.get(remote));
  }

 protected:
  FormTransfers() = default;
};

}  // namespace shell
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
