// tar::Extractor writes an archive under a destination folder and refuses every entry that
// would leave it (absolute paths, `..`, symbolic links pointing out, paths through symbolic
// links).
#pragma once

#include <workspace/core/detail/fd.hpp>
#include <workspace/core/detail/files.hpp>
#include <workspace/core/detail/random.hpp>
#include <workspace/core/error.hpp>
#include <workspace/tar/detail/format.hpp>
#include <workspace/tar/entry.hpp>
#include <workspace/tar/reader.hpp>
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


namespace detail {

// Splits a path for extraction: refuses absolute paths, `..` and NUL bytes. An empty result is
// the destination itself ("." or "./"). `subject` names what is checked in the message.
inline std::vector<std::string> safe_components(const std::string& path, const std::string& subject,
                                                const char* its = "its path") {
  if (path.find('\0') != std::string::npos) fail("refusing " + subject + ": " + its + " contains a NUL byte");
  if (!path.empty() && path.front() == '/') fail("refusing " + subject + ": " + its + " is absolute");
  auto parts = components(path);
  for (const auto& part : parts)
    if (part == "..") fail("refusing " + subject + ": " + its + " contains '..'");
  return parts;
}

// A symbolic link may only point inside the destination, and only in the form that stays inside
// whatever the tree becomes: relative, some leading `..` (no more than the link's depth), then
// names only. "a/../b" is refused even though it looks harmless, because `a` could be a link.
inline void check_symlink_target(const std::string& path, std::size_t depth, const std::string& target) {
  auto refuse = [&](const std::string& why) {
    fail("refusing symbolic link " + quote(path) + " -> " + quote(target) + ": " + why);
  };
  if (target.empty()) refuse("the target is empty");
  if (target.find('\0') != std::string::npos) refuse("the target contains a NUL byte");
  if (target.front() == '/') refuse("the target is absolute");
  std::size_t ups = 0;
  bool down = false;
  for (const auto& part : components(target)) {
    if (part == "..") {
      if (down) refuse("the target goes back up with '..' after naming a folder");
      if (++ups > depth) refuse("the target is outside the destination");
    } else {
      down = true;
    }
  }
}

inline std::string temporary_name(const std::string& name) {
  static std::atomic<unsigned> counter{0};
  // Keep within NAME_MAX (255) whatever the final name's length.
  return "." + name.substr(0, 180) + ".tar-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + "-" + std::to_string(workspace::detail::random_u64() & 0xffffffffu);
}

}  // namespace detail

// Extracts an archive under `destination` (created when missing), entry by entry as the bytes
// arrive. Every entry is resolved relative to a descriptor of the destination and opened with
// O_NOFOLLOW, so nothing outside can be written even if the tree changes meanwhile; entries
// that would leave it are refused with errc::protocol_error naming the entry:
// - absolute paths and paths with a `..` component;
// - paths that go through a symbolic link, whether the archive made it or it was there before;
// - symbolic links that are absolute or point above the destination (see check_symlink_target);
// - hard links whose target is absolute or has `..`.
// Files are written to a temporary file and renamed into place, with their permission bits
// (never setuid/setgid) and mtime; directories get their mode once the archive is complete.
// Devices and FIFOs are skipped. Parent folders missing from the archive are created (0755).
class Extractor {
 public:
  explicit Extractor(std::string destination) : state_(std::make_unique<State>(std::move(destination))) {}

  void feed(std::string_view bytes) { state_->reader.feed(bytes); }

  // Checks that the archive ended properly, then gives the directories their modes.
  void finish() {
    state_->reader.finish();
    state_->apply_directory_modes();
  }

  std::uint64_t files_written() const noexcept { return state_->files; }
  std::uint64_t bytes_written() const noexcept { return state_->bytes; }
  std::uint64_t entries_skipped() const noexcept { return state_->skipped; }

 private:
  struct State {
    explicit State(std::string dest)
        : destination(std::move(dest)),
          reader(Handler{[this](const Entry& e) { begin(e); }, [this](std::string_view d) { data(d); },
                         [this](const Entry& e) { end(e); }}) {
      std::error_code ec;
      std::filesystem::create_directories(destination, ec);
      root = workspace::detail::Fd(::open(destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!root) detail::fail_errno(errno, "cannot open the destination " + detail::quote(destination));
    }

    ~State() { discard(); }

    // Opens the folder holding parts[0..count) below the destination, creating what is missing
    // (unless `create` is false), never following a symbolic link.
    // Opens the folder holding parts[0..count) below the destination, creating what is missing
    // (unless `create` is false), never following a symbolic link. `subject` is for messages.
    workspace::detail::Fd walk(const std::vector<std::string>& parts, std::size_t count, const std::string& subject,
                               bool create) {
      workspace::detail::Fd dir(::fcntl(root.get(), F_DUPFD_CLOEXEC, 0));
      if (!dir) detail::fail_errno(errno, "cannot open the destination " + detail::quote(destination));
      for (std::size_t i = 0; i < count; ++i) {
        const char* name = parts[i].c_str();
        int fd = ::openat(dir.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
          if (::mkdirat(dir.get(), name, 0755) != 0 && errno != EEXIST)
            detail::fail_errno(errno, "cannot create " + detail::quote(detail::join(parts, i + 1)) + " for " + subject);
          fd = ::openat(dir.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
          const int error = errno;
          const std::string so_far = detail::quote(detail::join(parts, i + 1));
          struct stat info {};
          if (::fstatat(dir.get(), name, &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(info.st_mode))
            detail::fail("refusing " + subject + ": " +
                         (i + 1 == parts.size() ? so_far + " is a symbolic link"
                                                : "it goes through the symbolic link " + so_far));
          if (error == ENOTDIR || error == ELOOP) detail::fail("refusing " + subject + ": " + so_far + " is not a folder");
          detail::fail_errno(error, "cannot open " + so_far + " for " + subject);
        }
        dir.reset(fd);
      }
      return dir;
    }

    void begin(const Entry& e) {
      const std::string subject = "entry " + detail::quote(e.path);
      auto parts = detail::safe_components(e.path, subject);
      if (parts.empty()) {
        if (e.type == EntryType::directory) return;  // "./": the destination itself
        detail::fail("refusing entry " + detail::quote(e.path) + ": it names the destination itself");
      }
      if (e.type == EntryType::other) {
        ++skipped;
        return;
      }
      if (e.type == EntryType::symlink) detail::check_symlink_target(e.path, parts.size() - 1, e.linkname);
      std::vector<std::string> link_parts;
      std::string link_subject;
      if (e.type == EntryType::hardlink) {
        link_subject = "hard link " + detail::quote(e.path) + " -> " + detail::quote(e.linkname);
        link_parts = detail::safe_components(e.linkname, link_subject, "its target");
        if (link_parts.empty()) detail::fail("refusing " + link_subject + ": its target is the destination itself");
      }

      const std::string& name = parts.back();
      workspace::detail::Fd dir = walk(parts, parts.size() - 1, subject, true);

      switch (e.type) {
        case EntryType::directory: {
          if (::mkdirat(dir.get(), name.c_str(), 0700) != 0 && errno != EEXIST)
            detail::fail_errno(errno, "cannot create the folder " + detail::quote(e.path));
          walk(parts, parts.size(), subject, false);  // refuses a symbolic link or a file in its place
          directories.push_back({std::move(parts), e.mode & 01777, e.mtime});
          return;
        }
        case EntryType::file: {
          temp_name = detail::temporary_name(name);
          file = workspace::detail::Fd(
              ::openat(dir.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
          if (!file) {
            temp_name.clear();
            detail::fail_errno(errno, "cannot write " + detail::quote(e.path));
          }
          parent = std::move(dir);
          current_path = e.path;
          return;
        }
        case EntryType::symlink: {
          temp_name = detail::temporary_name(name);
          if (::symlinkat(e.linkname.c_str(), dir.get(), temp_name.c_str()) != 0) {
            temp_name.clear();
            detail::fail_errno(errno, "cannot create the symbolic link " + detail::quote(e.path));
          }
          parent = std::move(dir);
          commit(e);
          return;
        }
        case EntryType::hardlink: {
          workspace::detail::Fd target_dir = walk(link_parts, link_parts.size() - 1, link_subject, false);
          temp_name = detail::temporary_name(name);
          if (::linkat(target_dir.get(), link_parts.back().c_str(), dir.get(), temp_name.c_str(), 0) != 0) {
            const int error = errno;
            temp_name.clear();
            detail::fail_errno(error, "cannot create the hard link " + detail::quote(e.path) + " to " +
                                          detail::quote(e.linkname));
          }
          parent = std::move(dir);
          commit(e);
          return;
        }
        case EntryType::other: return;
      }
    }

    void data(std::string_view d) {
      if (!file) return;
      while (!d.empty()) {
        const ssize_t n = ::write(file.get(), d.data(), d.size());
        if (n < 0) {
          if (errno == EINTR) continue;
          detail::fail_errno(errno, "cannot write " + detail::quote(current_path));
        }
        d.remove_prefix(static_cast<std::size_t>(n));
        bytes += static_cast<std::uint64_t>(n);
      }
    }

    void end(const Entry& e) {
      if (!file) return;
      if (::fchmod(file.get(), static_cast<mode_t>(e.mode & 0777)) != 0)
        detail::fail_errno(errno, "cannot set the mode of " + detail::quote(e.path));
      const struct timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(e.mtime), 0}};
      ::futimens(file.get(), times);
      if (::close(file.release()) != 0) detail::fail_errno(errno, "cannot write " + detail::quote(e.path));
      commit(e);
      ++files;
    }

    // Renames the temporary name over the entry's own.
    void commit(const Entry& e) {
      const std::string name = detail::components(e.path).back();
      if (::renameat(parent.get(), temp_name.c_str(), parent.get(), name.c_str()) != 0) {
        const int error = errno;
        discard();
        if (error == EISDIR || error == ENOTEMPTY || error == EEXIST)
          detail::fail_errno(error, "cannot write " + detail::quote(e.path) + ": a folder is in the way");
        detail::fail_errno(error, "cannot write " + detail::quote(e.path));
      }
      temp_name.clear();
      parent.reset();
    }

    void discard() noexcept {
      file.reset();
      if (!temp_name.empty() && parent) ::unlinkat(parent.get(), temp_name.c_str(), 0);
      temp_name.clear();
      parent.reset();
    }

    void apply_directory_modes() {
      // Deepest first, so that a read-only folder is closed only after its contents are done.
      for (auto it = directories.rbegin(); it != directories.rend(); ++it) {
        const std::string path = detail::join(it->parts, it->parts.size());
        workspace::detail::Fd dir = walk(it->parts, it->parts.size(), "folder " + detail::quote(path), false);
        if (::fchmod(dir.get(), static_cast<mode_t>(it->mode)) != 0)
          detail::fail_errno(errno, "cannot set the mode of " + detail::quote(path));
        const struct timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(it->mtime), 0}};
        ::futimens(dir.get(), times);
      }
      directories.clear();
    }

    struct Directory {
      std::vector<std::string> parts;
      unsigned mode;
      std::int64_t mtime;
    };

    std::string destination;
    workspace::detail::Fd root;
    Reader reader;
    workspace::detail::Fd parent;  // the folder of the entry being written
    workspace::detail::Fd file;    // its temporary file
    std::string temp_name;
    std::string current_path;
    std::vector<Directory> directories;
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
    std::uint64_t skipped = 0;
  };

  std::unique_ptr<State> state_;
};

}  // namespace tar
WORKSPACE_NAMESPACE_END
