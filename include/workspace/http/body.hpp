// Bodies that stream: from and to files, and multipart/form-data written as a stream, so an
// upload or a download of any size runs in constant memory.
#pragma once

#include <workspace/core/detail/random.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/version.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {
// An owned descriptor, shared by the copies of a std::function that reads from it.
struct FileHandle {
  int fd = -1;
  explicit FileHandle(int f) : fd(f) {}
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] inline void throw_errno(const std::string& what) {
  throw Error(std::error_code(errno, std::system_category()), what);
}
}  // namespace detail

// A streamed body read from a file, and its size.
struct FileSource {
  BodySource source;
  std::uint64_t size = 0;
};

inline FileSource file_source(const std::string& path) {
  // O_NONBLOCK so that opening a FIFO cannot wait for a writer; cleared once it is a file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) detail::throw_errno("open " + path);
  auto file = std::make_shared<detail::FileHandle>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) detail::throw_errno("stat " + path);
  if (!S_ISREG(st.st_mode)) throw Error(errc::invalid_argument, path + " is not a regular file");
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  BodySource source = [file, path](char* buffer, std::size_t capacity) -> std::size_t {
    for (;;) {
      const ssize_t n = ::read(file->fd, buffer, capacity);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) detail::throw_errno("read " + path);
    }
  };
  return {std::move(source), static_cast<std::uint64_t>(st.st_size)};
}

// Sets a request's body to stream from a file, with its Content-Length.
inline void set_file_body(Request& request, const std::string& path) {
  auto file = file_source(path);
  request.source = std::move(file.source);
  request.source_size = file.size;
}

// multipart/form-data (RFC 7578) produced as a stream: part headers are generated as they are
// reached, and file parts read from their source, so the body is never held in memory. The size
// is known whenever every part's size is, and then goes out as Content-Length.
class Multipart {
 public:
  Multipart() {
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char bytes[24];
    workspace::detail::random_fill(bytes, sizeof bytes);
    boundary_ = "----workspace-";
    for (const unsigned char b : bytes) boundary_ += alphabet[b % (sizeof alphabet - 1)];
  }

  const std::string& boundary() const noexcept { return boundary_; }
  std::string content_type() const { return "multipart/form-data; boundary=" + boundary_; }

  Multipart& add_field(std::string name, std::string value) {
    parts_.push_back(Part{std::move(name), {}, {}, std::move(value), {}, 0, false});
    return *this;
  }

  Multipart& add_file(std::string name, std::string filename, std::string content,
                      std::string content_type = "application/octet-stream") {
    check_content_type(content_type);
    parts_.push_back(Part{std::move(name), std::move(filename), std::move(content_type), std::move(content), {}, 0, true});
    return *this;
  }

  // A file part streamed from `source`, which must give exactly `size` bytes.
  Multipart& add_file(std::string name, std::string filename, BodySource source, std::uint64_t size,
                      std::string content_type = "application/octet-stream") {
    check_content_type(content_type);
    parts_.push_back(Part{std::move(name), std::move(filename), std::move(content_type), {}, std::move(source), size, true});
    return *this;
  }

  Multipart& add_file_from_path(std::string name, std::string filename, const std::string& path,
                                std::string content_type = "application/octet-stream") {
    auto file = file_source(path);
    return add_file(std::move(name), std::move(filename), std::move(file.source), file.size, std::move(content_type));
  }

  std::uint64_t size() const {
    std::uint64_t total = closing(boundary_).size();
    for (const auto& part : parts_) total += header(boundary_, part).size() + body_size(part) + 2;
    return total;
  }

  // Moves the parts into the request as its streamed body, with Content-Type and Content-Length.
  void attach_to(Request& request) && {
    request.headers.set("Content-Type", content_type());
    request.source_size = size();
    auto state = std::make_shared<Stream>(std::move(boundary_), std::move(parts_));
    request.source = [state](char* buffer, std::size_t capacity) { return state->read(buffer, capacity); };
  }

 private:
  struct Part {
    std::string name;
    std::string filename;
    std::string content_type;
    std::string data;
    BodySource source;
    std::uint64_t source_size = 0;
    bool is_file = false;
  };

  static void check_content_type(const std::string& type) {
    if (type.find_first_of("\r\n") != std::string::npos || type.find('\0') != std::string::npos)
      throw Error(errc::invalid_argument, "multipart content type contains a line break");
  }

  // Quotes and line breaks in names are percent-escaped, as browsers do (WHATWG).
  static std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
      if (c == '"') out += "%22";
      else if (c == '\r') out += "%0D";
      else if (c == '\n') out += "%0A";
      else out += c;
    }
    return out;
  }

  static std::string header(const std::string& boundary, const Part& part) {
    std::string h = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + escape(part.name) + "\"";
    if (part.is_file) h += "; filename=\"" + escape(part.filename) + "\"";
    h += "\r\n";
    if (part.is_file) h += "Content-Type: " + part.content_type + "\r\n";
    h += "\r\n";
    return h;
  }

  static std::uint64_t body_size(const Part& part) {
    return part.source ? part.source_size : part.data.size();
  }

  static std::string closing(const std::string& boundary) { return "--" + boundary + "--\r\n"; }

  // Walks the parts: header, data, CRLF; then the closing boundary.
  struct Stream {
    Stream(std::string b, std::vector<Part> p) : boundary(std::move(b)), parts(std::move(p)) {}

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
        if (in_source) {
          Part& part = parts[index];
          const std::size_t n = part.source(buffer + written, capacity - written);
          if (n > 0) {
            source_done += n;
            if (source_done > part.source_size) throw Error(errc::invalid_argument, "multipart part " + part.name + " is longer than declared");
            written += n;
            continue;
          }
          if (source_done != part.source_size) throw Error(errc::invalid_argument, "multipart part " + part.name + " is shorter than declared");
          in_source = false;
          set_pending("\r\n");
          ++index;
          continue;
        }
        if (finished) break;
        if (index >= parts.size()) {
          set_pending(closing(boundary));
          finished = true;
          continue;
        }
        Part& part = parts[index];
        if (part.source) {
          set_pending(header(boundary, part));
          in_source = true;
          source_done = 0;
        } else {
          set_pending(header(boundary, part) + std::move(part.data) + "\r\n");
          ++index;
        }
      }
      return written;
    }

    void set_pending(std::string s) {
      pending = std::move(s);
      pending_at = 0;
    }

    std::string boundary;
    std::vector<Part> parts;
    std::size_t index = 0;
    std::string pending;
    std::size_t pending_at = 0;
    bool in_source = false;
    std::uint64_t source_done = 0;
    bool finished = false;
  };

  std::string boundary_;
  std::vector<Part> parts_;
};

}  // namespace http
WORKSPACE_NAMESPACE_END
