// Tar archives as streams, for Docker's `PUT/GET /containers/{id}/archive`.
//
// - Writer builds a ustar archive (with pax extended headers where ustar cannot say it) lazily,
//   in constant memory, and knows its exact size up front so the upload can carry a
//   Content-Length. Its source() is an http::BodySource.
// - Reader is a push parser: feed it the bytes as they arrive, in pieces of any size, and it calls
//   back with each entry's header, its data in pieces, and its end. It reads ustar, pax ('x' and
//   'g') and GNU ('L'/'K' long names, base-256 numbers) archives and verifies every checksum.
// - Extractor writes an archive under a destination folder and refuses every entry that would
//   leave it (absolute paths, `..`, symbolic links pointing out, paths through symbolic links).
//   SingleFileExtractor writes the one file of a download to an exact path; SingleFileReader keeps
//   it in memory.
//
// Every malformed archive is a workspace::Error with errc::protocol_error whose message starts
// with "tar: ". Archive paths are '/'-separated and relative.
#pragma once

#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/core/detail/fd.hpp>
#include <workspace/core/detail/files.hpp>
#include <workspace/core/detail/random.hpp>
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
namespace docker::tar {

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

namespace detail {

[[noreturn]] inline void fail(const std::string& message) {
  throw Error(errc::protocol_error, "tar: " + message);
}

[[noreturn]] inline void fail_errno(int error, const std::string& message) {
  throw Error(std::error_code(error, std::system_category()), "tar: " + message);
}

inline std::string quote(std::string_view s) { return workspace::detail::quote(s); }

inline constexpr std::uint64_t padding(std::uint64_t size) noexcept {
  return (block_size - size % block_size) % block_size;
}

inline bool is_ascii(std::string_view s) noexcept {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

inline std::size_t decimal_digits(std::uint64_t n) noexcept {
  std::size_t digits = 1;
  while (n >= 10) {
    n /= 10;
    ++digits;
  }
  return digits;
}

// Splits a path into its components, dropping empty ones and "."; `..` is kept for the caller.
inline std::vector<std::string> components(std::string_view path) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= path.size()) {
    std::size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(at, slash - at);
    if (!part.empty() && part != ".") out.emplace_back(part);
    at = slash + 1;
  }
  return out;
}

inline std::string join(const std::vector<std::string>& parts, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count && i < parts.size(); ++i) {
    if (i > 0) out += '/';
    out += parts[i];
  }
  return out;
}

// The writer's archive paths: relative, without `..`, normalised ("a//./b/" -> "a/b").
inline std::string normalize_archive_path(std::string_view path) {
  if (path.find('\0') != std::string_view::npos)
    throw Error(errc::invalid_argument, "tar: archive path " + quote(path) + " contains a NUL byte");
  if (!path.empty() && path.front() == '/')
    throw Error(errc::invalid_argument, "tar: archive path " + quote(path) + " is absolute");
  auto parts = components(path);
  for (const auto& part : parts)
    if (part == "..")
      throw Error(errc::invalid_argument, "tar: archive path " + quote(path) + " contains '..'");
  if (parts.empty()) throw Error(errc::invalid_argument, "tar: archive path " + quote(path) + " is empty");
  return join(parts, parts.size());
}

// ---- header encoding ----

inline constexpr std::uint64_t octal_limit(std::size_t width) noexcept {
  return std::uint64_t{1} << (3 * (width - 1));  // width-1 octal digits, then a NUL
}

inline void put_string(char* field, std::size_t width, std::string_view value) noexcept {
  if (!value.empty()) std::memcpy(field, value.data(), std::min(width, value.size()));
}

inline void put_octal(char* field, std::size_t width, std::uint64_t value) noexcept {
  field[width - 1] = '\0';
  for (std::size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
}

inline unsigned checksum(const char* block) noexcept {
  unsigned sum = 0;
  for (std::size_t i = 0; i < block_size; ++i)
    sum += (i >= 148 && i < 156) ? unsigned{' '} : static_cast<unsigned char>(block[i]);
  return sum;
}

// The historic variant that summed signed chars; some old writers produced it.
inline int signed_checksum(const char* block) noexcept {
  int sum = 0;
  for (std::size_t i = 0; i < block_size; ++i)
    sum += (i >= 148 && i < 156) ? int{' '} : static_cast<int>(static_cast<signed char>(block[i]));
  return sum;
}

inline void seal(char* block) noexcept {
  // Six octal digits, NUL, space: what GNU tar and Go write.
  put_octal(block + 148, 7, checksum(block));
  block[155] = ' ';
}

struct UstarFields {
  std::string name;      // as stored: directories end with '/'
  char typeflag = '0';
  unsigned mode = 0644;
  std::uint64_t size = 0;
  std::string linkname;
  std::uint64_t mtime = 0;
  std::uint64_t uid = 0;
  std::uint64_t gid = 0;
};

// Splits `name` into ustar's prefix (155) and name (100) fields, or returns false.
inline bool split_ustar_name(std::string_view name, std::string_view& prefix, std::string_view& rest) {
  if (name.size() <= 100) {
    prefix = {};
    rest = name;
    return true;
  }
  if (name.size() > 256) return false;
  // The shortest prefix that leaves at most 100 bytes of name.
  for (std::size_t slash = name.find('/'); slash != std::string_view::npos; slash = name.find('/', slash + 1)) {
    if (slash > 155) return false;
    const std::size_t tail = name.size() - slash - 1;
    if (tail == 0) return false;
    if (tail <= 100) {
      prefix = name.substr(0, slash);
      rest = name.substr(slash + 1);
      return !prefix.empty();
    }
  }
  return false;
}

inline std::string ustar_block(const UstarFields& f) {
  std::string block(block_size, '\0');
  char* b = block.data();
  std::string_view prefix, rest;
  if (!split_ustar_name(f.name, prefix, rest)) rest = std::string_view(f.name).substr(0, 100);
  put_string(b + 0, 100, rest);
  put_octal(b + 100, 8, f.mode & 07777);
  put_octal(b + 108, 8, f.uid < octal_limit(8) ? f.uid : 0);
  put_octal(b + 116, 8, f.gid < octal_limit(8) ? f.gid : 0);
  put_octal(b + 124, 12, f.size < octal_limit(12) ? f.size : 0);
  put_octal(b + 136, 12, f.mtime < octal_limit(12) ? f.mtime : 0);
  b[156] = f.typeflag;
  put_string(b + 157, 100, f.linkname);
  put_string(b + 257, 6, std::string_view("ustar\0", 6));
  put_string(b + 263, 2, "00");
  put_octal(b + 329, 8, 0);
  put_octal(b + 337, 8, 0);
  put_string(b + 345, 155, prefix);
  seal(b);
  return block;
}

}  // namespace detail

// One pax extended-header record, "<length> <key>=<value>\n", where <length> counts the whole
// record, its own digits included.
inline std::string pax_record(std::string_view key, std::string_view value) {
  const std::size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  std::size_t digits = detail::decimal_digits(body);
  while (detail::decimal_digits(body + digits) != digits) digits = detail::decimal_digits(body + digits);
  std::string record = std::to_string(body + digits);
  record += ' ';
  record += key;
  record += '=';
  record += value;
  record += '\n';
  return record;
}

// The header blocks for `entry`: a pax 'x' header first when ustar cannot hold the path
// (longer than its name/prefix split allows, or not ASCII), the link name (over 100 bytes or not
// ASCII), the size (8 GiB or more), the mtime (negative or past 2242) or the uid/gid; then the
// ustar header. The entry's data and its padding are not included.
inline std::string encode_header(const Entry& entry) {
  detail::UstarFields f;
  f.name = entry.path;
  if (entry.type == EntryType::directory && (f.name.empty() || f.name.back() != '/')) f.name += '/';
  switch (entry.type) {
    case EntryType::file: f.typeflag = '0'; break;
    case EntryType::directory: f.typeflag = '5'; break;
    case EntryType::symlink: f.typeflag = '2'; break;
    case EntryType::hardlink: f.typeflag = '1'; break;
    case EntryType::other: f.typeflag = entry.typeflag; break;
  }
  f.mode = entry.mode & 07777;
  f.size = entry.type == EntryType::file || entry.type == EntryType::other ? entry.size : 0;
  f.linkname = entry.linkname;
  f.mtime = entry.mtime < 0 ? 0 : static_cast<std::uint64_t>(entry.mtime);
  f.uid = entry.uid;
  f.gid = entry.gid;

  std::string records;
  std::string_view prefix, rest;
  if (!detail::is_ascii(f.name) || !detail::split_ustar_name(f.name, prefix, rest))
    records += pax_record("path", f.name);
  if (!detail::is_ascii(f.linkname) || f.linkname.size() > 100) records += pax_record("linkpath", f.linkname);
  if (f.size >= detail::octal_limit(12)) records += pax_record("size", std::to_string(f.size));
  if (entry.mtime < 0 || f.mtime >= detail::octal_limit(12)) records += pax_record("mtime", std::to_string(entry.mtime));
  if (f.uid >= detail::octal_limit(8)) records += pax_record("uid", std::to_string(f.uid));
  if (f.gid >= detail::octal_limit(8)) records += pax_record("gid", std::to_string(f.gid));

  if (records.empty()) return detail::ustar_block(f);

  // The ustar header keeps an ASCII stand-in for readers that ignore pax.
  for (char& c : f.name)
    if (static_cast<unsigned char>(c) >= 0x80) c = '_';
  if (f.name.size() > 100 && !detail::split_ustar_name(f.name, prefix, rest)) f.name.resize(100);
  for (char& c : f.linkname)
    if (static_cast<unsigned char>(c) >= 0x80) c = '_';
  if (f.linkname.size() > 100) f.linkname.resize(100);

  detail::UstarFields pax;
  std::string base = f.name;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (auto slash = base.rfind('/'); slash != std::string::npos) base.erase(0, slash + 1);
  pax.name = "PaxHeaders.0/" + base.substr(0, 80);
  pax.typeflag = 'x';
  pax.mode = 0644;
  pax.size = records.size();
  pax.mtime = f.mtime;
  std::string out = detail::ustar_block(pax);
  out += records;
  out.append(static_cast<std::size_t>(detail::padding(records.size())), '\0');
  out += detail::ustar_block(f);
  return out;
}

// Builds an archive lazily: nothing is read until the source is pulled, file contents are read
// in the caller's buffer, and size() is exact before the first byte is produced.
class Writer {
 public:
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
  http::BodySource source() && {
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

// ---- reading ----

// The reader's callbacks; any may be empty. A throw from one propagates out of feed().
struct Handler {
  std::function<void(const Entry&)> on_entry;       // an entry begins; `size` data bytes follow
  std::function<void(std::string_view)> on_data;    // a piece of the current entry's data
  std::function<void(const Entry&)> on_entry_end;   // the entry's data is complete
};

class Reader {
 public:
  // Pax extended headers and GNU long names larger than this are refused.
  static constexpr std::size_t max_extended_header = 1 << 20;

  explicit Reader(Handler handler) : handler_(std::move(handler)) {}

  void feed(std::string_view bytes) {
    if (failed_) detail::fail("the reader was used after an error");
    failed_ = true;  // cleared below unless something threw
    while (!bytes.empty()) {
      std::size_t used = 0;
      switch (state_) {
        case State::header:
          used = std::min(block_size - fill_, bytes.size());
          std::memcpy(block_.data() + fill_, bytes.data(), used);
          fill_ += used;
          if (fill_ == block_size) {
            fill_ = 0;
            header_offset_ = offset_ + used - block_size;
            process_header();
          }
          break;
        case State::data:
          used = take(bytes);
          if (handler_.on_data) handler_.on_data(bytes.substr(0, used));
          if (remaining_ == 0) end_entry();
          break;
        case State::extended:
          used = take(bytes);
          extended_.append(bytes.data(), used);
          if (remaining_ == 0) {
            apply_extended();
            skip_padding(extended_.size());
          }
          break;
        case State::padding:
          used = take(bytes);
          if (remaining_ == 0) {
            state_ = State::header;
            in_entry_ = false;
          }
          break;
        case State::end:
          used = bytes.size();  // whatever follows the end-of-archive marker is ignored
          break;
      }
      offset_ += used;
      bytes.remove_prefix(used);
    }
    failed_ = false;
  }

  // The input is complete: throws unless the archive ended properly.
  void finish() {
    if (failed_) detail::fail("the reader was used after an error");
    if (state_ == State::end) return;
    // One zero block without its twin: GNU tar accepts that with a warning, and so do we.
    if (state_ == State::header && fill_ == 0 && zero_blocks_ == 1) {
      state_ = State::end;
      return;
    }
    failed_ = true;
    std::string where;
    if (state_ == State::data || (state_ == State::padding && in_entry_))
      where = " inside entry " + detail::quote(current_.path);
    else if (state_ == State::extended || state_ == State::padding)
      where = " inside an extended header";
    else if (state_ == State::header && fill_ == 0)
      where = offset_ == 0 ? " (no data)" : " (no end-of-archive marker)";
    else
      where = " inside a header";
    detail::fail("truncated archive: it ends after " + std::to_string(offset_) + " bytes" + where);
  }

  // True once the end-of-archive marker was read.
  bool done() const noexcept { return state_ == State::end; }
  // Bytes consumed so far.
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  enum class State { header, data, extended, padding, end };

  std::size_t take(std::string_view bytes) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
    remaining_ -= n;
    return n;
  }

  static bool all_zero(const char* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i)
      if (p[i] != '\0') return false;
    return true;
  }

  static std::string field(const char* p, std::size_t width) {
    std::size_t n = 0;
    while (n < width && p[n] != '\0') ++n;
    return std::string(p, n);
  }

  // Octal (optionally space- or NUL-padded) or GNU base-256 (high bit of the first byte set).
  std::uint64_t number(std::size_t at, std::size_t width, const char* what) const {
    const auto* p = reinterpret_cast<const unsigned char*>(block_.data() + at);
    std::uint64_t value = 0;
    if (p[0] & 0x80) {
      if (p[0] & 0x40) bad_number(what);  // negative
      value = static_cast<std::uint64_t>(p[0] & 0x3f);
      for (std::size_t i = 1; i < width; ++i) {
        if (value >> 55) bad_number(what);
        value = (value << 8) | static_cast<std::uint64_t>(p[i]);
      }
      return value;
    }
    std::size_t i = 0;
    while (i < width && (p[i] == ' ' || p[i] == '\0')) ++i;
    for (; i < width && p[i] >= '0' && p[i] <= '7'; ++i) {
      if (value >> 60) bad_number(what);
      value = (value << 3) | static_cast<std::uint64_t>(p[i] - '0');
    }
    for (; i < width; ++i)
      if (p[i] != ' ' && p[i] != '\0') bad_number(what);
    return value;
  }

  [[noreturn]] void bad_number(const char* what) const {
    detail::fail("bad " + std::string(what) + " field in the header at offset " + std::to_string(header_offset_));
  }

  void process_header() {
    const char* b = block_.data();
    if (all_zero(b, block_size)) {
      if (++zero_blocks_ == 2) state_ = State::end;
      return;
    }
    if (zero_blocks_ > 0)
      detail::fail("a header follows a zero block at offset " + std::to_string(header_offset_));
    if (header_offset_ == 0 && static_cast<unsigned char>(b[0]) == 0x1f && static_cast<unsigned char>(b[1]) == 0x8b)
      detail::fail("the archive is gzip-compressed; ask for it without Accept-Encoding: gzip");

    const std::uint64_t stored = number(148, 8, "checksum");
    if (stored != detail::checksum(b) && static_cast<std::int64_t>(stored) != detail::signed_checksum(b))
      detail::fail("bad header checksum at offset " + std::to_string(header_offset_));

    const char typeflag = b[156];
    std::uint64_t size = number(124, 12, "size");
    if (typeflag == 'x' || typeflag == 'g' || typeflag == 'L' || typeflag == 'K') {
      if (size > max_extended_header)
        detail::fail("extended header of " + std::to_string(size) + " bytes at offset " +
                     std::to_string(header_offset_) + " is too large");
      extended_type_ = typeflag;
      extended_.clear();
      remaining_ = size;
      if (size == 0) {
        apply_extended();
        state_ = State::header;
      } else {
        state_ = State::extended;
      }
      return;
    }

    const bool ustar = std::memcmp(b + 257, "ustar\0", 6) == 0;  // POSIX; GNU writes "ustar  \0"
    Entry e;
    e.path = field(b, 100);
    if (ustar) {
      std::string prefix = field(b + 345, 155);
      if (!prefix.empty()) e.path = prefix + "/" + e.path;
    }
    e.linkname = field(b + 157, 100);
    e.typeflag = typeflag;
    e.mode = static_cast<unsigned>(number(100, 8, "mode") & 07777);
    e.uid = number(108, 8, "uid");
    e.gid = number(116, 8, "gid");
    e.mtime = static_cast<std::int64_t>(number(136, 12, "mtime"));

    auto apply = [&](const std::map<std::string, std::string>& records, bool global) {
      for (const auto& [key, value] : records) {
        if (global && local_.count(key)) continue;
        if (key == "path") {
          if (!value.empty()) e.path = value;
        } else if (key == "linkpath") {
          if (!value.empty()) e.linkname = value;
        } else if (key == "size") {
          if (!value.empty()) size = pax_number(key, value);
        } else if (key == "uid") {
          if (!value.empty()) e.uid = pax_number(key, value);
        } else if (key == "gid") {
          if (!value.empty()) e.gid = pax_number(key, value);
        } else if (key == "mtime") {
          if (!value.empty()) e.mtime = pax_time(value);
        }
      }
    };
    apply(global_, true);  // skipping what the entry's own pax header sets
    if (long_name_) e.path = *long_name_;
    if (long_link_) e.linkname = *long_link_;
    apply(local_, false);
    local_.clear();
    long_name_.reset();
    long_link_.reset();

    switch (typeflag) {
      case '0':
      case '7':
        e.type = EntryType::file;
        break;
      case '\0':  // pre-POSIX: a trailing slash marked a directory
        e.type = !e.path.empty() && e.path.back() == '/' ? EntryType::directory : EntryType::file;
        break;
      case '1': e.type = EntryType::hardlink; break;
      case '2': e.type = EntryType::symlink; break;
      case '5': e.type = EntryType::directory; break;
      default: e.type = EntryType::other; break;
    }
    // Header-only types carry no data whatever the size field says (as Go and GNU tar read them).
    if (typeflag == '1' || typeflag == '2' || typeflag == '3' || typeflag == '4' || typeflag == '5' || typeflag == '6')
      size = 0;
    e.size = size;
    while (e.path.size() > 1 && e.path.back() == '/') e.path.pop_back();

    current_ = std::move(e);
    in_entry_ = true;
    if (handler_.on_entry) handler_.on_entry(current_);
    remaining_ = size;
    if (size == 0) {
      end_entry();
    } else {
      state_ = State::data;
    }
  }

  void end_entry() {
    if (handler_.on_entry_end) handler_.on_entry_end(current_);
    skip_padding(current_.size);
  }

  void skip_padding(std::uint64_t size) {
    remaining_ = detail::padding(size);
    state_ = remaining_ == 0 ? State::header : State::padding;
    if (state_ == State::header) in_entry_ = false;
  }

  std::uint64_t pax_number(const std::string& key, const std::string& value) const {
    std::uint64_t n = 0;
    for (char c : value) {
      if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10)
        detail::fail("bad pax " + key + " record " + detail::quote(value) + " before offset " + std::to_string(header_offset_));
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
  }

  std::int64_t pax_time(const std::string& value) const {
    std::string_view v = value;
    bool negative = false;
    if (!v.empty() && v.front() == '-') {
      negative = true;
      v.remove_prefix(1);
    }
    v = v.substr(0, v.find('.'));
    const std::uint64_t n = pax_number("mtime", std::string(v));
    if (n > static_cast<std::uint64_t>(INT64_MAX)) detail::fail("bad pax mtime record " + detail::quote(value));
    return negative ? -static_cast<std::int64_t>(n) : static_cast<std::int64_t>(n);
  }

  void apply_extended() {
    if (extended_type_ == 'L' || extended_type_ == 'K') {
      std::string value = extended_;
      value.resize(std::strlen(value.c_str()));  // NUL-terminated
      (extended_type_ == 'L' ? long_name_ : long_link_) = std::move(value);
      return;
    }
    auto& target = extended_type_ == 'g' ? global_ : local_;
    std::string_view rest = extended_;
    while (!rest.empty()) {
      const std::size_t space = rest.find(' ');
      std::size_t length = 0;
      bool ok = space != std::string_view::npos && space > 0;
      for (std::size_t i = 0; ok && i < space; ++i) {
        if (rest[i] < '0' || rest[i] > '9' || length > rest.size()) ok = false;
        else length = length * 10 + static_cast<std::size_t>(rest[i] - '0');
      }
      ok = ok && length > space + 1 && length <= rest.size() && rest[length - 1] == '\n';
      std::string_view record = ok ? rest.substr(space + 1, length - space - 2) : std::string_view();
      const std::size_t equals = record.find('=');
      if (!ok || equals == std::string_view::npos || equals == 0)
        detail::fail("malformed pax record in the extended header at offset " + std::to_string(header_offset_));
      std::string key(record.substr(0, equals));
      std::string value(record.substr(equals + 1));
      if (extended_type_ == 'g' && value.empty()) target.erase(key);
      else target[std::move(key)] = std::move(value);
      rest.remove_prefix(length);
    }
  }

  Handler handler_;
  State state_ = State::header;
  std::array<char, block_size> block_{};
  std::size_t fill_ = 0;
  std::uint64_t offset_ = 0;         // bytes consumed
  std::uint64_t header_offset_ = 0;  // where the last header began
  std::uint64_t remaining_ = 0;
  int zero_blocks_ = 0;
  bool failed_ = false;
  bool in_entry_ = false;
  Entry current_;
  char extended_type_ = 0;
  std::string extended_;
  std::map<std::string, std::string> global_;
  std::map<std::string, std::string> local_;
  std::optional<std::string> long_name_;
  std::optional<std::string> long_link_;
};

// ---- extraction ----

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

namespace detail {

// The one regular file of an archive such as Docker's GET archive of a file path returns.
class SingleFile {
 public:
  using Begin = std::function<void(const Entry&)>;
  using Data = std::function<void(std::string_view)>;

  SingleFile(Begin begin, Data data)
      : begin_(std::move(begin)),
        data_(std::move(data)),
        reader_(Handler{[this](const Entry& e) { on_entry(e); }, [this](std::string_view d) { data_(d); }, {}}) {}
  SingleFile(const SingleFile&) = delete;
  SingleFile& operator=(const SingleFile&) = delete;

  void feed(std::string_view bytes) { reader_.feed(bytes); }
  void finish() {
    reader_.finish();
    if (!entry_) fail("the archive holds no file");
  }
  const std::optional<Entry>& entry() const noexcept { return entry_; }

 private:
  void on_entry(const Entry& e) {
    if (entry_) fail("expected a single file, but the archive also holds " + quote(e.path));
    // Docker names the entry by the file's base name: anything with a folder, an absolute path
    // or a ".." in it is not what we asked for, and is refused rather than trusted.
    if (e.path.empty() || e.path == "." || e.path == ".." || e.path.find('/') != std::string::npos)
      fail("refusing the archive entry " + quote(e.path) + ": expected a plain file name");
    switch (e.type) {
      case EntryType::file: break;
      case EntryType::directory: fail("expected a single file, but " + quote(e.path) + " is a folder");
      case EntryType::symlink:
        fail("expected a single file, but " + quote(e.path) + " is a symbolic link to " + quote(e.linkname));
      case EntryType::hardlink:
        fail("expected a single file, but " + quote(e.path) + " is a hard link to " + quote(e.linkname));
      case EntryType::other: fail("expected a single file, but " + quote(e.path) + " is not a regular file");
    }
    entry_ = e;
    begin_(e);
  }

  Begin begin_;
  Data data_;
  Reader reader_;
  std::optional<Entry> entry_;
};

}  // namespace detail

// Writes the archive's single regular file to exactly `destination` (a temporary file beside it,
// renamed into place by finish(); parent folders created), with the entry's permission bits.
// Anything but one regular file (a folder, a link, a second entry, nothing) is an Error.
class SingleFileExtractor {
 public:
  explicit SingleFileExtractor(std::string destination)
      : state_(std::make_unique<State>(std::move(destination))) {}

  void feed(std::string_view bytes) { state_->single.feed(bytes); }

  void finish() {
    state_->single.finish();
    std::string error;
    if (!state_->pending->commit(static_cast<mode_t>(state_->single.entry()->mode & 0777), error))
      throw Error(errc::io_error, "tar: " + error);
    state_->pending.reset();
  }

  // The entry's header once it has been read.
  const std::optional<Entry>& entry() const noexcept { return state_->single.entry(); }
  std::uint64_t bytes_written() const noexcept { return state_->bytes; }

 private:
  struct State {
    explicit State(std::string dest)
        : destination(std::move(dest)),
          single([this](const Entry&) { open(); }, [this](std::string_view d) { write(d); }) {}

    void open() {
      std::string error;
      auto created = workspace::detail::PendingFile::create(destination, error);
      if (!created) throw Error(errc::io_error, "tar: " + error);
      pending.emplace(std::move(*created));
    }

    void write(std::string_view d) {
      std::string error;
      if (!pending->write(d.data(), d.size(), error)) throw Error(errc::io_error, "tar: " + error);
      bytes += d.size();
    }

    std::string destination;
    std::optional<workspace::detail::PendingFile> pending;
    detail::SingleFile single;
    std::uint64_t bytes = 0;
  };

  std::unique_ptr<State> state_;
};

// Keeps the archive's single regular file in memory (for file_read). Files larger than
// `max_size` are refused before their data is read.
class SingleFileReader {
 public:
  explicit SingleFileReader(std::uint64_t max_size = UINT64_MAX)
      : state_(std::make_unique<State>(max_size)) {}

  void feed(std::string_view bytes) { state_->single.feed(bytes); }
  void finish() { state_->single.finish(); }

  const std::optional<Entry>& entry() const noexcept { return state_->single.entry(); }
  const std::string& content() const& noexcept { return state_->content; }
  std::string content() && { return std::move(state_->content); }

 private:
  struct State {
    explicit State(std::uint64_t max)
        : max_size(max),
          single(
              [this](const Entry& e) {
                if (e.size > max_size)
                  throw Error(errc::invalid_argument, "tar: " + detail::quote(e.path) + " is " + std::to_string(e.size) +
                                                          " bytes, more than the limit of " + std::to_string(max_size));
                content.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(e.size, std::uint64_t{64} << 20)));
              },
              [this](std::string_view d) { content.append(d); }) {}

    std::uint64_t max_size;
    std::string content;
    detail::SingleFile single;
  };

  std::unique_ptr<State> state_;
};

// Convenience: the content of the single file of a complete archive held in memory.
inline std::string read_single_file(std::string_view archive) {
  SingleFileReader reader;
  reader.feed(archive);
  reader.finish();
  return std::move(reader).content();
}

}  // namespace docker::tar
WORKSPACE_NAMESPACE_END
