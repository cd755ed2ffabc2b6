// An incremental HTTP/1.1 response parser: the status line and header block, then the body framed
// by Content-Length, chunked transfer coding or the connection's end. It owns no buffer and does no
// I/O, so the same code serves every transport and the fuzzer (tests/fuzz).
//
// The caller appends received bytes to its buffer and calls parse() on the unconsumed part; parse()
// returns how many bytes it consumed and hands body bytes to a callback as views into that buffer.
// Bytes it did not consume (a partial line) must be offered again with more appended.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/options.hpp>
#include <workspace/version.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {

[[noreturn]] inline void malformed(const std::string& what) {
  throw Error(errc::protocol_error, "malformed HTTP response: " + what);
}

inline bool is_token_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// True when the comma-separated header value lists `token` (case-insensitively).
inline bool has_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (iequals(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

class ResponseParser {
 public:
  enum class Framing { none, length, chunked, until_close };

  explicit ResponseParser(ParserLimits limits = {}) : limits_(limits) {}

  // Prepares for the next response on the connection. After a HEAD request the response has no
  // body whatever its headers say.
  void start(bool head_request) {
    head_request_ = head_request;
    state_ = State::head;
    scanned_ = 0;
    interim_bytes_ = 0;
    head_ = ResponseHead{};
    framing_ = Framing::none;
    remaining_ = 0;
    body_bytes_ = 0;
    keep_alive_ = false;
    upgraded_ = false;
  }

  template <class OnBody>
  std::size_t parse(std::string_view data, OnBody&& on_body) {
    std::size_t used = 0;
    while (state_ != State::done) {
      const std::string_view rest = data.substr(used);
      std::size_t n = 0;
      switch (state_) {
        case State::head: n = parse_head(rest); break;
        case State::length: n = take_body(rest, on_body); break;
        case State::until_close: n = take_body(rest, on_body); break;
        case State::chunk_size: n = parse_chunk_size(rest); break;
        case State::chunk_data: n = take_body(rest, on_body); break;
        case State::chunk_data_end: n = parse_chunk_data_end(rest); break;
        case State::trailers: n = parse_trailers(rest); break;
        case State::done: break;
      }
      if (n == 0) break;  // needs more input
      used += n;
    }
    return used;
  }

  // The peer closed the connection: that ends a close-delimited body; anywhere else the response
  // was cut short.
  void finish_eof() {
    if (state_ == State::until_close) {
      state_ = State::done;
      return;
    }
    if (state_ == State::done) return;
    if (state_ == State::head)
      throw Error(errc::connection_failed, "connection closed before a complete response header");
    throw Error(errc::connection_failed, "connection closed in the middle of the response body");
  }

  bool head_done() const noexcept { return state_ != State::head; }
  bool done() const noexcept { return state_ == State::done; }
  bool upgraded() const noexcept { return upgraded_; }
  // Whether the connection may carry another request once this response is done.
  bool keep_alive() const noexcept { return keep_alive_; }
  Framing framing() const noexcept { return framing_; }
  // Content-Length when the body is length-delimited.
  std::optional<std::uint64_t> content_length() const noexcept {
    if (framing_ == Framing::length) return declared_length_;
    return std::nullopt;
  }
  std::uint64_t body_bytes() const noexcept { return body_bytes_; }
  const ResponseHead& head() const noexcept { return head_; }
  ResponseHead& head() noexcept { return head_; }

 private:
  enum class State { head, length, until_close, chunk_size, chunk_data, chunk_data_end, trailers, done };

  // Finds the blank line that ends a header block; returns the offset just past it, or 0.
  std::size_t find_block_end(std::string_view data) {
    for (std::size_t i = scanned_; i < data.size(); ++i) {
      if (data[i] != '\n') continue;
      if (i >= 1 && data[i - 1] == '\n') return i + 1;
      if (i >= 2 && data[i - 1] == '\r' && data[i - 2] == '\n') return i + 1;
    }
    scanned_ = data.size();
    return 0;
  }

  std::size_t parse_head(std::string_view data) {
    const std::size_t end = find_block_end(data);
    if (end == 0) {
      if (data.size() > limits_.max_header_bytes)
        malformed("header block larger than " + std::to_string(limits_.max_header_bytes) + " bytes");
      return 0;
    }
    if (end > limits_.max_header_bytes)
      malformed("header block larger than " + std::to_string(limits_.max_header_bytes) + " bytes");
    scanned_ = 0;
    std::string_view block = data.substr(0, end);
    head_ = ResponseHead{};
    parse_status_line(next_line(block));
    std::size_t count = 0;
    for (std::string_view line = next_line(block); !line.empty(); line = next_line(block)) {
      if (++count > limits_.max_header_count) malformed("too many header fields");
      add_field(line, head_.headers);
    }

    const int status = head_.status;
    if (status >= 100 && status < 200 && status != 101) {
      // Interim: the real response follows. Their total counts against the header limit, so an
      // endless stream of them cannot keep a request busy forever.
      interim_bytes_ += end;
      if (interim_bytes_ > limits_.max_header_bytes) malformed("too many interim (1xx) responses");
      return end;
    }
    decide_framing();
    return end;
  }

  // The next line without its CR LF (or bare LF); the block always ends in a line break.
  static std::string_view next_line(std::string_view& block) noexcept {
    const auto lf = block.find('\n');
    std::string_view line = block.substr(0, lf);
    block.remove_prefix(lf == std::string_view::npos ? block.size() : lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  }

  void parse_status_line(std::string_view line) {
    // HTTP/1.x SP 3DIGIT SP reason
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ')
      malformed("bad status line");
    if (line[7] != '0' && line[7] != '1') malformed("unsupported HTTP version");
    head_.version_minor = line[7] - '0';
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') malformed("bad status code");
      status = status * 10 + (line[i] - '0');
    }
    if (status < 100) malformed("bad status code");
    if (line.size() > 12 && line[12] != ' ') malformed("bad status line");
    for (std::size_t i = 13; i < line.size(); ++i)
      if ((static_cast<unsigned char>(line[i]) < 0x20 && line[i] != '\t') || line[i] == 0x7F)
        malformed("control character in the reason phrase");
    head_.status = status;
    head_.reason = std::string(line.size() > 13 ? line.substr(13) : std::string_view{});
  }

  static void add_field(std::string_view line, Headers& headers) {
    if (line.front() == ' ' || line.front() == '\t') malformed("obsolete header line folding");
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) malformed("header line without a name");
    const std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!is_token_char(c)) malformed("bad character in a header name");
    const std::string_view value = trim_ows(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F)
        malformed("control character in a header value");
    headers.add(std::string(name), std::string(value));
  }

  void decide_framing() {
    const Headers& h = head_.headers;
    const int status = head_.status;
    const bool http11 = head_.version_minor == 1;
    bool close = false;
    bool keep_alive = false;
    for (const auto& [name, value] : h) {
      if (!iequals(name, "connection")) continue;
      close |= has_token(value, "close");
      keep_alive |= has_token(value, "keep-alive");
    }
    // HTTP/1.1 persists unless told to close; HTTP/1.0 only when asked to keep alive. Close wins.
    bool persistent = !close && (http11 || keep_alive);

    if (status == 101) {
      upgraded_ = true;
      keep_alive_ = false;
      framing_ = Framing::none;
      state_ = State::done;
      return;
    }

    // Content-Length may repeat with one value; differing values are a smuggling vector.
    std::optional<std::uint64_t> length;
    const std::string* transfer_encoding = nullptr;
    for (const auto& [name, value] : h) {
      if (iequals(name, "transfer-encoding")) {
        transfer_encoding = &value;
      } else if (iequals(name, "content-length")) {
        // A list of one repeated value is tolerated (RFC 9112 §6.3); every element must be a
        // number, and an empty value or element is invalid.
        std::string_view v = value;
        for (;;) {
          const auto comma = v.find(',');
          const std::uint64_t n = parse_decimal(trim_ows(v.substr(0, comma)));
          if (length && *length != n) malformed("conflicting Content-Length values");
          length = n;
          if (comma == std::string_view::npos) break;
          v.remove_prefix(comma + 1);
        }
      }
    }

    if (head_request_ || status == 204 || status == 304) {
      framing_ = Framing::none;
      keep_alive_ = persistent;
      state_ = State::done;
      return;
    }
    if (transfer_encoding) {
      // Transfer-Encoding in HTTP/1.0, or beside Content-Length, is a framing the two ends may
      // read differently (request smuggling): finish this response, then drop the connection.
      if (!http11 || length) persistent = false;
      // Only a final "chunked" frames the body; any other coding runs to the connection's end.
      std::string_view te = trim_ows(*transfer_encoding);
      const auto last_comma = te.rfind(',');
      const std::string_view last =
          trim_ows(last_comma == std::string_view::npos ? te : te.substr(last_comma + 1));
      if (iequals(last, "chunked")) {
        framing_ = Framing::chunked;
        keep_alive_ = persistent;
        state_ = State::chunk_size;
      } else {
        framing_ = Framing::until_close;
        keep_alive_ = false;
        state_ = State::until_close;
      }
      return;
    }
    if (length) {
      framing_ = Framing::length;
      declared_length_ = *length;
      remaining_ = *length;
      keep_alive_ = persistent;
      state_ = remaining_ == 0 ? State::done : State::length;
      return;
    }
    framing_ = Framing::until_close;
    keep_alive_ = false;
    state_ = State::until_close;
  }

  static std::uint64_t parse_decimal(std::string_view s) {
    if (s.empty() || s.size() > 19) malformed("bad Content-Length");
    std::uint64_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') malformed("bad Content-Length");
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
  }

  template <class OnBody>
  std::size_t take_body(std::string_view data, OnBody& on_body) {
    if (data.empty()) return 0;
    std::size_t n = data.size();
    if (state_ != State::until_close && remaining_ < n) n = static_cast<std::size_t>(remaining_);
    body_bytes_ += n;
    if (state_ != State::until_close) remaining_ -= n;
    if (state_ == State::length && remaining_ == 0) state_ = State::done;
    if (state_ == State::chunk_data && remaining_ == 0) state_ = State::chunk_data_end;
    on_body(data.substr(0, n));
    return n;
  }

  // Finds a complete line; returns its length without the line break, and sets `consumed`.
  std::optional<std::string_view> take_line(std::string_view data, std::size_t limit,
                                            std::size_t& consumed, const char* what) const {
    const auto lf = data.find('\n');
    if (lf == std::string_view::npos) {
      if (data.size() > limit) malformed(std::string(what) + " too long");
      return std::nullopt;
    }
    if (lf > limit) malformed(std::string(what) + " too long");
    consumed = lf + 1;
    std::string_view line = data.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  }

  std::size_t parse_chunk_size(std::string_view data) {
    std::size_t consumed = 0;
    const auto line = take_line(data, limits_.max_chunk_line, consumed, "chunk-size line");
    if (!line) return 0;
    std::uint64_t size = 0;
    std::size_t digits = 0;
    std::size_t significant = 0;
    for (char c : *line) {
      int v;
      if (c >= '0' && c <= '9') v = c - '0';
      else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
      else break;
      ++digits;
      if (size == 0 && v == 0) continue;  // leading zeros
      if (++significant > 15) malformed("chunk size too large");  // 2^60: no real body is bigger
      size = size * 16 + static_cast<std::uint64_t>(v);
    }
    if (digits == 0) malformed("bad chunk size");
    const std::string_view after = trim_ows(line->substr(digits));
    if (!after.empty() && after.front() != ';') malformed("bad chunk size");  // ";ext" is ignored
    if (size == 0) {
      state_ = State::trailers;
      trailer_bytes_ = 0;
    } else {
      remaining_ = size;
      state_ = State::chunk_data;
    }
    return consumed;
  }

  std::size_t parse_chunk_data_end(std::string_view data) {
    if (data.empty()) return 0;
    if (data.front() == '\n') {
      state_ = State::chunk_size;
      return 1;
    }
    if (data.front() != '\r') malformed("chunk data longer than its size");
    if (data.size() < 2) return 0;
    if (data[1] != '\n') malformed("chunk data longer than its size");
    state_ = State::chunk_size;
    return 2;
  }

  // Trailer fields are read and dropped: nothing we talk to sends ones we need.
  std::size_t parse_trailers(std::string_view data) {
    std::size_t consumed = 0;
    const auto line = take_line(data, limits_.max_header_bytes, consumed, "trailer line");
    if (!line) return 0;
    trailer_bytes_ += consumed;
    if (trailer_bytes_ > limits_.max_header_bytes) malformed("trailer section too large");
    if (line->empty()) {
      state_ = State::done;
    } else {
      Headers ignored;
      add_field(*line, ignored);
    }
    return consumed;
  }

  ParserLimits limits_;
  State state_ = State::head;
  bool head_request_ = false;
  std::size_t scanned_ = 0;
  ResponseHead head_{};
  Framing framing_ = Framing::none;
  std::uint64_t declared_length_ = 0;
  std::uint64_t remaining_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::size_t interim_bytes_ = 0;
  bool keep_alive_ = false;
  bool upgraded_ = false;
};

}  // namespace detail
}  // namespace http
WORKSPACE_NAMESPACE_END
