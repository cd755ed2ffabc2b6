// libFuzzer target for http::detail::ResponseParser: the status line and header block, bodies
// framed by Content-Length, chunked coding (extensions, trailers) or the connection's end, 1xx
// interim responses, 101 upgrades, HEAD responses, and several responses on one connection.
//
// Input layout:
//   byte 0  flags: bit 0     head_request for the first response
//                  bit 1     head_request for every later response
//                  bits 2-3  parser limits: 0 defaults, 1 small, 2 tiny, 3 medium
//                  bit 4     offer every parse() a fresh exact-size copy of the unconsumed bytes (so
//                            ASan catches any read past them), instead of the growing buffer that
//                            is compacted before each read as Connection::make_room does
//                  bits 5-7  largest piece a "read" returns: 1, 2, 3, 5, 16, 100, 1000, 65536
//   byte 1  seed for the piece sizes
//   rest    the bytes the server sends, then the connection closes
//
// The same bytes are parsed twice: in one piece, and in pieces the way Client::receive() does it
// (unconsumed bytes are offered again with the next read appended). Both runs must agree on every
// response, on the body bytes delivered before an error, and on the error; consumed counts never
// exceed what was offered; body views lie inside the offered bytes. workspace::Error is the
// expected outcome of bad input; anything else escapes and libFuzzer reports it.
#include <workspace/core/error.hpp>
#include <workspace/http/detail/parser.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace http = workspace::http;
using Parser = http::detail::ResponseParser;

[[noreturn]] void violated(const char* what, int line) {
  std::fprintf(stderr, "response_parser.fuzz.cpp:%d: invariant violated: %s\n", line, what);
  std::abort();
}
#define FUZZ_CHECK(condition)                                \
  do {                                                       \
    if (!(condition)) violated(#condition, __LINE__);        \
  } while (false)

constexpr std::size_t max_responses = 4;  // on one connection

struct Config {
  bool head_first = false;
  bool head_later = false;
  http::ParserLimits limits{};
  bool exact_copies = false;
  std::size_t max_piece = 1;
  std::uint32_t seed = 1;

  static Config from(std::uint8_t flags, std::uint8_t seed) {
    static constexpr std::array<http::ParserLimits, 4> presets{{
        {},                                                             // the defaults
        {.max_header_bytes = 256, .max_header_count = 8, .max_chunk_line = 32},
        {.max_header_bytes = 40, .max_header_count = 2, .max_chunk_line = 4},
        {.max_header_bytes = 1024, .max_header_count = 32, .max_chunk_line = 64},
    }};
    static constexpr std::array<std::size_t, 8> pieces{1, 2, 3, 5, 16, 100, 1000, 65536};
    Config c;
    c.head_first = (flags & 1u) != 0;
    c.head_later = (flags & 2u) != 0;
    c.limits = presets[(flags >> 2) & 3u];
    c.exact_copies = (flags & 16u) != 0;
    c.max_piece = pieces[(flags >> 5) & 7u];
    c.seed = (static_cast<std::uint32_t>(seed) << 8 | flags) * 2654435761u + 1u;
    return c;
  }
};

// What a parse produced for one response; compared field by field between the two runs.
struct Record {
  int version_minor = 0;
  int status = 0;
  std::string reason{};
  std::vector<std::pair<std::string, std::string>> headers{};
  int framing = 0;
  bool keep_alive = false;
  bool upgraded = false;
  std::optional<std::uint64_t> content_length{};
  std::uint64_t body_bytes = 0;
  std::string body{};

  bool operator==(const Record&) const = default;
};

struct Outcome {
  std::vector<Record> responses{};  // the complete ones, in order
  bool failed = false;              // a workspace::Error ended the run
  int error = 0;                    // its code
  bool head_done = false;           // of the response the error interrupted
  std::string partial_body{};       // what that response had delivered by then

  bool operator==(const Outcome&) const = default;
};

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!http::detail::is_token_char(c)) return false;
  return true;
}

// One connection as Client::receive() drives it: a buffer whose unconsumed bytes [begin, end) are
// offered to parse() again with each read appended.
class Connection {
 public:
  explicit Connection(const Config& config) : config_(config), parser_(config.limits) {}

  void read(std::string_view bytes) {
    if (begin_ > 0 && begin_ == buffer_.size()) {
      buffer_.clear();
      begin_ = 0;
    } else if (begin_ > 0) {
      buffer_.erase(0, begin_);
      begin_ = 0;
    }
    buffer_.append(bytes);
    pump();
  }

  void eof() {
    if (stopped_ || !active_) return;  // closed between responses, or after an upgrade
    parser_.finish_eof();              // throws unless the body runs to the connection's end
    FUZZ_CHECK(parser_.done());
    complete();
  }

  void fail(const workspace::Error& e) {
    outcome_.failed = true;
    outcome_.error = e.code().value();
    FUZZ_CHECK(e.code().category() == workspace::error_category());
    outcome_.head_done = active_ && parser_.head_done();
    outcome_.partial_body = active_ ? current_.body : std::string();
  }

  const Outcome& outcome() const noexcept { return outcome_; }

 private:
  std::string_view pending() const noexcept {
    return std::string_view(buffer_).substr(begin_);
  }

  void pump() {
    while (!stopped_) {
      const std::string_view data = pending();
      if (!active_) {
        if (data.empty()) return;
        head_request_ = outcome_.responses.empty() ? config_.head_first : config_.head_later;
        parser_.start(head_request_);
        FUZZ_CHECK(!parser_.done() && !parser_.head_done());
        current_ = Record{};
        active_ = true;
      }
      const std::size_t used = parse(data);
      FUZZ_CHECK(used <= data.size());
      begin_ += used;
      if (!parser_.done()) return;  // the rest is a partial line: it needs more bytes
      complete();
    }
  }

  std::size_t parse(std::string_view offered) {
    std::unique_ptr<char[]> copy;
    std::string_view data = offered;
    if (config_.exact_copies) {
      copy.reset(new char[offered.size()]);
      std::memcpy(copy.get(), offered.data(), offered.size());
      data = std::string_view(copy.get(), offered.size());
    }
    return parser_.parse(data, [&](std::string_view body) {
      // A view into the bytes offered, never past them.
      FUZZ_CHECK(body.data() >= data.data());
      FUZZ_CHECK(body.data() + body.size() <= data.data() + data.size());
      FUZZ_CHECK(parser_.head_done());
      current_.body.append(body);
    });
  }

  void complete() {
    const auto& head = parser_.head();
    Record& r = current_;
    r.version_minor = head.version_minor;
    r.status = head.status;
    r.reason = head.reason;
    for (const auto& [name, value] : head.headers) r.headers.emplace_back(name, value);
    r.framing = static_cast<int>(parser_.framing());
    r.keep_alive = parser_.keep_alive();
    r.upgraded = parser_.upgraded();
    r.content_length = parser_.content_length();
    r.body_bytes = parser_.body_bytes();

    FUZZ_CHECK(parser_.head_done());
    FUZZ_CHECK(r.body_bytes == r.body.size());
    FUZZ_CHECK(r.version_minor == 0 || r.version_minor == 1);
    FUZZ_CHECK(r.status >= 100 && r.status <= 999);
    FUZZ_CHECK(r.status >= 200 || r.status == 101);  // interim responses are skipped
    FUZZ_CHECK(r.upgraded == (r.status == 101));
    if (r.upgraded) FUZZ_CHECK(r.body.empty() && !r.keep_alive);
    if (head_request_ || r.status == 204 || r.status == 304) FUZZ_CHECK(r.body.empty());
    if (r.content_length) FUZZ_CHECK(r.body.size() == *r.content_length);
    if (r.keep_alive) FUZZ_CHECK(parser_.framing() != Parser::Framing::until_close);
    for (const auto& [name, value] : r.headers) {
      FUZZ_CHECK(is_token(name));
      FUZZ_CHECK(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
      FUZZ_CHECK(value.empty() || (value.front() != ' ' && value.front() != '\t'));
      FUZZ_CHECK(value.empty() || (value.back() != ' ' && value.back() != '\t'));
    }
    FUZZ_CHECK(r.headers.size() <= config_.limits.max_header_count);

    // A finished parser takes nothing more.
    const std::string_view rest = pending();
    bool delivered = false;
    FUZZ_CHECK(parser_.parse(rest, [&](std::string_view) { delivered = true; }) == 0);
    FUZZ_CHECK(!delivered && parser_.done());

    outcome_.responses.push_back(std::move(r));
    current_ = Record{};
    active_ = false;
    // Whatever follows an upgrade belongs to the new protocol; after a non-persistent response
    // the client drops the connection.
    const bool reusable = !parser_.upgraded() && parser_.keep_alive();
    if (!reusable || outcome_.responses.size() >= max_responses) stopped_ = true;
  }

  const Config& config_;
  Parser parser_;
  std::string buffer_{};
  std::size_t begin_ = 0;
  bool active_ = false;   // a response is being parsed
  bool stopped_ = false;  // no further response is read on this connection
  bool head_request_ = false;
  Record current_{};
  Outcome outcome_{};
};

// The piece sizes of one run: 1..max_piece bytes each, from a xorshift generator.
std::vector<std::string_view> split(std::string_view data, const Config& config) {
  std::vector<std::string_view> pieces;
  std::uint32_t x = config.seed == 0 ? 1u : config.seed;
  while (!data.empty()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const std::size_t n = std::min(data.size(), 1 + static_cast<std::size_t>(x) % config.max_piece);
    pieces.push_back(data.substr(0, n));
    data.remove_prefix(n);
  }
  return pieces;
}

Outcome run(const Config& config, const std::vector<std::string_view>& reads) {
  Connection connection(config);
  try {
    for (std::string_view bytes : reads) connection.read(bytes);
    connection.eof();
  } catch (const workspace::Error& e) {
    connection.fail(e);
  }
  return connection.outcome();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const Config config = Config::from(data[0], data[1]);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

  const Outcome one = run(config, {input});
  const Outcome pieces = run(config, split(input, config));
  if (!(one == pieces)) {
    std::fprintf(stderr, "one piece: %zu responses, failed %d (error %d), partial body %zu bytes\n",
                 one.responses.size(), one.failed, one.error, one.partial_body.size());
    std::fprintf(stderr, "in pieces: %zu responses, failed %d (error %d), partial body %zu bytes\n",
                 pieces.responses.size(), pieces.failed, pieces.error, pieces.partial_body.size());
    violated("the response parsed in one piece differs from the same bytes parsed in pieces", __LINE__);
  }
  return 0;
}
