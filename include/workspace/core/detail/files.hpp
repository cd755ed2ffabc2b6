// Streaming file copies on the local file system.
//
// Every write goes to a temporary file beside the destination and is renamed over it at the end,
// so a failed or cancelled transfer never leaves a truncated destination behind, and a reader
// never sees a half-written file.
#pragma once

#include <workspace/core/detail/validate.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/core/detail/fd.hpp>
#include <workspace/core/detail/random.hpp>
#include <workspace/version.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

inline std::string errno_text(int error) { return std::system_category().message(error); }

inline FileOperationResult transfer_failure(std::string source, std::string destination,
                                            std::string error) {
  FileOperationResult result;
  result.source_path = std::move(source);
  result.destination_path = std::move(destination);
  result.error = std::move(error);
  return result;
}

// A temporary file beside `destination`, removed unless committed.
class PendingFile {
 public:
  // Returns an empty optional and sets `error` when the folder cannot be made or written.
  static std::optional<PendingFile> create(const std::string& destination, std::string& error) {
    namespace fs = std::filesystem;
    const fs::path target(destination);
    if (target.filename().empty()) {
      error = "destination " + quote(destination) + " names a folder, not a file";
      return std::nullopt;
    }
    struct stat info;
    if (::stat(destination.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      error = "destination " + quote(destination) + " is a directory";
      return std::nullopt;
    }
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) {
      error = "cannot create folder " + quote(parent.string()) + " for " + quote(destination) +
              ": " + ec.message();
      return std::nullopt;
    }
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; attempt < 16; ++attempt) {
      std::string name = (parent / ("." + target.filename().string() + ".part-" +
                                    std::to_string(::getpid()) + "-" +
                                    std::to_string(counter.fetch_add(1)) + "-" +
                                    std::to_string(random_u64() & 0xffffffffu)))
                             .string();
      int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) return PendingFile(Fd(fd), std::move(name), destination);
      if (errno != EEXIST) {
        error = "cannot write " + quote(destination) + ": " + errno_text(errno);
        return std::nullopt;
      }
    }
    error = "cannot write " + quote(destination) + ": no free temporary name";
    return std::nullopt;
  }

  PendingFile(PendingFile&&) noexcept = default;
  PendingFile& operator=(PendingFile&&) = delete;
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile() {
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  }

  // Writes all of `data`; false with `error` set on failure.
  bool write(const char* data, std::size_t size, std::string& error) {
    while (size > 0) {
      ssize_t n = ::write(fd_.get(), data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        error = "cannot write " + quote(destination_) + ": " + errno_text(errno);
        return false;
      }
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

  bool commit(std::optional<mode_t> mode, std::string& error) {
    if (mode && ::fchmod(fd_.get(), *mode) != 0) {
      error = "cannot set the mode of " + quote(destination_) + ": " + errno_text(errno);
      return false;
    }
    if (::close(fd_.release()) != 0) {
      error = "cannot write " + quote(destination_) + ": " + errno_text(errno);
      return false;
    }
    if (::rename(temp_path_.c_str(), destination_.c_str()) != 0) {
      error = "cannot write " + quote(destination_) + ": " + errno_text(errno);
      return false;
    }
    temp_path_.clear();
    return true;
  }

 private:
  PendingFile(Fd fd, std::string temp_path, std::string destination)
      : fd_(std::move(fd)), temp_path_(std::move(temp_path)), destination_(std::move(destination)) {}

  Fd fd_;
  std::string temp_path_;
  std::string destination_;
};

// Opens a file for reading; sets `error` (naming the path) on failure, including when it is a
// directory.
inline Fd open_for_reading(const std::string& path, struct stat& info, std::string& error) {
  if (path.empty()) {
    error = "the source path is empty";
    return Fd();
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    error = "cannot read " + quote(path) + ": " + errno_text(errno);
    return fd;
  }
  if (::fstat(fd.get(), &info) != 0) {
    error = "cannot read " + quote(path) + ": " + errno_text(errno);
    return Fd();
  }
  if (S_ISDIR(info.st_mode)) {
    error = "cannot read " + quote(path) + ": it is a directory";
    return Fd();
  }
  return fd;
}

// Copies `source` to `destination` in constant memory, keeping the source's permission bits.
inline FileOperationResult copy_file(const std::string& source, const std::string& destination,
                                     const TransferOptions& options) {
  std::string error;
  struct stat info;
  Fd in = open_for_reading(source, info, error);
  if (!in) return transfer_failure(source, destination, error);
  if (destination.empty())
    return transfer_failure(source, destination, "the destination path is empty");
  auto pending = PendingFile::create(destination, error);
  if (!pending) return transfer_failure(source, destination, error);

  const std::optional<std::uint64_t> total =
      S_ISREG(info.st_mode) && info.st_size > 0
          ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(info.st_size))
          : std::nullopt;
  constexpr std::size_t chunk = 1 << 20;
  std::unique_ptr<char[]> buffer(new char[chunk]);
  std::uint64_t copied = 0;
  for (;;) {
    ssize_t n = ::read(in.get(), buffer.get(), chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return transfer_failure(source, destination,
                              "cannot read " + quote(source) + ": " + errno_text(errno));
    }
    if (n == 0) break;
    if (!pending->write(buffer.get(), static_cast<std::size_t>(n), error))
      return transfer_failure(source, destination, error);
    copied += static_cast<std::uint64_t>(n);
    if (options.on_progress && !options.on_progress(copied, total))
      return transfer_failure(source, destination,
                              "transfer of " + quote(source) + " cancelled by the caller");
  }
  if (!pending->commit(static_cast<mode_t>(info.st_mode & 07777), error))
    return transfer_failure(source, destination, error);

  FileOperationResult result;
  result.success = true;
  result.source_path = source;
  result.destination_path = destination;
  result.file_size = copied;
  return result;
}

inline FileOperationResult write_file(const std::string& destination, std::string_view content) {
  std::string error;
  if (destination.empty()) return transfer_failure("", destination, "the destination path is empty");
  auto pending = PendingFile::create(destination, error);
  if (!pending || !pending->write(content.data(), content.size(), error) ||
      !pending->commit(std::nullopt, error))
    return transfer_failure("", destination, error);
  FileOperationResult result;
  result.success = true;
  result.destination_path = destination;
  result.file_size = content.size();
  return result;
}

inline FileReadResult read_file(const std::string& path) {
  FileReadResult result;
  result.path = path;
  std::string error;
  struct stat info;
  Fd in = open_for_reading(path, info, error);
  if (!in) {
    result.error = error;
    return result;
  }
  if (S_ISREG(info.st_mode)) result.content.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[64 * 1024];
  for (;;) {
    ssize_t n = ::read(in.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      result.content.clear();
      result.error = "cannot read " + quote(path) + ": " + errno_text(errno);
      return result;
    }
    if (n == 0) break;
    result.content.append(buffer, static_cast<std::size_t>(n));
  }
  result.success = true;
  return result;
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
