// File transfers for the back ends that move a file in one HTTP request (the agent server, the
// Daytona toolbox): a download streamed into a temporary file renamed into place, or into memory,
// and the progress of a file sent as the one file part of a multipart body.
#pragma once

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
#include <optional>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
namespace shell {

inline FileOperationResult failed_transfer(FileOperationResult result, std::string why) {
  result.success = false;
  result.error = std::move(why);
  return result;
}

// `fetch(options)` sends the GET with the body going to options.on_body (2xx only) and throws
// workspace::Error on failure. A refused credential propagates (it is not about this file);
// anything else is a failed result naming both paths.
template <class Fetch>
FileOperationResult download_to_file(const std::string& remote, const std::string& local_path,
                                     const TransferOptions& options, Fetch&& fetch) {
  FileOperationResult result{.source_path = remote, .destination_path = local_path};
  std::string error;
  auto pending = workspace::detail::PendingFile::create(local_path, error);
  if (!pending) return failed_transfer(std::move(result), "file_download " + remote + ": " + error);
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
  try {
    fetch(o);
  } catch (const Error& e) {
    if (e.code() == errc::authentication_failed) throw;
    return failed_transfer(std::move(result), "file_download " + remote + " -> " + local_path + ": " +
                                                  (write_failed ? error : std::string(e.what())));
  }
  if (!pending->commit(std::nullopt, error))
    return failed_transfer(std::move(result), "file_download " + remote + ": " + error);
  result.success = true;
  result.file_size = written;
  return result;
}

// The same into memory.
template <class Fetch>
FileReadResult download_to_memory(const std::string& remote, Fetch&& fetch) {
  FileReadResult result{.path = remote};
  std::string content;
  http::RequestOptions o;
  o.on_body = [&](std::string_view data) {
    content.append(data);
    return true;
  };
  try {
    fetch(o);
  } catch (const Error& e) {
    if (e.code() == errc::authentication_failed) throw;
    result.error = "file_read " + remote + ": " + e.what();
    return result;
  }
  result.content = std::move(content);
  result.success = true;
  return result;
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
// BodySource and its size, or the bytes); `put(remote, form, size, progress)` sends it and throws
// on failure.
// A refused credential propagates; any other failure is a result naming the paths.
template <class Put>
FileOperationResult send_form(http::Multipart form, std::uint64_t size, FileOperationResult result,
                              const TransferOptions& options, Put&& put) {
  auto progress = file_part_progress(form, size, options);
  try {
    put(result.destination_path, std::move(form), size, std::move(progress));
  } catch (const Error& e) {
    if (e.code() == errc::authentication_failed) throw;
    return failed_transfer(std::move(result), "file_upload " +
                                                  (result.source_path.empty() ? std::string() : result.source_path + " -> ") +
                                                  result.destination_path + ": " + e.what());
  }
  result.success = true;
  result.file_size = size;
  return result;
}

template <class Add, class Put>
FileOperationResult upload_file(const std::string& local_path, const std::string& remote, const TransferOptions& options,
                                Add&& add, Put&& put) {
  FileOperationResult result{.source_path = local_path, .destination_path = remote};
  if (remote.empty()) return failed_transfer(result, "file_upload: empty workspace path");
  std::uint64_t size = 0;
  http::Multipart form;
  try {
    auto source = http::file_source(local_path);
    size = source.size;
    add(form, remote, std::move(source.source), size);
  } catch (const std::exception& e) {
    return failed_transfer(result, "file_upload: cannot read " + workspace::detail::quote(local_path) + ": " + e.what());
  }
  return send_form(std::move(form), size, std::move(result), options, std::forward<Put>(put));
}

template <class Add, class Put>
FileOperationResult write_file(const std::string& remote, std::string_view content, Add&& add, Put&& put) {
  FileOperationResult result{.source_path = {}, .destination_path = remote};
  if (remote.empty()) return failed_transfer(result, "file_write: empty workspace path");
  http::Multipart form;
  add(form, remote, std::string(content));
  return send_form(std::move(form), content.size(), std::move(result), {}, std::forward<Put>(put));
}

// The download side: `get(options)` streams the file's bytes to options.on_body.
template <class Get>
FileOperationResult download_file(const std::string& remote, const std::string& local_path,
                                  const TransferOptions& options, Get&& get) {
  if (remote.empty())
    return failed_transfer(FileOperationResult{.source_path = remote, .destination_path = local_path},
                           "file_download: empty workspace path");
  return download_to_file(remote, local_path, options, std::forward<Get>(get));
}

template <class Get>
FileReadResult read_file(const std::string& remote, Get&& get) {
  if (remote.empty()) {
    FileReadResult result{.path = remote};
    result.error = "file_read: empty workspace path";
    return result;
  }
  return download_to_memory(remote, std::forward<Get>(get));
}

}  // namespace shell
WORKSPACE_NAMESPACE_END
