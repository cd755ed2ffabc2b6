// tar::Reader is a push parser: feed it the bytes as they arrive, in pieces of any size, and it
// calls back with each entry's header, its data in pieces, and its end. It reads ustar, pax
// ('x' and 'g') and GNU ('L'/'K' long names, base-256 numbers) archives and verifies every
// checksum. A malformed archive is Error(protocol_error), its message starting "tar: ".
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/tar/detail/format.hpp>
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

}  // namespace tar
WORKSPACE_NAMESPACE_END
