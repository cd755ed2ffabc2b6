// tar::Writer builds a ustar archive (with pax extended headers where ustar cannot say it)
// lazily, in constant memory, and knows its exact size up front, so an upload of it can carry a
// Content-Length. Its source() is a pull producer (the shape of http::BodySource).
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/core/detail/fd.hpp>
#include <workspace/tar/detail/format.hpp>
#include <workspace/tar/entry.hpp>
#include <workspace/version.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace tar {

// Builds an archive lazily: nothing is read until the source is pulled, file contents are read
// in the caller's buffer, and size() is exact before the first byte is produced.
class Writer {
 public:
  // Fills up to `capacity` bytes and returns how many; 0 when the archive is complete.
  using Source = std::function<std::size_t(char* buffer, std::size_t capacity)>;

  Writer() = default;

  // A regular file read from `local_path` (symbolic links followed). Size, mode and mtime come
  // from the file now; if its size differs when the stream reaches it, the stream throws.
  Writer& add_file(std::string archive_path, std::string local_path, const Attributes& attributes = {}) {
    struct stat info {};
    if (::stat(local_path.c_str(), &info) != 0)
      detail::fail_errno(errno, "cannot read " + detail::quote(local_path));
    if (!S_ISREG(info.st_mode))
      throw Error(errc::invalid_argument, "tar: " + detail::quote(local_path) + " is not a regular file");
    Item item;
    item.entry.path = detail::normalize_archive_path(archive_path);
    item.entry.type = EntryType::file;
    item.entry.typeflag = '0';
    item.entry.mode = attributes.mode.value_or(static_cast<unsigned>(info.st_mode) & 07777);
    item.entry.size = static_cast<std::uint64_t>(info.st_size);
    item.entry.mtime = attributes.mtime.value_or(static_cast<std::int64_t>(info.st_mtime));
    item.entry.uid = attributes.uid;
    item.entry.gid = attributes.gid;
    item.local_path = std::move(local_path);
    return push(std::move(item));
  }

  // A regular file holding `bytes`.
  Writer& add_bytes(std::string archive_path, std::string bytes, unsigned mode = 0644) {
    Attributes attributes;
    attributes.mode = mode;
    return add_bytes(std::move(archive_path), std::move(bytes), attributes);
  }
  Writer& add_bytes(std::string archive_path, std::string bytes, const Attributes& attributes) {
    Item item = make(archive_path, EntryType::file, '0', 0644, attributes);
    item.entry.size = bytes.size();
    item.bytes = std::move(bytes);
    return push(std::move(item));
  }

  Writer& add_directory(std::string archive_path, unsigned mode = 0755) {
    Attributes attributes;
    attributes.mode = mode;
    return add_directory(std::move(archive_path), attributes);
  }
  Writer& add_directory(std::string archive_path, const Attributes& attributes) {
    Item item = make(archive_path, EntryType::directory, '5', 0755, attributes);
    directories_.insert(item.entry.path);
    return push(std::move(item));
  }

  // A symbolic link to `target`, stored as given (Docker resolves it inside the container).
  Writer& add_symlink(std::string archive_path, std::string target, const Attributes& attributes = {}) {
    if (target.empty() || target.find('\0') != std::string::npos)
      throw Error(errc::invalid_argument, "tar: symbolic link " + detail::quote(archive_path) + " has an invalid target");
    Item item = make(archive_path, EntryType::symlink, '2', 0777, attributes);
    item.entry.linkname = std::move(target);
    return push(std::move(item));
  }

  // Adds a directory entry for every parent of `archive_path` ("a" and "a/b" for "a/b/c") not
  // added before, so that the archive creates them with `mode` rather than the extractor's default.
  Writer& add_parents(std::string_view archive_path, unsigned mode = 0755) {
    const auto parts = detail::components(detail::normalize_archive_path(archive_path));
    for (std::size_t i = 1; i < parts.size(); ++i) {
      std::string parent = detail::join(parts, i);
      if (!directories_.count(parent)) add_directory(std::move(parent), mode);
    }
    return *this;
  }

  std::size_t entries() const noexcept { return items_.size(); }

  // The exact number of bytes source() produces.
  std::uint64_t size() const {
    std::uint64_t total = 2 * block_size;
    for (const auto& item : items_)
      total += encode_header(item.entry).size() + item.entry.size + detail::padding(item.entry.size);
    return total;
  }

  // The archive as a pull-based producer: each call fills up to `capacity` bytes and returns how
  // many; 0 means the archive is complete. Consumes the writer.
  Source source() && {
    auto stream = std::make_shared<Stream>(std::move(items_));
    items_.clear();
    directories_.clear();
    return [stream](char* buffer, std::size_t capacity) { return stream->read(buffer, capacity); };
  }

 private:
  struct Item {
    Entry entry;
    std::string local_path;  // when the data comes from a file
    std::string bytes;       // otherwise
  };

  Item make(std::string_view archive_path, EntryType type, char typeflag, unsigned default_mode,
            const Attributes& attributes) const {
    Item item;
    item.entry.path = detail::normalize_archive_path(archive_path);
    item.entry.type = type;
    item.entry.typeflag = typeflag;
    item.entry.mode = attributes.mode.value_or(default_mode) & 07777;
    item.entry.mtime = attributes.mtime.value_or(static_cast<std::int64_t>(std::time(nullptr)));
    item.entry.uid = attributes.uid;
    item.entry.gid = attributes.gid;
    return item;
  }

  Writer& push(Item item) {
    items_.push_back(std::move(item));
    return *this;
  }

  struct Stream {
    explicit Stream(std::vector<Item> i) : items(std::move(i)) {}

    std::size_t read(char* buffer, std::size_t capacity) {
      std::size_t written = 0;
      while (written < capacity) {
        if (pending_at < pending.size()) {
          const std::size_t n = std::min(capacity - written, pending.size() - pending_at);
          std::memcpy(buffer + written, pending.data() + pending_at, n);
          pending_at += n;
          written += n;
          continue;
        }
        if (in_data) {
          Item& item = items[index];
          if (remaining == 0) {
            in_data = false;
            file.reset();
            set_pending(std::string(static_cast<std::size_t>(detail::padding(item.entry.size)), '\0'));
            std::string().swap(item.bytes);
            ++index;
            continue;
          }
          const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, capacity - written));
          std::size_t got = 0;
          if (item.local_path.empty()) {
            const std::size_t from = item.bytes.size() - static_cast<std::size_t>(remaining);
            std::memcpy(buffer + written, item.bytes.data() + from, want);
            got = want;
          } else {
            got = read_file(item, buffer + written, want);
          }
          remaining -= got;
          written += got;
          continue;
        }
        if (finished) break;
        if (index >= items.size()) {
          set_pending(std::string(2 * block_size, '\0'));
          finished = true;
          continue;
        }
        Item& item = items[index];
        if (!item.local_path.empty()) open_file(item);
        set_pending(encode_header(item.entry));
        in_data = true;
        remaining = item.entry.size;
      }
      return written;
    }

    void open_file(const Item& item) {
      workspace::detail::Fd fd(::open(item.local_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
      if (!fd) detail::fail_errno(errno, "cannot read " + detail::quote(item.local_path));
      struct stat info {};
      if (::fstat(fd.get(), &info) != 0) detail::fail_errno(errno, "cannot read " + detail::quote(item.local_path));
      if (!S_ISREG(info.st_mode))
        throw Error(errc::invalid_argument, "tar: " + detail::quote(item.local_path) + " is not a regular file");
      if (static_cast<std::uint64_t>(info.st_size) != item.entry.size)
        throw Error(errc::io_error, "tar: " + detail::quote(item.local_path) + " changed size from " +
                                        std::to_string(item.entry.size) + " to " + std::to_string(info.st_size) +
                                        " bytes after it was added to the archive");
      ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
      file = std::move(fd);
    }

    std::size_t read_file(const Item& item, char* buffer, std::size_t want) {
      for (;;) {
        const ssize_t n = ::read(file.get(), buffer, want);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0)
          throw Error(errc::io_error, "tar: " + detail::quote(item.local_path) +
                                          " became shorter while it was being archived");
        if (errno != EINTR) detail::fail_errno(errno, "cannot read " + detail::quote(item.local_path));
      }
    }

    void set_pending(std::string s) {
      pending = std::move(s);
      pending_at = 0;
    }

    std::vector<Item> items;
    std::size_t index = 0;
    std::string pending;
    std::size_t pending_at = 0;
    bool in_data = false;
    std::uint64_t remaining = 0;
    workspace::detail::Fd file;
    bool finished = false;
  };

  std::vector<Item> items_;
  std::set<std::string> directories_;
};

}  // namespace tar
WORKSPACE_NAMESPACE_END
