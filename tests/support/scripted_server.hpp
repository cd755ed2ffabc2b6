// A fault-injecting, scripted HTTP/1.1 server for the HTTP client's tests.
//
// Deliberately written on plain POSIX sockets and std::thread (no Asio), so that it cannot share
// bugs with the client under test. Listens on 127.0.0.1 (an ephemeral port) or on a Unix socket
// path, never on any other address.
//
//   workspace_test::ScriptedServer server(workspace_test::respond_ok("hello"));
//   client.get(server.url() + "/x");                       // http://127.0.0.1:PORT/x
//   EXPECT_EQ(server.requests(), 1u);
//   EXPECT_TRUE(server.errors().empty());                  // no protocol errors seen
//
// Every accepted connection runs the handler (a std::function<void(Peer&)>) on a thread of its
// own. The destructor stops everything promptly: every blocking Peer call polls a stop pipe and
// every peer socket is shut down, so handlers blocked reading, writing or stalling return (the
// Peer call throws ServerStopping, which the server swallows). A handler that blocks in code of
// its own (a condition variable, std::this_thread::sleep_for) can hang the destructor: use
// Peer::sleep_for, which returns early when the server stops.
//
// Exceptions escaping a handler are recorded in errors(), except ServerStopping and
// PeerDisconnected (the client went away: normal in fault tests). A ProtocolError (the client
// sent something that is not valid HTTP/1.1, e.g. both Content-Length and Transfer-Encoding) is
// also answered with a best-effort 400 before the connection is closed.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace workspace_test {

using Headers = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------------------------------------
// Errors thrown by Peer calls.

// Base of the I/O errors below.
struct PeerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The server is stopping (destructor or stop()); every blocking Peer call throws it.
struct ServerStopping : PeerError {
  ServerStopping() : PeerError("scripted server: stopping") {}
};
// The client closed or reset the connection in the middle of something (or the Peer was closed).
struct PeerDisconnected : PeerError {
  using PeerError::PeerError;
};
// The client sent bytes that are not valid HTTP/1.1. Recorded in errors(), answered with 400.
struct ProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// FNV-1a 64 over a byte stream; shared by tests and the client side of upload/download checks.
struct Checksum {
  std::uint64_t fnv1a = 0xcbf29ce484222325ULL;

  void update(std::string_view bytes) noexcept {
    std::uint64_t h = fnv1a;
    for (const char c : bytes) {
      h ^= static_cast<unsigned char>(c);
      h *= 0x100000001b3ULL;
    }
    fnv1a = h;
  }
  // 16 lower-case hex digits.
  std::string hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (std::size_t i = 0; i < 16; ++i) {
      out[15 - i] = digits[(fnv1a >> (4 * i)) & 0xFU];
    }
    return out;
  }
  static Checksum of(std::string_view bytes) noexcept {
    Checksum c;
    c.update(bytes);
    return c;
  }
};

namespace detail {

inline char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}
inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}
inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
// For error messages: escapes control bytes, keeps at most 200 characters.
inline std::string printable(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : s.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u >= 0x7f) {
      out += "\\x";
      out += digits[u >> 4];
      out += digits[u & 0xFU];
    } else {
      out += c;
    }
  }
  if (s.size() > 200) out += "...";
  return out;
}
// Values of every header called `name`, comma-joined (RFC 9110 §5.3); "" when absent.
inline std::string header_value(const Headers& headers, std::string_view name) {
  std::string out;
  bool first = true;
  for (const auto& [n, v] : headers) {
    if (!iequals(n, name)) continue;
    if (!first) out += ", ";
    out += v;
    first = false;
  }
  return out;
}
inline bool has_header(const Headers& headers, std::string_view name) noexcept {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return iequals(h.first, name); });
}
// Whether a comma-separated header (e.g. Connection) lists `token`.
inline bool has_token(const Headers& headers, std::string_view name, std::string_view token) {
  for (const auto& [n, v] : headers) {
    if (!iequals(n, name)) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (iequals(item, token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}
inline std::string reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}
inline std::string format_response(int status, std::string_view body, const Headers& headers,
                                   bool send_body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  for (const auto& [n, v] : headers) out += n + ": " + v + "\r\n";
  const bool no_body_status = (status >= 100 && status < 200) || status == 204;
  if (!no_body_status && !has_header(headers, "Content-Length") &&
      !has_header(headers, "Transfer-Encoding")) {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  if (send_body) out.append(body);
  return out;
}

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("scripted server: ") + what);
}

inline int poll_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 60'000));
}

}  // namespace detail

// Deterministic filler bytes: "abcdefghijklmnopqrstuvwxyzabc...", n of them.
inline std::string pattern_bytes(std::size_t n) {
  std::string out(n, 'a');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + static_cast<int>(i % 26));
  return out;
}

// A complete Content-Length-framed response (no Content-Length is added for 1xx and 204, nor when
// `headers` already has Content-Length or Transfer-Encoding).
inline std::string http_response(int status, std::string_view body = {},
                                 const Headers& headers = {}) {
  return detail::format_response(status, body, headers, true);
}

// ---------------------------------------------------------------------------------------------
struct RequestHead {
  std::string method;   // "GET"
  std::string target;   // "/path?query", exactly as received
  std::string version;  // "HTTP/1.1"
  Headers headers;      // in order, names as received
  std::string raw;      // the head exactly as received, blank line included

  // Values of every header called `name` (case-insensitive), comma-joined; "" when absent.
  std::string header(std::string_view name) const { return detail::header_value(headers, name); }
  bool has_header(std::string_view name) const { return detail::has_header(headers, name); }
  std::size_t header_count(std::string_view name) const {
    return static_cast<std::size_t>(std::count_if(
        headers.begin(), headers.end(),
        [&](const auto& h) { return detail::iequals(h.first, name); }));
  }
  // Whether the client asked for the connection to end after this request.
  bool wants_close() const {
    if (detail::has_token(headers, "Connection", "close")) return true;
    return version == "HTTP/1.0" && !detail::has_token(headers, "Connection", "keep-alive");
  }
};

class ScriptedServer;

// ---------------------------------------------------------------------------------------------
// One accepted connection. Used by its handler thread only (the server touches it only to shut
// the socket down when stopping).
class Peer {
 public:
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  ~Peer() { close_fd(false); }

  static constexpr std::size_t piece_size = 64 * 1024;
  static constexpr std::size_t max_head_bytes = 1024 * 1024;
  static constexpr std::size_t max_line_bytes = 64 * 1024;

  // 0 for the first connection the server accepted, 1 for the next...
  std::size_t index() const noexcept { return index_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  bool stopping() const noexcept { return stopping_->load(); }
  int native_handle() const noexcept { return fd_; }

  // Reads one request head, up to and including the blank line. nullopt when the client closed
  // (or reset) the connection before sending a byte of it. Throws ProtocolError on malformed
  // heads (bare LF, obs-fold, a blank line before the request line, over max_head_bytes...),
  // PeerDisconnected on EOF inside the head.
  std::optional<RequestHead> read_request() {
    std::size_t scan = 0;
    std::size_t end = std::string_view::npos;
    for (;;) {
      const std::string_view a = avail();
      end = a.find("\r\n\r\n", scan);
      const auto bare = a.find("\n\n", scan);
      if (bare != std::string_view::npos && (end == std::string_view::npos || bare < end)) {
        throw ProtocolError("bare LF ending a request head: " + detail::printable(a));
      }
      if (end != std::string_view::npos) break;
      if (a.size() > max_head_bytes) throw ProtocolError("request head over 1 MiB");
      scan = a.size() >= 3 ? a.size() - 3 : 0;
      if (!fill()) {
        if (avail().empty()) return std::nullopt;
        throw PeerDisconnected("client closed the connection inside a request head: " +
                               detail::printable(avail()));
      }
    }
    const std::string raw(avail().substr(0, end + 4));
    consume(end + 4);
    RequestHead head = parse_head(raw);
    requests_->fetch_add(1);
    return head;
  }

  // The whole decoded body (Content-Length or chunked; empty when the request has neither).
  std::string read_body(const RequestHead& head) {
    std::string body;
    read_body_to(head, [&](std::string_view piece) { body.append(piece); });
    return body;
  }
  // Reads the body in pieces of at most 64 KiB without keeping it; returns its decoded size and
  // feeds every byte to `checksum`.
  std::uint64_t drain_body(const RequestHead& head, Checksum& checksum) {
    return read_body_to(head, [&](std::string_view piece) { checksum.update(piece); });
  }
  // Streams the decoded body to `sink`; returns its size.
  std::uint64_t read_body_to(const RequestHead& head,
                             const std::function<void(std::string_view)>& sink) {
    trailers_.clear();
    std::uint64_t length = 0;
    switch (framing(head, length)) {
      case Framing::none:
        return 0;
      case Framing::content_length:
        read_exact_to(length, sink);
        return length;
      case Framing::chunked:
        break;
    }
    std::uint64_t total = 0;
    for (;;) {
      const std::string line = read_line("chunk size line");
      const std::uint64_t size = parse_chunk_size(line);
      if (size == 0) break;
      read_exact_to(size, sink);
      total += size;
      const std::string after = read_line("CRLF after chunk data");
      if (!after.empty()) {
        throw ProtocolError("chunk data longer than its declared size " + std::to_string(size) +
                            ": " + detail::printable(after));
      }
    }
    for (;;) {
      const std::string line = read_line("trailer section");
      if (line.empty()) break;
      trailers_.push_back(parse_field(line));
    }
    return total;
  }
  // Trailer fields of the last chunked body read.
  const Headers& last_trailers() const noexcept { return trailers_; }

  // Whatever bytes are available (at least one, waiting for them); "" at EOF.
  std::string read_some() {
    if (!avail().empty()) {
      std::string out(avail());
      consume(out.size());
      return out;
    }
    const std::size_t got = recv_some(scratch_.data(), scratch_.size());
    return std::string(scratch_.data(), got);
  }
  // Exactly n bytes; throws PeerDisconnected on an early EOF.
  std::string read_exact(std::size_t n) {
    std::string out;
    read_exact_to(n, [&](std::string_view piece) { out.append(piece); });
    return out;
  }

  void write(std::string_view bytes) {
    while (!bytes.empty()) {
      if (stopping()) throw ServerStopping();
      const int fd = fd_;
      if (fd < 0) throw PeerDisconnected("write on a closed peer");
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wait_io(POLLOUT, -1);
        continue;
      }
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) {
        throw PeerDisconnected(std::string("client went away while we wrote: ") +
                               std::strerror(errno));
      }
      detail::throw_errno("send");
    }
  }
  // Writes `bytes` in pieces of `piece` bytes with `gap` between them (TCP_NODELAY is on), to
  // make the client's parser meet every split. Returns early (throwing) when the server stops.
  void write_in_pieces(std::string_view bytes, std::size_t piece,
                       std::chrono::milliseconds gap = std::chrono::milliseconds(1)) {
    piece = std::max<std::size_t>(piece, 1);
    while (!bytes.empty()) {
      const std::size_t n = std::min(piece, bytes.size());
      write(bytes.substr(0, n));
      bytes.remove_prefix(n);
      if (!bytes.empty() && !sleep_for(gap)) throw ServerStopping();
    }
  }
  // A Content-Length-framed response (see http_response()).
  void write_response(int status, std::string_view body, const Headers& headers = {}) {
    write(http_response(status, body, headers));
  }
  // Waits until the kernel has delivered everything written so far (the send queue is empty),
  // so that a following reset() does not discard it. false on timeout or when stopping.
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const int fd = fd_;
      if (fd < 0) return false;
      int queued = 0;
      if (::ioctl(fd, TIOCOUTQ, &queued) != 0) return false;
      if (queued == 0) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (!sleep_for(std::chrono::milliseconds(1))) return false;
    }
  }

  // SO_LINGER {1, 0} then close: the kernel discards unsent data and sends RST (over TCP; a Unix
  // socket peer sees ECONNRESET only if it had unread data, EOF otherwise).
  void reset() {
    const std::lock_guard lock(fd_mutex_);
    if (fd_ < 0) return;
    const linger lin{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    ::close(fd_);
    fd_ = -1;
  }
  // Closes the socket. Bytes the client sent that nobody read are discarded first (as far as
  // they have arrived), so that the kernel sends FIN rather than RST.
  void close() { close_fd(true); }
  void shutdown_write() {
    const std::lock_guard lock(fd_mutex_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  }
  // Blocks, reading and discarding, until the client closes (or resets) the connection or the
  // server stops.
  void stall() {
    buf_.clear();
    off_ = 0;
    try {
      while (recv_some(scratch_.data(), scratch_.size()) > 0) {
      }
    } catch (const ServerStopping&) {
    }
  }
  // Reads and discards until the client closes (or resets): true; false on timeout or when the
  // server stops.
  bool wait_closed_by_client(std::chrono::milliseconds timeout) {
    if (eof_) return true;
    buf_.clear();
    off_ = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    try {
      for (;;) {
        const int fd = fd_;
        if (fd < 0) throw PeerDisconnected("wait_closed_by_client on a closed peer");
        const ssize_t n = ::recv(fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
          eof_ = true;
          return true;
        }
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_errno("recv");
        const int ms = detail::poll_ms(deadline);
        if (ms == 0) return false;
        wait_io(POLLIN, ms);
      }
    } catch (const ServerStopping&) {
      return false;
    }
  }
  // Sleeps, waking early when the server stops: false then.
  bool sleep_for(std::chrono::milliseconds duration) {
    pollfd p{stop_fd_, POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + duration;
    for (;;) {
      if (stopping()) return false;
      const int ms = detail::poll_ms(deadline);
      if (ms == 0) return true;
      const int r = ::poll(&p, 1, ms);
      if (r > 0) return false;
    }
  }

 private:
  friend class ScriptedServer;
  enum class Framing { none, content_length, chunked };

  Peer(int fd, int stop_fd, const std::atomic<bool>* stopping_flag,
       std::atomic<std::size_t>* request_counter, std::size_t connection_index)
      : fd_(fd),
        stop_fd_(stop_fd),
        stopping_(stopping_flag),
        requests_(request_counter),
        index_(connection_index),
        scratch_(piece_size) {}

  // Called by the server (another thread) when stopping.
  void abort_io() {
    const std::lock_guard lock(fd_mutex_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  void close_fd(bool drain) {
    if (drain && fd_ >= 0 && !stopping()) {
      // Discard what has already arrived, boundedly, so that close() sends FIN, not RST.
      for (std::size_t total = 0; total < (16U << 20);) {
        const ssize_t n = ::recv(fd_, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        total += static_cast<std::size_t>(n);
      }
    }
    const std::lock_guard lock(fd_mutex_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string_view avail() const noexcept {
    return std::string_view(buf_).substr(off_);
  }
  void consume(std::size_t n) noexcept {
    off_ += n;
    if (off_ >= buf_.size()) {
      buf_.clear();
      off_ = 0;
    }
  }
  // Appends what arrives (waiting for at least one byte) to the buffer; false at EOF.
  bool fill() {
    if (off_ > 0) {
      buf_.erase(0, off_);
      off_ = 0;
    }
    const std::size_t old = buf_.size();
    buf_.resize(old + piece_size);
    std::size_t got = 0;
    try {
      got = recv_some(buf_.data() + old, piece_size);
    } catch (...) {
      buf_.resize(old);
      throw;
    }
    buf_.resize(old + got);
    return got > 0;
  }
  // Waits until fd_ is ready for `events` or timeout_ms passes (-1: forever): true when ready.
  // Throws ServerStopping when the server stops.
  bool wait_io(short events, int timeout_ms) {
    for (;;) {
      if (stopping()) throw ServerStopping();
      pollfd p[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
      const int r = ::poll(p, 2, timeout_ms);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) detail::throw_errno("poll");
      if (p[1].revents != 0 || stopping()) throw ServerStopping();
      return r > 0;
    }
  }
  // One recv of at most n bytes (waiting for data); 0 at EOF or on ECONNRESET.
  std::size_t recv_some(char* data, std::size_t n) {
    for (;;) {
      if (stopping()) throw ServerStopping();
      const int fd = fd_;
      if (fd < 0) throw PeerDisconnected("read on a closed peer");
      const ssize_t got = ::recv(fd, data, n, MSG_DONTWAIT);
      if (got > 0) return static_cast<std::size_t>(got);
      if (got == 0 || errno == ECONNRESET) {
        eof_ = true;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_io(POLLIN, -1);
        continue;
      }
      detail::throw_errno("recv");
    }
  }
  void read_exact_to(std::uint64_t n, const std::function<void(std::string_view)>& sink) {
    while (n > 0) {
      const std::string_view a = avail();
      if (!a.empty()) {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n, a.size()));
        sink(a.substr(0, take));
        consume(take);
        n -= take;
        continue;
      }
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, scratch_.size()));
      const std::size_t got = recv_some(scratch_.data(), want);
      if (got == 0) {
        throw PeerDisconnected("client closed the connection with " + std::to_string(n) +
                               " body bytes still to come");
      }
      sink(std::string_view(scratch_.data(), got));
      n -= got;
    }
  }
  // One CRLF-terminated line, without the CRLF. A bare LF is a ProtocolError.
  std::string read_line(const char* what) {
    for (;;) {
      const std::string_view a = avail();
      const auto lf = a.find('\n');
      if (lf != std::string_view::npos) {
        if (lf == 0 || a[lf - 1] != '\r') {
          throw ProtocolError(std::string("bare LF in ") + what + ": " +
                              detail::printable(a.substr(0, lf + 1)));
        }
        std::string line(a.substr(0, lf - 1));
        consume(lf + 1);
        if (line.find('\r') != std::string::npos) {
          throw ProtocolError(std::string("bare CR in ") + what + ": " + detail::printable(line));
        }
        return line;
      }
      if (a.size() > max_line_bytes) {
        throw ProtocolError(std::string(what) + " over 64 KiB: " + detail::printable(a));
      }
      if (!fill()) {
        throw PeerDisconnected(std::string("client closed the connection inside a ") + what);
      }
    }
  }
  static std::uint64_t parse_chunk_size(std::string_view line) {
    std::uint64_t value = 0;
    std::size_t i = 0;
    for (; i < line.size(); ++i) {
      const char c = line[i];
      unsigned digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<unsigned>(c - 'A' + 10);
      } else {
        break;
      }
      if (value > (UINT64_MAX >> 4)) {
        throw ProtocolError("chunk size overflows 64 bits: " + detail::printable(line));
      }
      value = (value << 4) | digit;
    }
    if (i == 0) throw ProtocolError("chunk size line without a size: " + detail::printable(line));
    const std::string_view rest = detail::trim(line.substr(i));
    if (!rest.empty() && rest.front() != ';') {
      throw ProtocolError("junk after the chunk size: " + detail::printable(line));
    }
    return value;
  }
  static std::pair<std::string, std::string> parse_field(std::string_view line) {
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      throw ProtocolError("obsolete line folding: " + detail::printable(line));
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      throw ProtocolError("header line without a name: " + detail::printable(line));
    }
    const std::string_view name = line.substr(0, colon);
    for (const char c : name) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '"' || c == '/' || c == '[' ||
          c == ']' || c == '{' || c == '}' || c == ',' || c == ';' || c == '=' || c == '<' ||
          c == '>' || c == '?' || c == '@' || c == '\\') {
        throw ProtocolError("invalid header name: " + detail::printable(line));
      }
    }
    const std::string_view value = detail::trim(line.substr(colon + 1));
    for (const char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        throw ProtocolError("control byte in header value: " + detail::printable(line));
      }
    }
    return {std::string(name), std::string(value)};
  }
  static RequestHead parse_head(std::string raw) {
    RequestHead head;
    const std::string_view all = std::string_view(raw).substr(0, raw.size() - 2);  // last CRLF
    std::vector<std::string_view> lines;
    for (std::size_t pos = 0; pos < all.size();) {
      const auto crlf = all.find("\r\n", pos);
      lines.push_back(all.substr(pos, crlf - pos));
      pos = crlf + 2;
    }
    for (const std::string_view line : lines) {
      if (line.find_first_of("\r\n") != std::string_view::npos ||
          line.find('\0') != std::string_view::npos) {
        throw ProtocolError("bare CR/LF or NUL in the request head: " + detail::printable(raw));
      }
    }
    if (lines.empty() || lines.front().empty()) {
      throw ProtocolError("empty line before the request line (stray CRLF after a body?): " +
                          detail::printable(raw));
    }
    const std::string_view request_line = lines.front();
    const auto sp1 = request_line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0 ||
        sp2 == sp1 + 1 || request_line.find(' ', sp2 + 1) != std::string_view::npos) {
      throw ProtocolError("malformed request line: " + detail::printable(request_line));
    }
    head.method = std::string(request_line.substr(0, sp1));
    head.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
    head.version = std::string(request_line.substr(sp2 + 1));
    if (head.version != "HTTP/1.1" && head.version != "HTTP/1.0") {
      throw ProtocolError("unsupported HTTP version: " + detail::printable(request_line));
    }
    for (std::size_t i = 1; i < lines.size(); ++i) head.headers.push_back(parse_field(lines[i]));
    head.raw = std::move(raw);
    return head;
  }
  static Framing framing(const RequestHead& head, std::uint64_t& length) {
    const bool te = head.has_header("Transfer-Encoding");
    const bool cl = head.has_header("Content-Length");
    if (te && cl) {
      throw ProtocolError("request has both Transfer-Encoding and Content-Length");
    }
    if (te) {
      const std::string value = head.header("Transfer-Encoding");
      const auto comma = value.rfind(',');
      const std::string_view last =
          detail::trim(std::string_view(value).substr(comma == std::string::npos ? 0 : comma + 1));
      if (!detail::iequals(last, "chunked")) {
        throw ProtocolError("request Transfer-Encoding does not end in chunked: " + value);
      }
      return Framing::chunked;
    }
    if (!cl) return Framing::none;
    std::optional<std::uint64_t> seen;
    const std::string value = head.header("Content-Length");
    std::string_view rest = value;
    for (;;) {
      const auto comma = rest.find(',');
      const std::string_view item = detail::trim(rest.substr(0, comma));
      if (item.empty() || item.size() > 19 ||
          item.find_first_not_of("0123456789") != std::string_view::npos) {
        throw ProtocolError("invalid Content-Length: " + value);
      }
      std::uint64_t v = 0;
      for (const char c : item) v = v * 10 + static_cast<std::uint64_t>(c - '0');
      if (seen && *seen != v) throw ProtocolError("conflicting Content-Length values: " + value);
      seen = v;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    length = *seen;
    return Framing::content_length;
  }

  std::mutex fd_mutex_;  // guards closing fd_ against abort_io() from the stopping thread
  int fd_;               // written only by the handler thread (under fd_mutex_)
  const int stop_fd_;
  const std::atomic<bool>* stopping_;
  std::atomic<std::size_t>* requests_;
  const std::size_t index_;
  std::vector<char> scratch_;
  std::string buf_;
  std::size_t off_ = 0;
  bool eof_ = false;
  Headers trailers_;
};

// ---------------------------------------------------------------------------------------------
class ScriptedServer {
 public:
  using Handler = std::function<void(Peer&)>;

  // Listens on 127.0.0.1, on a port the kernel picks.
  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    detail::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) detail::throw_errno("socket");
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      detail::throw_errno("bind 127.0.0.1:0");
    }
    socklen_t len = sizeof addr;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      detail::throw_errno("getsockname");
    }
    port_ = ntohs(addr.sin_port);
    start(std::move(fd));
  }

  // Listens on a Unix socket at `path` (a stale socket file there is replaced; any other file
  // is an error). The file is removed when the server stops. url() is "http://localhost".
  static ScriptedServer unix_socket(std::string path, Handler handler) {
    return ScriptedServer(UnixTag{}, std::move(path), std::move(handler));
  }

  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;
  ~ScriptedServer() { stop(); }

  std::uint16_t port() const noexcept { return port_; }  // 0 for a Unix socket server
  const std::string& unix_path() const noexcept { return unix_path_; }
  std::string url() const {
    return unix_path_.empty() ? "http://127.0.0.1:" + std::to_string(port_) : "http://localhost";
  }
  // Connections accepted so far.
  std::size_t connections() const noexcept { return connections_.load(); }
  // Request heads read so far (by Peer::read_request), across connections.
  std::size_t requests() const noexcept { return requests_.load(); }
  // What escaped handlers (ProtocolError, failed expectations...), oldest first.
  std::vector<std::string> errors() const {
    const std::lock_guard lock(mutex_);
    return errors_;
  }

  // Stops accepting, wakes and shuts down every connection, joins every thread. Idempotent.
  // Must not be called from a handler.
  void stop() {
    const std::lock_guard stop_lock(stop_mutex_);
    if (stopped_) return;
    stopping_.store(true);
    const char byte = 1;
    while (::write(stop_write_.get(), &byte, 1) < 0 && errno == EINTR) {
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    std::list<Connection> doomed;
    {
      const std::lock_guard lock(mutex_);
      for (Connection& c : connections_list_) c.peer->abort_io();
      doomed.splice(doomed.end(), connections_list_);
    }
    for (Connection& c : doomed) {
      if (c.thread.joinable()) c.thread.join();
    }
    doomed.clear();
    listen_fd_.reset();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    stopped_ = true;
  }

 private:
  struct UnixTag {};
  struct Connection {
    std::unique_ptr<Peer> peer;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  ScriptedServer(UnixTag, std::string path, Handler handler) : handler_(std::move(handler)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) {
      throw std::invalid_argument("scripted server: bad Unix socket path length: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        throw std::invalid_argument("scripted server: not a socket, will not replace: " + path);
      }
      ::unlink(path.c_str());
    }
    detail::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) detail::throw_errno("socket");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      detail::throw_errno(("bind " + path).c_str());
    }
    unix_path_ = std::move(path);
    try {
      start(std::move(fd));
    } catch (...) {
      ::unlink(unix_path_.c_str());
      throw;
    }
  }

  void start(detail::Fd fd) {
    if (::listen(fd.get(), SOMAXCONN) != 0) detail::throw_errno("listen");
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) detail::throw_errno("pipe2");
    stop_read_ = detail::Fd(pipe_fds[0]);
    stop_write_ = detail::Fd(pipe_fds[1]);
    listen_fd_ = std::move(fd);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  void record(std::string message) {
    const std::lock_guard lock(mutex_);
    errors_.push_back(std::move(message));
  }

  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
      const int r = ::poll(p, 2, -1);
      if (stopping_.load()) return;
      if (r < 0) {
        if (errno == EINTR) continue;
        record(std::string("accept loop: poll: ") + std::strerror(errno));
        return;
      }
      if ((p[0].revents & POLLIN) == 0) continue;
      const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        continue;  // EAGAIN, ECONNABORTED, EINTR...
      }
      if (unix_path_.empty()) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      const std::size_t index = connections_.fetch_add(1);
      const std::lock_guard lock(mutex_);
      reap_finished();
      Connection& c = connections_list_.emplace_back();
      c.peer.reset(new Peer(fd, stop_read_.get(), &stopping_, &requests_, index));
      try {
        c.thread = std::thread([this, &c] { run_connection(c); });
      } catch (const std::exception& e) {
        connections_list_.pop_back();  // closes fd
        errors_.push_back(std::string("accept loop: cannot start a thread: ") + e.what());
      }
    }
  }

  // Joins connections whose handler has returned. Caller holds mutex_.
  void reap_finished() {
    for (auto it = connections_list_.begin(); it != connections_list_.end();) {
      if (it->done.load()) {
        it->thread.join();
        it = connections_list_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void run_connection(Connection& c) {
    Peer& peer = *c.peer;
    try {
      handler_(peer);
    } catch (const ServerStopping&) {
    } catch (const PeerDisconnected&) {
    } catch (const ProtocolError& e) {
      record(std::string("connection ") + std::to_string(peer.index()) +
             ": protocol error: " + e.what());
      try {
        if (peer.is_open()) peer.write_response(400, e.what(), {{"Connection", "close"}});
      } catch (...) {
      }
    } catch (const std::exception& e) {
      record(std::string("connection ") + std::to_string(peer.index()) + ": " + e.what());
    } catch (...) {
      record("connection " + std::to_string(peer.index()) + ": unknown exception");
    }
    try {
      peer.close();
    } catch (...) {
    }
    c.done.store(true);
  }

  Handler handler_;
  std::uint16_t port_ = 0;
  std::string unix_path_;
  detail::Fd listen_fd_;
  detail::Fd stop_read_;
  detail::Fd stop_write_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> requests_{0};
  mutable std::mutex mutex_;  // connections_list_, errors_
  std::list<Connection> connections_list_;
  std::vector<std::string> errors_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::thread accept_thread_;
};

// ---------------------------------------------------------------------------------------------
// Ready-made handlers.

struct Request {
  RequestHead head;
  std::string body;   // decoded
  Headers trailers;   // of a chunked body
};
struct Response {
  int status = 200;
  std::string body;
  Headers headers;    // Content-Length is added unless present (or Transfer-Encoding is)
};

namespace detail {
// Keep-alive loop: reads requests until the client closes; `respond` reads the body (or not)
// and returns the response. Answers `Expect: 100-continue` with an interim 100 first. Honours
// `Connection: close` (and HTTP/1.0) from the client; HEAD responses carry no body.
inline void serve_loop(Peer& peer,
                       const std::function<Response(Peer&, const RequestHead&)>& respond) {
  while (auto head = peer.read_request()) {
    if (has_token(head->headers, "Expect", "100-continue")) {
      peer.write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    Response res = respond(peer, *head);
    const bool close = head->wants_close() || has_token(res.headers, "Connection", "close");
    if (close && !has_token(res.headers, "Connection", "close")) {
      res.headers.emplace_back("Connection", "close");
    }
    peer.write(format_response(res.status, res.body, res.headers, head->method != "HEAD"));
    if (close) return;
  }
}
inline void read_one_request(Peer& peer, std::optional<RequestHead>& head) {
  head = peer.read_request();
  if (head) peer.read_body(*head);
}
}  // namespace detail

// Keep-alive: answers every request with fn(request) (body read and decoded for it).
inline ScriptedServer::Handler serve(std::function<Response(const Request&)> fn) {
  return [fn = std::move(fn)](Peer& peer) {
    detail::serve_loop(peer, [&](Peer& p, const RequestHead& head) {
      Request req{head, p.read_body(head), {}};
      req.trailers = p.last_trailers();
      return fn(req);
    });
  };
}

// Keep-alive: every request on the connection gets 200 with `body`.
inline ScriptedServer::Handler respond_ok(std::string body = "ok") {
  return serve([body = std::move(body)](const Request&) { return Response{200, body, {}}; });
}

// Reads one request, declares Content-Length: total_declared, sends send_before_reset bytes of
// pattern_bytes(), waits (up to 5 s) until the client's kernel has them, then sends RST.
inline ScriptedServer::Handler reset_mid_body(std::size_t total_declared,
                                              std::size_t send_before_reset) {
  if (send_before_reset >= total_declared) {
    throw std::invalid_argument("reset_mid_body: send_before_reset must be < total_declared");
  }
  return [=](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total_declared) +
               "\r\n\r\n" + pattern_bytes(send_before_reset));
    peer.flush();
    peer.reset();
  };
}

// Reads one request, answers 200 chunked with a good chunk ("5\r\nhello\r\n"), then `bad_line`
// where the next chunk-size line belongs (CRLF appended unless it ends in '\n'), then
// "0123456789\r\n", then stalls until the client closes (so a client must fail from parsing,
// not from EOF). Try "zz", "ffffffffffffffffffff" (overflow), "-1", " 5", "5 junk", "".
inline ScriptedServer::Handler malformed_chunk_size(std::string bad_line = "zz") {
  return [bad_line = std::move(bad_line)](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    std::string out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    out += bad_line;
    if (bad_line.empty() || bad_line.back() != '\n') out += "\r\n";
    out += "0123456789\r\n";
    peer.write(out);
    peer.stall();
  };
}

// Reads one request, sends "HTTP/1.1 200 OK\r\n" and then header lines ("X-Filler-N: aaa...",
// each value `value_bytes` long) until more than n_bytes of header block are out, never the
// blank line; then stalls. value_bytes >= n_bytes gives one single oversized header line.
inline ScriptedServer::Handler oversized_headers(std::size_t n_bytes,
                                                 std::size_t value_bytes = 100) {
  return [=](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write("HTTP/1.1 200 OK\r\n");
    const std::string value(value_bytes, 'a');
    std::size_t sent = 0;
    std::string batch;
    for (std::size_t i = 0; sent <= n_bytes; ++i) {
      const std::string line = "X-Filler-" + std::to_string(i) + ": " + value + "\r\n";
      batch += line;
      sent += line.size();
      if (batch.size() >= 16 * 1024) {
        peer.write(batch);
        batch.clear();
      }
    }
    peer.write(batch);
    peer.stall();
  };
}

// Reads one request, sends a valid head with Content-Length: 100, then nothing (stalls).
inline ScriptedServer::Handler stall_after_head() {
  return [](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    peer.stall();
  };
}

// Reads the request (head and body) and sends nothing; stalls until the client closes.
inline ScriptedServer::Handler stall_before_response() {
  return [](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.stall();
  };
}

// Serves one request with keep-alive framing (no Connection: close), then closes silently.
inline ScriptedServer::Handler close_after_each_response(std::string body = "ok") {
  return [body = std::move(body)](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write_response(200, body);
    peer.close();
  };
}

// Serves one request with keep-alive framing, keeps the connection open (idle, looking alive to
// a pool) until the next request head arrives, then closes without answering it (FIN after
// discarding what arrived; a body still in flight may turn that into RST).
inline ScriptedServer::Handler close_after_response_without_reading_next(std::string body = "ok") {
  return [body = std::move(body)](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write_response(200, body);
    if (!peer.read_request()) return;
    peer.close();
  };
}

// Keep-alive: answers each request with a chunked 200 whose chunks carry ";ext=1" extensions,
// written one chunk per send, followed by `trailers` (announced in a Trailer header).
// Empty chunks are skipped (an empty chunk would end the body).
inline ScriptedServer::Handler chunked_response(std::vector<std::string> chunks,
                                                Headers trailers = {}) {
  return [chunks = std::move(chunks), trailers = std::move(trailers)](Peer& peer) {
    while (auto head = peer.read_request()) {
      peer.read_body(*head);
      std::string out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n";
      if (!trailers.empty()) {
        out += "Trailer: ";
        for (std::size_t i = 0; i < trailers.size(); ++i) {
          out += (i ? ", " : "") + trailers[i].first;
        }
        out += "\r\n";
      }
      if (head->wants_close()) out += "Connection: close\r\n";
      out += "\r\n";
      peer.write(out);
      static constexpr char digits[] = "0123456789abcdef";
      for (const std::string& chunk : chunks) {
        if (chunk.empty()) continue;
        std::string size;
        for (std::size_t n = chunk.size(); n > 0; n >>= 4) {
          size.insert(size.begin(), digits[n & 0xFU]);
        }
        peer.write(size + ";ext=1\r\n" + chunk + "\r\n");
      }
      std::string end = "0\r\n";
      for (const auto& [n, v] : trailers) end += n + ": " + v + "\r\n";
      end += "\r\n";
      peer.write(end);
      if (head->wants_close()) return;
    }
  };
}

// Reads one request, answers "HTTP/1.1 200 OK" with neither Content-Length nor chunked; the
// body ends when the server closes the connection.
inline ScriptedServer::Handler close_delimited(std::string body) {
  return [body = std::move(body)](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body);
    peer.close();
  };
}

// Raw echo until the client closes: every byte read is written back.
inline ScriptedServer::Handler raw_echo() {
  return [](Peer& peer) {
    for (;;) {
      const std::string bytes = peer.read_some();
      if (bytes.empty()) return;
      peer.write(bytes);
    }
  };
}

// Reads one request, answers "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
// immediately followed, in the same write, by `early_bytes`, then runs then(peer) on the raw
// stream (default: raw_echo()).
inline ScriptedServer::Handler upgrade_101(ScriptedServer::Handler then = raw_echo(),
                                           std::string early_bytes = "early-bytes") {
  return [then = std::move(then), early_bytes = std::move(early_bytes)](Peer& peer) {
    std::optional<RequestHead> head;
    detail::read_one_request(peer, head);
    if (!head) return;
    peer.write("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n" +
               early_bytes);
    if (then) then(peer);
  };
}

// Keep-alive: drains each request body (drain_body, never stored) and answers 200 with
// {"bytes":N,"fnv1a":"<16 hex digits>"}.
inline ScriptedServer::Handler sink() {
  return [](Peer& peer) {
    detail::serve_loop(peer, [](Peer& p, const RequestHead& head) {
      Checksum checksum;
      const std::uint64_t n = p.drain_body(head, checksum);
      const nlohmann::json j = {{"bytes", n}, {"fnv1a", checksum.hex()}};
      return Response{200, j.dump(), {{"Content-Type", "application/json"}}};
    });
  };
}

// Keep-alive: answers each request with JSON
//   {"method", "target", "version", "headers": [[name, value]...] (as received, in order),
//    "header_map": {lower-case name: comma-joined values}, "framing": "none"|"content-length"|
//    "chunked", "body" (decoded; invalid UTF-8 replaced by U+FFFD), "body_bytes", "body_fnv1a",
//    "trailers": [[name, value]...]}
inline ScriptedServer::Handler echo_request() {
  return serve([](const Request& req) {
    using nlohmann::json;
    json headers = json::array();
    json header_map = json::object();
    for (const auto& [n, v] : req.head.headers) {
      headers.push_back(json::array({n, v}));
      const std::string key = detail::to_lower(n);
      header_map[key] = req.head.header(n);
    }
    json trailers = json::array();
    for (const auto& [n, v] : req.trailers) trailers.push_back(json::array({n, v}));
    const char* framing = req.head.has_header("Transfer-Encoding") ? "chunked"
                          : req.head.has_header("Content-Length")  ? "content-length"
                                                                   : "none";
    const json j = {{"method", req.head.method},
                    {"target", req.head.target},
                    {"version", req.head.version},
                    {"headers", headers},
                    {"header_map", header_map},
                    {"framing", framing},
                    {"body", req.body},
                    {"body_bytes", req.body.size()},
                    {"body_fnv1a", Checksum::of(req.body).hex()},
                    {"trailers", trailers}};
    return Response{200, j.dump(-1, ' ', false, json::error_handler_t::replace),
                    {{"Content-Type", "application/json"}}};
  });
}

// One scripted answer for respond_sequence(): raw bytes, then what to do with the connection.
struct RawResponse {
  enum class After {
    keep_open,  // serve the next request on this connection (or close if the bytes' head says
                // "Connection: close")
    close,      // close (FIN) after writing
    reset,      // RST after writing (and after the client's kernel has the bytes)
  };
  std::string bytes;
  After after = After::keep_open;

  RawResponse(std::string raw, After then = After::keep_open)  // NOLINT: implicit on purpose
      : bytes(std::move(raw)), after(then) {}
  RawResponse(const char* raw, After then = After::keep_open)  // NOLINT: implicit on purpose
      : bytes(raw), after(then) {}
};

// The i-th request read by this handler (counting across connections, in the order their heads
// arrive) gets responses[i]. Past the end: 500, recorded as an error.
inline ScriptedServer::Handler respond_sequence(std::vector<RawResponse> responses) {
  struct State {
    std::vector<RawResponse> responses;
    std::atomic<std::size_t> next{0};
  };
  auto state = std::make_shared<State>();
  state->responses = std::move(responses);
  return [state](Peer& peer) {
    while (auto head = peer.read_request()) {
      peer.read_body(*head);
      const std::size_t i = state->next.fetch_add(1);
      if (i >= state->responses.size()) {
        const std::string message = "respond_sequence: no scripted response for request #" +
                                    std::to_string(i) + " (" + head->method + " " +
                                    head->target + ")";
        try {
          peer.write_response(500, message, {{"Connection", "close"}});
        } catch (const PeerError&) {
        }
        throw std::runtime_error(message);
      }
      const RawResponse& r = state->responses[i];
      if (!r.bytes.empty()) peer.write(r.bytes);
      switch (r.after) {
        case RawResponse::After::keep_open: {
          const auto end = r.bytes.find("\r\n\r\n");
          const std::string raw_head = detail::to_lower(r.bytes.substr(0, end));
          if (raw_head.find("\nconnection: close") != std::string::npos) {
            peer.close();
            return;
          }
          break;
        }
        case RawResponse::After::close:
          peer.close();
          return;
        case RawResponse::After::reset:
          peer.flush();
          peer.reset();
          return;
      }
    }
  };
}

// Keep-alive: for each request sends "HTTP/1.1 100 Continue\r\n\r\n" right after the head
// (whether or not the client sent Expect), then reads the body and sends 200 with `body`.
inline ScriptedServer::Handler interim_100_continue(std::string body = "ok") {
  return [body = std::move(body)](Peer& peer) {
    while (auto head = peer.read_request()) {
      peer.write("HTTP/1.1 100 Continue\r\n\r\n");
      peer.read_body(*head);
      const bool close = head->wants_close();
      peer.write_response(200, body, close ? Headers{{"Connection", "close"}} : Headers{});
      if (close) return;
    }
  };
}

}  // namespace workspace_test
