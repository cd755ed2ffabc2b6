// The one file of a download: SingleFileExtractor writes it to an exact path (through a
// temporary file renamed into place), SingleFileReader keeps it in memory. Anything but exactly
// one regular file with a plain name is refused.
#pragma once

#include <workspace/core/detail/files.hpp>
#include <workspace/core/error.hpp>
#include <workspace/tar/detail/format.hpp>
#include <workspace/tar/entry.hpp>
#include <workspace/tar/reader.hpp>
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

}  // namespace tar
WORKSPACE_NAMESPACE_END
