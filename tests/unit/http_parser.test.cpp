// http::detail::ResponseParser on its own: framing, keep-alive, limits, malformed input, and every
// way a valid response can be split across reads (no network).
#define _GLIBCXX_ASSERTIONS 1  // out-of-range string_view/vector access aborts instead of reading junk

#include <workspace/http/detail/parser.hpp>
#include <workspace/http/client.hpp>  // detail::Connection and UpgradedConnection: the real read buffer

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace workspace;
using Parser = http::detail::ResponseParser;
using Framing = Parser::Framing;

// What one parse produced, compared field by field across the ways of feeding it.
struct Outcome {
  bool done = false;
  bool head_done = false;
  bool keep_alive = false;
  bool upgraded = false;
  Framing framing = Framing::none;
  std::optional<std::uint64_t> content_length{};
  std::uint64_t body_bytes = 0;
  std::size_t consumed = 0;  // bytes of the wire the parser took
  int version_minor = -1;
  int status = 0;
  std::string reason{};
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};
};

Outcome outcome_of(const Parser& p, std::string body, std::size_t consumed) {
  Outcome o;
  o.done = p.done();
  o.head_done = p.head_done();
  o.keep_alive = p.keep_alive();
  o.upgraded = p.upgraded();
  o.framing = p.framing();
  o.content_length = p.content_length();
  o.body_bytes = p.body_bytes();
  o.consumed = consumed;
  o.version_minor = p.head().version_minor;
  o.status = p.head().status;
  o.reason = p.head().reason;
  for (const auto& f : p.head().headers) o.headers.push_back(f);
  o.body = std::move(body);
  return o;
}

void expect_same(const Outcome& a, const Outcome& b, const std::string& how) {
  EXPECT_EQ(a.done, b.done) << how;
  EXPECT_EQ(a.head_done, b.head_done) << how;
  EXPECT_EQ(a.keep_alive, b.keep_alive) << how;
  EXPECT_EQ(a.upgraded, b.upgraded) << how;
  EXPECT_EQ(a.framing, b.framing) << how;
  EXPECT_EQ(a.content_length, b.content_length) << how;
  EXPECT_EQ(a.body_bytes, b.body_bytes) << how;
  EXPECT_EQ(a.consumed, b.consumed) << how;
  EXPECT_EQ(a.version_minor, b.version_minor) << how;
  EXPECT_EQ(a.status, b.status) << how;
  EXPECT_EQ(a.reason, b.reason) << how;
  EXPECT_EQ(a.headers, b.headers) << how;
  EXPECT_EQ(a.body, b.body) << how;
}

struct Feed {
  bool head_request = false;
  bool eof = false;  // the peer closes after the last piece (finish_eof)
  http::ParserLimits limits{};
};

// Parses `wire` delivered in `pieces` (their sizes, summing to wire.size()) the way the client's
// receive() does: received bytes are appended to a buffer, parse() is offered the unconsumed part,
// and whatever it did not consume is offered again with the next piece appended. Each offer is a
// fresh heap copy, so a parser that kept a view into an earlier offer reads freed memory (ASan).
// Parsing stops once the response is done: later bytes stay unconsumed, as in the client.
Outcome feed(std::string_view wire, const std::vector<std::size_t>& pieces, const Feed& how = {}) {
  Parser parser(how.limits);
  parser.start(how.head_request);
  std::string body;
  const auto on_body = [&](std::string_view data) { body.append(data); };
  std::string received;
  std::size_t consumed = 0;
  std::size_t at = 0;
  for (const std::size_t n : pieces) {
    received.append(wire.substr(at, n));
    at += n;
    if (parser.done() || consumed == received.size()) continue;
    const std::size_t pending_size = received.size() - consumed;
    const auto offer = std::make_unique<char[]>(pending_size);
    received.copy(offer.get(), pending_size, consumed);
    const std::size_t used = parser.parse(std::string_view(offer.get(), pending_size), on_body);
    EXPECT_LE(used, pending_size);
    consumed += used;
  }
  if (how.eof && !parser.done()) parser.finish_eof();
  return outcome_of(parser, std::move(body), consumed);
}

Outcome parse_once(std::string_view wire, const Feed& how = {}) { return feed(wire, {wire.size()}, how); }

// The workspace::Error parsing `wire` throws (in one piece), or a failure.
Error error_of(std::string_view wire, const Feed& how = {}) {
  try {
    (void)parse_once(wire, how);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for: " << ::testing::PrintToString(std::string(wire));
  return Error(errc::io_error, "nothing thrown");
}

void expect_protocol_error(std::string_view wire, const Feed& how = {}) {
  try {
    (void)parse_once(wire, how);
    ADD_FAILURE() << "accepted: " << ::testing::PrintToString(std::string(wire));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::protocol_error) << ::testing::PrintToString(std::string(wire));
  }
}

// A string literal with its embedded NULs.
template <std::size_t N>
std::string bytes(const char (&text)[N]) {
  return std::string(text, N - 1);
}

// ---------------------------------------------------------------------------------------------
// Framing

TEST(HttpParser, ContentLengthBody) {
  const auto o = parse_once("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.status, 200);
  EXPECT_EQ(o.reason, "OK");
  EXPECT_EQ(o.version_minor, 1);
  EXPECT_EQ(o.framing, Framing::length);
  EXPECT_EQ(o.content_length, 5u);
  EXPECT_EQ(o.body, "hello");
  EXPECT_EQ(o.body_bytes, 5u);
  EXPECT_TRUE(o.keep_alive);
  const std::vector<std::pair<std::string, std::string>> headers{{"Content-Type", "text/plain"},
                                                                  {"Content-Length", "5"}};
  EXPECT_EQ(o.headers, headers);
}

TEST(HttpParser, ContentLengthZeroIsDoneAtTheHead) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  const auto o = parse_once(wire);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "");
  EXPECT_EQ(o.content_length, 0u);
  EXPECT_EQ(o.consumed, wire.size());
}

TEST(HttpParser, BytesAfterALengthDelimitedBodyAreNotConsumed) {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  const auto o = parse_once(first + "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "abc");
  EXPECT_EQ(o.consumed, first.size());
}

TEST(HttpParser, IncompleteContentLengthBodyWaitsForMore) {
  const auto o = parse_once("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
  EXPECT_FALSE(o.done);
  EXPECT_TRUE(o.head_done);
  EXPECT_EQ(o.body, "hello");
  EXPECT_EQ(o.body_bytes, 5u);
}

TEST(HttpParser, HeaderNamesAndValuesAreKeptAsSentWithOwsTrimmed) {
  const auto o = parse_once(
      "HTTP/1.1 200 OK\r\nX-A:no-space\r\nX-B: \t padded \t \r\nx-lower: v\r\nX-Empty:\r\nX-Inner: a \t b\r\n"
      "X-Obs-Text: caf\xc3\xa9\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(o.done);
  const std::vector<std::pair<std::string, std::string>> headers{
      {"X-A", "no-space"}, {"X-B", "padded"},      {"x-lower", "v"},        {"X-Empty", ""},
      {"X-Inner", "a \t b"}, {"X-Obs-Text", "caf\xc3\xa9"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"},
      {"Content-Length", "0"}};
  EXPECT_EQ(o.headers, headers);
}

TEST(HttpParser, ReasonPhraseVariants) {
  EXPECT_EQ(parse_once("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").reason, "OK");
  EXPECT_EQ(parse_once("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").reason, "");
  EXPECT_EQ(parse_once("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").reason, "");
  EXPECT_EQ(parse_once("HTTP/1.1 404 Not  Found \r\nContent-Length: 0\r\n\r\n").reason, "Not  Found ");
  EXPECT_EQ(parse_once("HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n").status, 599);
}

TEST(HttpParser, ChunkedWithExtensionsAndTrailers) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value;other=\"quoted;x\"\r\nhello\r\n"
      "1 ; ext\r\n,\r\n"
      "A\r\n0123456789\r\n"
      "a\r\nabcdefghij\r\n"
      "0;last\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n";
  const auto o = parse_once(wire);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.framing, Framing::chunked);
  EXPECT_EQ(o.content_length, std::nullopt);
  EXPECT_EQ(o.body, "hello,0123456789abcdefghij");
  EXPECT_EQ(o.body_bytes, 26u);
  EXPECT_EQ(o.consumed, wire.size());
  EXPECT_TRUE(o.keep_alive);
  // Trailers are dropped, not merged into the head.
  for (const auto& [name, value] : o.headers) EXPECT_NE(name.substr(0, 2), "X-") << name;
}

TEST(HttpParser, ChunkedWithBareLineFeeds) {
  const auto o = parse_once("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n2\nde\n0\n\n");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "abcde");
}

TEST(HttpParser, ChunkedBodyDataMayHoldLineBreaksAndBinary) {
  const std::string data("\r\n0\r\n\r\n\0\xff", 9);
  const std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n" + data + "\r\n0\r\n\r\n";
  const auto o = parse_once(wire);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, data);
}

TEST(HttpParser, TransferEncodingChunkedCaseInsensitiveAndAsTheLastCoding) {
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  for (const char* te : {"chunked", "Chunked", "CHUNKED", " chunked ", "gzip, chunked", "gzip,chunked"}) {
    const auto o = parse_once(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n" + body);
    EXPECT_EQ(o.framing, Framing::chunked) << te;
    EXPECT_TRUE(o.done) << te;
    EXPECT_EQ(o.body, "abc") << te;
  }
}

TEST(HttpParser, TransferEncodingOtherThanChunkedRunsUntilClose) {
  for (const char* te : {"gzip", "chunked, gzip", "identity", "chunkedx"}) {
    const std::string wire = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te +
                             "\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    const auto open = parse_once(wire);
    EXPECT_EQ(open.framing, Framing::until_close) << te;
    EXPECT_FALSE(open.done) << te;
    EXPECT_FALSE(open.keep_alive) << te;
    const auto closed = parse_once(wire, {.eof = true});
    EXPECT_TRUE(closed.done) << te;
    EXPECT_EQ(closed.body, "3\r\nabc\r\n0\r\n\r\n") << te;
  }
}

TEST(HttpParser, TheLastTransferEncodingFieldDecides) {
  const auto chunked =
      parse_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.framing, Framing::chunked);
  EXPECT_EQ(chunked.body, "x");
  const auto until_close =
      parse_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\nxyz");
  EXPECT_EQ(until_close.framing, Framing::until_close);
}

TEST(HttpParser, TransferEncodingOverridesContentLength) {
  const auto o =
      parse_once("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(o.framing, Framing::chunked);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "abc");
  EXPECT_EQ(o.content_length, std::nullopt);
}

// RFC 9112 §6.3 (3): Content-Length with Transfer-Encoding "might indicate an attempt to perform
// request smuggling or response splitting and ought to be handled as an error". At the least the
// connection must not be reused.
TEST(HttpParser, ContentLengthWithTransferEncodingIsNotKeptAlive) {
  const auto o =
      parse_once("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_FALSE(o.keep_alive);
}

// RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message containing a
// Transfer-Encoding header field MUST treat the message as if the framing is faulty ... and close
// the connection after processing the message."
TEST(HttpParser, Http10WithTransferEncodingIsNotKeptAlive) {
  const auto o = parse_once(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_FALSE(o.keep_alive);
}

TEST(HttpParser, CloseDelimitedBodyEndsAtEof) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this\r\nuntil the end";
  const auto open = parse_once(wire);
  EXPECT_EQ(open.framing, Framing::until_close);
  EXPECT_FALSE(open.done);
  EXPECT_FALSE(open.keep_alive);
  EXPECT_EQ(open.body, "all of this\r\nuntil the end");
  EXPECT_EQ(open.content_length, std::nullopt);

  const auto closed = parse_once(wire, {.eof = true});
  EXPECT_TRUE(closed.done);
  EXPECT_EQ(closed.body, "all of this\r\nuntil the end");
  EXPECT_FALSE(closed.keep_alive);
}

TEST(HttpParser, EmptyCloseDelimitedBody) {
  const auto o = parse_once("HTTP/1.1 200 OK\r\n\r\n", {.eof = true});
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "");
}

TEST(HttpParser, FinishEofAfterDoneChangesNothing) {
  Parser p;
  p.start(false);
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  EXPECT_EQ(p.parse(wire, [](std::string_view) {}), wire.size());
  ASSERT_TRUE(p.done());
  EXPECT_NO_THROW(p.finish_eof());
  EXPECT_TRUE(p.done());
  EXPECT_TRUE(p.keep_alive());
}

// ---------------------------------------------------------------------------------------------
// Responses without a body

TEST(HttpParser, HeadResponseHasNoBodyWhateverItsHeadersSay) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
  const auto o = parse_once(head + "HTTP/1.1 200 OK", {.head_request = true});
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.framing, Framing::none);
  EXPECT_EQ(o.body, "");
  EXPECT_EQ(o.consumed, head.size());
  EXPECT_TRUE(o.keep_alive);

  const auto chunked = parse_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", {.head_request = true});
  EXPECT_TRUE(chunked.done);
  EXPECT_TRUE(chunked.keep_alive);
  const auto close_delimited = parse_once("HTTP/1.1 200 OK\r\n\r\n", {.head_request = true});
  EXPECT_TRUE(close_delimited.done);
  EXPECT_TRUE(close_delimited.keep_alive);
}

TEST(HttpParser, NoContentAndNotModifiedHaveNoBody) {
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    const std::string head = std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 10\r\n\r\n";
    const auto o = parse_once(head + "0123456789");
    EXPECT_TRUE(o.done) << status;
    EXPECT_EQ(o.framing, Framing::none) << status;
    EXPECT_EQ(o.body, "") << status;
    EXPECT_EQ(o.consumed, head.size()) << status;
    EXPECT_TRUE(o.keep_alive) << status;
    EXPECT_EQ(o.content_length, std::nullopt) << status;

    const auto chunked = parse_once(std::string("HTTP/1.1 ") + status + "\r\nTransfer-Encoding: chunked\r\n\r\n");
    EXPECT_TRUE(chunked.done) << status;
    const auto bare = parse_once(std::string("HTTP/1.1 ") + status + "\r\n\r\n");
    EXPECT_TRUE(bare.done) << status;
    EXPECT_TRUE(bare.keep_alive) << status;
    const auto closing = parse_once(std::string("HTTP/1.1 ") + status + "\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(closing.done) << status;
    EXPECT_FALSE(closing.keep_alive) << status;
  }
}

// ---------------------------------------------------------------------------------------------
// Interim responses and upgrades

TEST(HttpParser, InterimResponsesAreSkipped) {
  const auto o = parse_once(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 102 Processing\r\nX-Interim: yes\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.status, 201);
  EXPECT_EQ(o.reason, "Created");
  EXPECT_EQ(o.body, "ok");
  // Only the final response's fields.
  const std::vector<std::pair<std::string, std::string>> headers{{"Content-Length", "2"}, {"X-Final", "yes"}};
  EXPECT_EQ(o.headers, headers);
}

TEST(HttpParser, AnInterimResponseAloneIsNotAHead) {
  const std::string wire = "HTTP/1.1 100 Continue\r\n\r\n";
  const auto o = parse_once(wire);
  EXPECT_FALSE(o.head_done);
  EXPECT_FALSE(o.done);
  EXPECT_EQ(o.consumed, wire.size());
  EXPECT_EQ(error_of(wire, {.eof = true}).code(), errc::connection_failed);
}

TEST(HttpParser, InterimThenHeadResponse) {
  const auto o = parse_once("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                            {.head_request = true});
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.status, 200);
}

TEST(HttpParser, SwitchingProtocolsLeavesTheFollowingBytesUnconsumed) {
  const std::string head = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 5\r\n\r\n";
  const std::string raw = bytes("\x01\x00\x00\x00\x00\x00\x00\x05") + "hello";
  const auto o = parse_once(head + raw);
  EXPECT_TRUE(o.done);
  EXPECT_TRUE(o.upgraded);
  EXPECT_FALSE(o.keep_alive);
  EXPECT_EQ(o.framing, Framing::none);
  EXPECT_EQ(o.status, 101);
  EXPECT_EQ(o.consumed, head.size());
  EXPECT_EQ(o.body, "");
  EXPECT_EQ(o.body_bytes, 0u);
}

TEST(HttpParser, ParserIsReusableForTheNextResponseOnTheConnection) {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none";
  const std::string second = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n";
  const std::string wire = first + second;
  Parser p;
  std::string body;
  const auto sink = [&](std::string_view d) { body.append(d); };
  p.start(false);
  const std::size_t n1 = p.parse(wire, sink);
  EXPECT_EQ(n1, first.size());
  EXPECT_TRUE(p.done());
  EXPECT_EQ(body, "one");
  // Done: nothing more is consumed until start().
  EXPECT_EQ(p.parse(std::string_view(wire).substr(n1), sink), 0u);
  body.clear();
  p.start(false);
  EXPECT_FALSE(p.done());
  EXPECT_FALSE(p.head_done());
  EXPECT_EQ(p.body_bytes(), 0u);
  const std::size_t n2 = p.parse(std::string_view(wire).substr(n1), sink);
  EXPECT_EQ(n2, second.size());
  EXPECT_TRUE(p.done());
  EXPECT_EQ(p.head().status, 404);
  EXPECT_EQ(p.head().headers.size(), 1u);  // nothing left from the first response
  EXPECT_EQ(body, "two");
  // start() after an upgrade clears it.
  p.start(false);
  p.parse("HTTP/1.1 101 Switching\r\n\r\n", sink);
  EXPECT_TRUE(p.upgraded());
  p.start(false);
  EXPECT_FALSE(p.upgraded());
}

// ---------------------------------------------------------------------------------------------
// Keep-alive

struct KeepAliveCase {
  const char* wire;
  bool keep_alive;
};

TEST(HttpParser, KeepAlive) {
  const KeepAliveCase cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nConnection: foo\r\nConnection:  CLOSE \r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nX-Connection: close\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 200 OK\r\nConnection: x, keep-alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n", true},
      {"HTTP/1.0 204 No Content\r\n\r\n", false},
  };
  for (const auto& c : cases) {
    const auto o = parse_once(c.wire);
    EXPECT_TRUE(o.done) << c.wire;
    EXPECT_EQ(o.keep_alive, c.keep_alive) << c.wire;
  }
}

// "close" means close, whatever else the field lists (RFC 9112 §9.6), in HTTP/1.0 too.
TEST(HttpParser, Http10CloseWinsOverKeepAlive) {
  EXPECT_FALSE(parse_once("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n").keep_alive);
  EXPECT_FALSE(parse_once("HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
                   .keep_alive);
}

TEST(HttpParser, CloseDelimitedIsNeverKeptAliveEvenWhenAsked) {
  for (const char* wire : {"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nbody",
                           "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nbody", "HTTP/1.0 200 OK\r\n\r\nbody"}) {
    const auto o = parse_once(wire, {.eof = true});
    EXPECT_TRUE(o.done) << wire;
    EXPECT_EQ(o.body, "body") << wire;
    EXPECT_FALSE(o.keep_alive) << wire;
    EXPECT_EQ(o.version_minor, std::string_view(wire).substr(5, 3) == "1.0" ? 0 : 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Content-Length

TEST(HttpParser, RepeatedEqualContentLengthsAreAccepted) {
  EXPECT_EQ(parse_once("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").body, "abc");
  EXPECT_EQ(parse_once("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc").body, "abc");
  EXPECT_EQ(parse_once("HTTP/1.1 200 OK\r\ncontent-length: 3,3\r\n\r\nabc").body, "abc");
  EXPECT_EQ(parse_once("HTTP/1.1 200 OK\r\nContent-Length: 003\r\n\r\nabc").body, "abc");
}

TEST(HttpParser, ConflictingContentLengthsAreAProtocolError) {
  expect_protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  expect_protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd");
  expect_protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3, 30\r\n\r\nabc");
  // Even where the body would be ignored.
  expect_protocol_error("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
  expect_protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", {.head_request = true});
  expect_protocol_error(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n0\r\n\r\n");
}

TEST(HttpParser, MalformedContentLengthsAreAProtocolError) {
  for (const char* value : {"abc", "-1", "+3", "3a", "0x10", "1 2", ",3", "3,,3", "1.5",
                            "99999999999999999999", "18446744073709551616"}) {
    expect_protocol_error(std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + value + "\r\n\r\n");
  }
}

// RFC 9112 §6.3 (5): an invalid Content-Length without Transfer-Encoding is an unrecoverable error.
// An empty value, or a trailing comma, is not a valid Content-Length, and must not silently turn
// the body into a close-delimited one (or be read as the number before the comma).
TEST(HttpParser, EmptyContentLengthOrTrailingCommaIsAProtocolError) {
  for (const char* value : {"", "3,", "3, ", " , "})
    expect_protocol_error(std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + value + "\r\n\r\nabc");
  expect_protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: \r\n\r\nabc");
}

TEST(HttpParser, HugeContentLengthIsAcceptedAndWaitsForTheBody) {
  const auto o = parse_once("HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\nabc");
  EXPECT_EQ(o.content_length, 9999999999999999999ull);
  EXPECT_FALSE(o.done);
  EXPECT_EQ(o.body, "abc");
}

// ---------------------------------------------------------------------------------------------
// Status lines and header fields

TEST(HttpParser, BadStatusLinesAreAProtocolError) {
  for (const char* line : {"", "HTTP/1.1", "HTTP/1.1 ", "HTTP/1.1 20", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK",
                           "HTTP/1.1 abc OK", "HTTP/1.1 2x0 OK", "HTTP/1.1 -20 OK", "HTTP/1.1 099 Low",
                           "HTTP/1.1 000 Zero", "HTTP/1.1 200OK", "HTTP/1.1  200 OK", "HTTP/1.1 200\tOK",
                           "HTTP/1.1\t200 OK", "HTTP/2 200 OK", "HTTP/2.0 200 OK", "HTTP/1.2 200 OK",
                           "HTTP/1.x 200 OK", "HTTP/0.9 200 OK", "HTTPS/1.1 200 OK", "http/1.1 200 OK",
                           "ICY 200 OK", " HTTP/1.1 200 OK", "HTTP/1.10 200 OK", "HTTP/11 200 OK",
                           "garbage garbage garbage"}) {
    expect_protocol_error(std::string(line) + "\r\nContent-Length: 0\r\n\r\n");
  }
}

TEST(HttpParser, Http10StatusLine) {
  const auto o = parse_once("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx");
  EXPECT_EQ(o.version_minor, 0);
  EXPECT_EQ(o.body, "x");
}

TEST(HttpParser, ObsoleteLineFoldingIsRejected) {
  expect_protocol_error("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n");
  expect_protocol_error("HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n");
  // A fold as the first field line, which is whitespace between the status line and a field.
  expect_protocol_error("HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n");
}

TEST(HttpParser, BadHeaderFieldsAreRejected) {
  for (const char* field : {"NoColon", ": value", "Bad Name: x", "Name : x", "Na\"me: x", "Na(me): x",
                            "N\xc3\xa4me: x", "X-A: a\x01z", "X-A: a\x7fz", "X-A: a\rb", "Na/me: x",
                            "Name@: x", "{x}: y"}) {
    expect_protocol_error(std::string("HTTP/1.1 200 OK\r\n") + field + "\r\nContent-Length: 0\r\n\r\n");
  }
  expect_protocol_error(bytes("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n"));
  expect_protocol_error("HTTP/1.1 200 OK\r\nX-A: a\r\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpParser, TokenCharactersAreAllowedInNames) {
  const auto o = parse_once("HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09azAZ: v\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.headers.front().first, "!#$%&'*+-.^_`|~09azAZ");
}

TEST(HttpParser, ErrorMessagesNameTheProblem) {
  const Error e = error_of("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  EXPECT_NE(std::string(e.what()).find("malformed HTTP response"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("Content-Length"), std::string::npos) << e.what();
}

// ---------------------------------------------------------------------------------------------
// Limits

TEST(HttpParser, HeaderBlockAtTheLimitIsAccepted) {
  const std::string prefix = "HTTP/1.1 200 OK\r\nX-Pad: ";
  const std::string suffix = "\r\nContent-Length: 0\r\n\r\n";
  const std::size_t limit = 200;
  const std::string wire = prefix + std::string(limit - prefix.size() - suffix.size(), 'p') + suffix;
  ASSERT_EQ(wire.size(), limit);
  EXPECT_TRUE(parse_once(wire, {.limits = {.max_header_bytes = limit}}).done);
  // One byte more is too many, complete or not.
  const std::string over = prefix + std::string(limit + 1 - prefix.size() - suffix.size(), 'p') + suffix;
  expect_protocol_error(over, {.limits = {.max_header_bytes = limit}});
}

TEST(HttpParser, HeaderBlockOverTheLimitFailsWhileStillUnterminated) {
  const std::size_t limit = 256;
  const std::string endless = "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(limit, 'p');
  expect_protocol_error(endless, {.limits = {.max_header_bytes = limit}});
  // Up to the limit it just waits for more.
  const auto waiting = parse_once(endless.substr(0, limit), {.limits = {.max_header_bytes = limit}});
  EXPECT_FALSE(waiting.head_done);
  EXPECT_EQ(waiting.consumed, 0u);
  // Fed a byte at a time, it fails as soon as it holds more than the limit: no unbounded buffer.
  Parser p({.max_header_bytes = limit});
  p.start(false);
  std::string buffer;
  std::size_t fed = 0;
  bool threw = false;
  for (char c : std::string(endless + std::string(10'000, 'x'))) {
    buffer += c;
    ++fed;
    try {
      EXPECT_EQ(p.parse(buffer, [](std::string_view) {}), 0u);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::protocol_error);
      threw = true;
      break;
    }
  }
  EXPECT_TRUE(threw);
  EXPECT_EQ(fed, limit + 1);
}

TEST(HttpParser, DefaultHeaderLimitIs64KiB) {
  const std::string prefix = "HTTP/1.1 200 OK\r\nX-Big: ";
  expect_protocol_error(prefix + std::string(64 * 1024, 'a') + "\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(parse_once(prefix + std::string(60 * 1024, 'a') + "\r\nContent-Length: 0\r\n\r\n").done);
}

TEST(HttpParser, TooManyHeaderFields) {
  const auto with_fields = [](std::size_t n) {
    std::string wire = "HTTP/1.1 200 OK\r\n";
    for (std::size_t i = 0; i < n; ++i) wire += "X-" + std::to_string(i) + ": v\r\n";
    return wire + "\r\n";
  };
  const http::ParserLimits limits{.max_header_count = 3};
  const auto ok = parse_once(with_fields(3), {.eof = true, .limits = limits});
  EXPECT_TRUE(ok.done);
  EXPECT_EQ(ok.headers.size(), 3u);
  expect_protocol_error(with_fields(4), {.limits = limits});
  // The default is 256.
  EXPECT_TRUE(parse_once(with_fields(256), {.eof = true}).done);
  expect_protocol_error(with_fields(257));
}

TEST(HttpParser, EachHeaderBlockIsLimitedOnItsOwn) {
  // An interim response's block does not count against the final one's.
  const std::string interim = "HTTP/1.1 103 Early Hints\r\nLink: " + std::string(150, 'l') + "\r\n\r\n";
  const std::string final_head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  EXPECT_TRUE(parse_once(interim + final_head, {.limits = {.max_header_bytes = 200}}).done);
}

TEST(HttpParser, ChunkLineLimit) {
  const http::ParserLimits limits{.max_chunk_line = 16};
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_TRUE(parse_once(head + "1;abcdefghijklm\r\nx\r\n0\r\n\r\n", {.limits = limits}).done);
  expect_protocol_error(head + "1;abcdefghijklmnopqrstuvwxyz\r\nx\r\n0\r\n\r\n", {.limits = limits});
  // An endless chunk line fails without waiting for its end.
  expect_protocol_error(head + "1;" + std::string(100, 'e'), {.limits = limits});
}

TEST(HttpParser, TrailerSectionLimit) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  const http::ParserLimits limits{.max_header_bytes = 100};
  std::string trailers;
  for (int i = 0; i < 20; ++i) trailers += "X-T" + std::to_string(i) + ": v\r\n";
  expect_protocol_error(head + trailers + "\r\n", {.limits = limits});
  expect_protocol_error(head + "X-T: " + std::string(200, 't'), {.limits = limits});
  EXPECT_TRUE(parse_once(head + "X-T: v\r\n\r\n", {.limits = limits}).done);
}

TEST(HttpParser, MalformedTrailersAreRejected) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  expect_protocol_error(head + "NoColon\r\n\r\n");
  expect_protocol_error(head + "X-A: a\r\n folded\r\n\r\n");
  expect_protocol_error(head + "X-A: \x01\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// Chunk sizes and framing errors

TEST(HttpParser, ChunkSizeOverflowIsRejected) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  expect_protocol_error(head + "ffffffffffffffffffff\r\n");
  expect_protocol_error(head + "10000000000000000\r\n");  // 2^64
  expect_protocol_error(head + "1000000000000000\r\n");   // 2^60: no real body is bigger
  // 15 hex digits still parse (and the body then waits for its bytes).
  const auto o = parse_once(head + "fffffffffffffff\r\nabc");
  EXPECT_FALSE(o.done);
  EXPECT_EQ(o.body, "abc");
}

// RFC 9112: chunk-size = 1*HEXDIG. Leading zeros do not make a chunk bigger.
TEST(HttpParser, LeadingZerosInAChunkSizeAreAllowed) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const auto o = parse_once(head + "00000000000000000003\r\nabc\r\n00000000000000000000\r\n\r\n");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "abc");
}

TEST(HttpParser, BadChunkSizesAreRejected) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* line : {"", "x", "g", "-1", "+1", " 1", "0x5", "5x", "5 x", "5,", "1 2", "\x01", ";ext"}) {
    expect_protocol_error(head + line + "\r\nhello\r\n0\r\n\r\n");
  }
}

TEST(HttpParser, ChunkDataMustEndWithALineBreak) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  expect_protocol_error(head + "5\r\nhelloX\r\n0\r\n\r\n");
  expect_protocol_error(head + "5\r\nhello\rX\n0\r\n\r\n");
  expect_protocol_error(head + "5\r\nhello0\r\n\r\n");
  expect_protocol_error(head + "3\r\nhello\r\n0\r\n\r\n");  // data longer than its size
}

// ---------------------------------------------------------------------------------------------
// A connection closed too early

TEST(HttpParser, TruncatedResponsesAreConnectionFailures) {
  const std::vector<std::string> cut = {
      "",
      "HTTP/1.1 200 OK\r\nContent-Len",
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
  };
  for (const auto& wire : cut) {
    const Error e = error_of(wire, {.eof = true});
    EXPECT_EQ(e.code(), errc::connection_failed) << ::testing::PrintToString(wire);
  }
}

TEST(HttpParser, FinishEofNamesWhereTheResponseWasCut) {
  Parser p;
  p.start(false);
  try {
    p.finish_eof();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("header"), std::string::npos) << e.what();
  }
  p.start(false);
  p.parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na", [](std::string_view) {});
  try {
    p.finish_eof();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("body"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Splits: every valid response gives the same result however it is cut into reads.

struct Sample {
  std::string name;
  std::string wire;
  Feed how;
};

std::vector<Sample> valid_samples() {
  return {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world", {}},
      {"content-length-zero", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {}},
      {"content-length-then-next",
       "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbodyHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
       {}},
      {"chunked-ext-trailers",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
       "5;a=b;c=\"d;e\"\r\nhello\r\n1 ; x\r\n \r\nA\r\n0123456789\r\n"
       "f\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nX\r\n"  // 15 bytes of line breaks and an X
       "0;end\r\nX-Trailer: t\r\nX-More: m\r\n\r\n",
       {}},
      {"chunked-bare-lf", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n2;x\nde\n0\nT: v\n\n", {}},
      {"chunked-then-next",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
       {}},
      {"close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nline one\r\nline two\r\n\r\n",
       {.eof = true}},
      {"http10-close-delimited", "HTTP/1.0 200 OK\r\n\r\nold school", {.eof = true}},
      {"http10-keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc", {}},
      {"te-gzip-until-close", bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00zz"), {.eof = true}},
      {"head", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", {.head_request = true}},
      {"head-chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", {.head_request = true}},
      {"no-content", "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", {}},
      {"not-modified", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\n", {}},
      {"continue-then-ok",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", {}},
      {"several-interim",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n"
       "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
       {}},
      {"upgrade",
       "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
       "Upgrade: tcp\r\n\r\n" + bytes("\x01\x00\x00\x00\x00\x00\x00\x03") + "abc",
       {}},
      {"bare-lf-head", "HTTP/1.1 404 Not Found\nContent-Length: 9\nX-Y:z\n\nnot found", {}},
      {"mixed-line-ends", "HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\nxyz", {.eof = true}},
      {"binary-body", bytes("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\r\n\0\xff\r\n\r\n"), {}},
      {"error-json",
       "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
       "{\"message\":\"already there\"}",
       {}},
  };
}

// The head and body of a response must not depend on how its bytes were split into reads.
TEST(HttpParser, EveryTwoPieceSplitGivesTheSameResult) {
  for (const auto& sample : valid_samples()) {
    SCOPED_TRACE(sample.name);
    const Outcome whole = parse_once(sample.wire, sample.how);
    ASSERT_TRUE(whole.done);
    for (std::size_t cut = 0; cut <= sample.wire.size(); ++cut) {
      const Outcome split = feed(sample.wire, {cut, sample.wire.size() - cut}, sample.how);
      expect_same(split, whole, sample.name + " cut at " + std::to_string(cut));
      if (::testing::Test::HasFailure()) return;  // one report per sample is enough
    }
  }
}

TEST(HttpParser, OneByteAtATimeGivesTheSameResult) {
  for (const auto& sample : valid_samples()) {
    SCOPED_TRACE(sample.name);
    const Outcome whole = parse_once(sample.wire, sample.how);
    const Outcome bytes = feed(sample.wire, std::vector<std::size_t>(sample.wire.size(), 1), sample.how);
    expect_same(bytes, whole, sample.name + " byte by byte");
  }
}

TEST(HttpParser, EveryThreePieceSplitOfAChunkedResponse) {
  const std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x=y\r\nabc\r\n1\r\nd\r\n0\r\nT: 1\r\n\r\n";
  const Outcome whole = parse_once(wire);
  ASSERT_TRUE(whole.done);
  ASSERT_EQ(whole.body, "abcd");
  for (std::size_t a = 0; a <= wire.size(); ++a) {
    for (std::size_t b = a; b <= wire.size(); ++b) {
      const Outcome split = feed(wire, {a, b - a, wire.size() - b});
      expect_same(split, whole, "cuts at " + std::to_string(a) + " and " + std::to_string(b));
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// The body callback sees exactly the body bytes, in order, and nothing of the framing.
TEST(HttpParser, BodyCallbackGetsOnlyBodyBytesWithCorrectCounts) {
  const std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  Parser p;
  p.start(false);
  std::vector<std::string> pieces;
  EXPECT_EQ(p.parse(wire, [&](std::string_view d) { pieces.emplace_back(d); }), wire.size());
  const std::vector<std::string> expected{"abc", "defg"};
  EXPECT_EQ(pieces, expected);
  EXPECT_EQ(p.body_bytes(), 7u);
}

// Malformed responses fail however they are split (never hang waiting for more, never succeed).
TEST(HttpParser, MalformedResponsesFailUnderEverySplit) {
  const std::vector<std::string> bad = {
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
  };
  for (const auto& wire : bad) {
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
      bool threw = false;
      try {
        (void)feed(wire, {cut, wire.size() - cut});
      } catch (const Error& e) {
        threw = true;
        EXPECT_EQ(e.code(), errc::protocol_error);
      }
      EXPECT_TRUE(threw) << ::testing::PrintToString(wire) << " cut at " << cut;
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Through the client's own read buffer (detail::Connection: pending(), make_room()), with several
// responses back to back on one kept-alive connection, as receive() drives it.

// Receives `wire` through a Connection, at most `read_size` bytes per read, and parses `count`
// responses one after the other; the connection closes after the last byte of `wire`.
// A connection's buffer and parser, with a stream that is never used.
http::Tcp::Stream unconnected(asio::io_context& context) {
  asio::ip::tcp::socket socket(context, asio::ip::tcp::v4());
  return http::Tcp::Stream(std::move(socket));
}

std::vector<Outcome> through_connection(std::string_view wire, std::size_t read_size, std::size_t count,
                                        http::detail::Connection<http::Tcp>& c, const http::ParserLimits& limits = {}) {
  const std::size_t buffer_limit = limits.max_header_bytes + limits.max_chunk_line + 4096;  // as receive()
  std::size_t at = 0;
  std::vector<Outcome> out;
  for (std::size_t i = 0; i < count; ++i) {
    c.parser.start(false);
    std::string body;
    std::size_t consumed = 0;
    for (;;) {
      if (c.begin != c.end) {
        const std::size_t n = c.parser.parse(c.pending(), [&](std::string_view d) { body.append(d); });
        c.begin += n;
        consumed += n;
      }
      if (c.parser.done()) break;
      c.make_room(buffer_limit);
      const std::size_t room = c.buffer.size() - c.end;
      if (room == 0) {
        ADD_FAILURE() << "make_room() left no room to read into";
        return out;
      }
      const std::size_t n = std::min({read_size, room, wire.size() - at});
      if (n == 0) {
        c.parser.finish_eof();
        break;
      }
      std::memcpy(c.buffer.data() + c.end, wire.data() + at, n);
      at += n;
      c.end += n;
    }
    out.push_back(outcome_of(c.parser, std::move(body), consumed));
  }
  return out;
}

TEST(HttpParser, BackToBackResponsesThroughTheClientsReadBuffer) {
  std::string big_head = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 200; ++i) big_head += "X-Header-" + std::to_string(i) + ": " + std::string(200, 'v') + "\r\n";
  big_head += "Content-Length: 5\r\n\r\nfirst";  // ~45 KB: the 16 KiB buffer has to grow
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string chunked_body;
  for (int i = 0; i < 40; ++i) {
    const std::string piece(static_cast<std::size_t>(1 + i * 97), static_cast<char>('a' + i % 26));
    chunked_body += piece;
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    chunked += std::string(size) + ";i=" + std::to_string(i) + "\r\n" + piece + "\r\n";
  }
  chunked += "0\r\nX-Trailer: t\r\n\r\n";
  std::string long_body(70'000, '\0');
  for (std::size_t i = 0; i < long_body.size(); ++i) long_body[i] = static_cast<char>(i * 31 % 251);
  const std::string with_length = "HTTP/1.1 201 Created\r\nContent-Length: 70000\r\n\r\n" + long_body;
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  const std::string last = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end";
  const std::vector<std::string> responses = {big_head, chunked, with_length, interim, last};
  std::string wire;
  for (const auto& r : responses) wire += r;

  std::vector<Outcome> expected;
  for (const auto& r : responses) expected.push_back(parse_once(r, {.eof = &r == &responses.back()}));
  ASSERT_EQ(expected[1].body, chunked_body);
  ASSERT_EQ(expected[2].body, long_body);
  ASSERT_EQ(expected[4].body, "to the end");

  for (const std::size_t read_size : std::initializer_list<std::size_t>{1, 3, 1000, 4096, 16384, 16385, 65536, 1 << 20}) {
    asio::io_context context;
    http::detail::Connection<http::Tcp> c(unconnected(context), http::ParserLimits{});
    const auto got = through_connection(wire, read_size, responses.size(), c);
    ASSERT_EQ(got.size(), responses.size()) << read_size;
    for (std::size_t i = 0; i < got.size(); ++i)
      expect_same(got[i], expected[i], "response " + std::to_string(i) + ", reads of " + std::to_string(read_size));
    EXPECT_EQ(c.pending(), "") << read_size;
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(HttpParser, UpgradedConnectionHandsOutTheBytesBehindThe101First) {
  const std::string head = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
  const std::string raw = bytes("\x01\x00\x00\x00\x00\x00\x00\x05") + "hello";
  for (const std::size_t read_size : std::initializer_list<std::size_t>{1, 5, 4096}) {
    auto context = std::make_shared<asio::io_context>(1);
    auto c = std::make_unique<http::detail::Connection<http::Tcp>>(unconnected(*context), http::ParserLimits{});
    const auto got = through_connection(head + raw, read_size, 1, *c);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0].upgraded);
    EXPECT_EQ(got[0].consumed, head.size());
    // What was read together with the head (all of it when the read was big enough) waits in the
    // buffer and comes out of the upgraded connection first, in order.
    const std::string buffered(c->pending());
    EXPECT_EQ(buffered, raw.substr(0, buffered.size()));
    if (read_size >= head.size() + raw.size()) {
      EXPECT_EQ(buffered, raw);
    }
    http::UpgradedConnection<http::Tcp> upgraded(http::Response{.status = 101}, std::move(c), context);
    EXPECT_TRUE(upgraded.upgraded());
    std::string out;
    char chunk[3];
    while (out.size() < buffered.size()) {
      std::error_code ec;
      const std::size_t n =
          upgraded.read_some(chunk, sizeof chunk, std::chrono::steady_clock::now() + std::chrono::seconds(1), ec);
      ASSERT_FALSE(ec);
      ASSERT_GT(n, 0u);
      out.append(chunk, n);
    }
    EXPECT_EQ(out, buffered);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

TEST(HttpParserDetail, HasToken) {
  using http::detail::has_token;
  EXPECT_TRUE(has_token("close", "close"));
  EXPECT_TRUE(has_token("Keep-Alive, Close", "close"));
  EXPECT_TRUE(has_token(" upgrade ,\tclose\t", "close"));
  EXPECT_TRUE(has_token("a,,close", "close"));
  EXPECT_FALSE(has_token("", "close"));
  EXPECT_FALSE(has_token("closed", "close"));
  EXPECT_FALSE(has_token("xclose, keep-alive", "close"));
  EXPECT_FALSE(has_token("clo se", "close"));
}

TEST(HttpParserDetail, TrimOws) {
  using http::detail::trim_ows;
  EXPECT_EQ(trim_ows(" \t a b \t "), "a b");
  EXPECT_EQ(trim_ows(""), "");
  EXPECT_EQ(trim_ows(" \t "), "");
  EXPECT_EQ(trim_ows("\r\nx"), "\r\nx");  // only SP and HTAB
}

}  // namespace

// The reason phrase ends up in error messages: it gets the same control-character check as
// header values.
TEST(HttpParser, ControlCharactersInTheReasonPhraseAreRefused) {
  expect_protocol_error(std::string("HTTP/1.1 200 O\x1b[31mK\r\nContent-Length: 0\r\n\r\n"));
  expect_protocol_error(bytes("HTTP/1.1 200 OK\0\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(parse_once("HTTP/1.1 200 All\tfine\r\nContent-Length: 0\r\n\r\n").reason, "All\tfine");
}

// An endless stream of 1xx responses would keep a request busy while data flows (so the idle
// timeout never fires): their total counts against the header limit.
TEST(HttpParser, EndlessInterimResponsesHitTheHeaderLimit) {
  std::string wire;
  while (wire.size() < 200'000) wire += "HTTP/1.1 100 Continue\r\n\r\n";
  const Error e = error_of(wire);
  EXPECT_EQ(e.code(), errc::protocol_error);
  EXPECT_NE(std::string(e.what()).find("interim"), std::string::npos) << e.what();
  // A few are fine.
  EXPECT_EQ(parse_once("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").body, "ok");
}
