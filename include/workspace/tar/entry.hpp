// What a tar archive holds: entries, and the attributes a writer records for them.
#pragma once

#include <workspace/version.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

WORKSPACE_NAMESPACE_BEGIN
namespace tar {

inline constexpr std::size_t block_size = 512;

enum class EntryType { file, directory, symlink, hardlink, other };

// One archive member. The writer encodes it; the reader reports it.
struct Entry {
  std::string path;                  // relative, '/'-separated; no trailing '/' for directories
  EntryType type = EntryType::file;
  char typeflag = '0';               // the header's own type byte ('0', '5', '2', '1', '3', ...)
  unsigned mode = 0644;              // permission bits (07777)
  std::uint64_t size = 0;            // data bytes that follow (0 for every type but files)
  std::string linkname;              // target of a symbolic or hard link
  std::int64_t mtime = 0;            // seconds since the epoch
  std::uint64_t uid = 0;
  std::uint64_t gid = 0;
};

// What the writer records besides the path; unset fields take the entry kind's default.
struct Attributes {
  std::optional<unsigned> mode;        // default: the file's own / 0644 / 0755 / 0777
  std::optional<std::int64_t> mtime;   // default: the file's own, else the time it was added
  std::uint64_t uid = 0;
  std::uint64_t gid = 0;
};

}  // namespace tar
WORKSPACE_NAMESPACE_END
