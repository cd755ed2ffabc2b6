// The tar header format (ustar, pax, GNU numbers): encoding a header, and the path helpers the
// writer, the reader and the extractor share.
#pragma once

#include <workspace/core/detail/validate.hpp>
#include <workspace/core/error.hpp>
#include <workspace/tar/entry.hpp>
#include <workspace/version.hpp>

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

}  // namespace tar
WORKSPACE_NAMESPACE_END
