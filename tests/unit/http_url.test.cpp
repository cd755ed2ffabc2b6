// http::Url, percent-encoding, query strings and request targets (no network).
#define _GLIBCXX_ASSERTIONS 1  // out-of-range string_view/vector access aborts instead of reading junk

#include <workspace/http/url.hpp>

#include "../support/error_from.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <system_error>

namespace {

using namespace workspace;

using workspace_test::error_from;

void expect_invalid(const std::string& text) {
  try {
    (void)http::Url::parse(text);
    ADD_FAILURE() << "accepted: " << ::testing::PrintToString(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument) << ::testing::PrintToString(text);
  }
}

// ---------------------------------------------------------------------------------------------
// Url::parse: schemes, hosts and ports

TEST(HttpUrl, ParsesAPlainHttpUrl) {
  const auto url = http::Url::parse("http://example.com/api/v1?x=1");
  EXPECT_EQ(url.scheme, "http");
  EXPECT_EQ(url.userinfo, "");
  EXPECT_EQ(url.host, "example.com");
  EXPECT_EQ(url.port, 80);
  EXPECT_EQ(url.path, "/api/v1");
  EXPECT_EQ(url.query, "x=1");
  EXPECT_FALSE(url.is_tls());
  EXPECT_EQ(url.target(), "/api/v1?x=1");
  EXPECT_EQ(url.authority(), "example.com");
  EXPECT_EQ(url.str(), "http://example.com/api/v1?x=1");
}

TEST(HttpUrl, DefaultPortsPerScheme) {
  EXPECT_EQ(http::Url::parse("http://h").port, 80);
  EXPECT_EQ(http::Url::parse("https://h").port, 443);
  EXPECT_EQ(http::Url::parse("ws://h").port, 80);
  EXPECT_EQ(http::Url::parse("wss://h").port, 443);
  EXPECT_EQ(http::Url::parse("ftp://h").port, 0);
  EXPECT_EQ(http::Url::default_port("http"), 80);
  EXPECT_EQ(http::Url::default_port("https"), 443);
  EXPECT_EQ(http::Url::default_port("unix"), 0);
  EXPECT_EQ(http::Url::default_port(""), 0);
}

TEST(HttpUrl, TlsSchemes) {
  EXPECT_TRUE(http::Url::parse("https://h/").is_tls());
  EXPECT_TRUE(http::Url::parse("wss://h/").is_tls());
  EXPECT_FALSE(http::Url::parse("http://h/").is_tls());
  EXPECT_FALSE(http::Url::parse("ws://h/").is_tls());
  EXPECT_TRUE(http::Url::parse("HTTPS://h/").is_tls());
}

TEST(HttpUrl, SchemeAndHostAreLowerCasedPathIsNot) {
  const auto url = http::Url::parse("HTTP://Example.COM:8080/Some/Path?Q=V");
  EXPECT_EQ(url.scheme, "http");
  EXPECT_EQ(url.host, "example.com");
  EXPECT_EQ(url.port, 8080);
  EXPECT_EQ(url.path, "/Some/Path");
  EXPECT_EQ(url.query, "Q=V");
  EXPECT_EQ(url.str(), "http://example.com:8080/Some/Path?Q=V");
}

TEST(HttpUrl, ExplicitPorts) {
  EXPECT_EQ(http::Url::parse("http://h:1/").port, 1);
  EXPECT_EQ(http::Url::parse("http://h:65535/").port, 65535);
  EXPECT_EQ(http::Url::parse("http://h:08080/").port, 8080);
  EXPECT_EQ(http::Url::parse("https://h:8443").port, 8443);
  // An empty port is the default one (RFC 3986 allows "host:").
  EXPECT_EQ(http::Url::parse("http://h:/x").port, 80);
}

TEST(HttpUrl, RejectsBadPorts) {
  expect_invalid("http://h:0/");
  expect_invalid("http://h:00/");
  expect_invalid("http://h:65536/");
  expect_invalid("http://h:99999/");
  expect_invalid("http://h:123456789012345678901234567890/");
  expect_invalid("http://h:-1/");
  expect_invalid("http://h:+80/");
  expect_invalid("http://h:8o/");
  expect_invalid("http://h:80 /");
  expect_invalid("http://h: 80/");
  expect_invalid("http://[::1]:65536/");
  expect_invalid("http://[::1]:0/");
  expect_invalid("http://[::1]:x/");
}

TEST(HttpUrl, BadPortMessageDoesNotLeakTheUrl) {
  const Error e = error_from([] { (void)http::Url::parse("http://user:hunter2@h:99999/"); });
  EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
}

TEST(HttpUrl, RejectsMissingOrBadScheme) {
  expect_invalid("");
  expect_invalid("example.com");
  expect_invalid("example.com:80/x");
  expect_invalid("://example.com/");
  expect_invalid("ht tp://example.com/");
  expect_invalid("ht_tp://example.com/");
  expect_invalid("http:/example.com/");
  expect_invalid("http:example.com");
}

TEST(HttpUrl, SchemeMayHoldPlusMinusDotAndDigits) {
  const auto url = http::Url::parse("git+ssh-1.0://h/");
  EXPECT_EQ(url.scheme, "git+ssh-1.0");
  EXPECT_EQ(url.port, 0);
}

TEST(HttpUrl, RejectsAMissingHost) {
  expect_invalid("http://");
  expect_invalid("http:///path");
  expect_invalid("http://:80/");
  expect_invalid("http://user@/");
  expect_invalid("http://user:pw@:8080/");
  expect_invalid("http://[]/");
  expect_invalid("http://[]:80/");
  expect_invalid("https://?x=1");
  expect_invalid("https://#frag");
}

TEST(HttpUrl, UnixSchemeNeedsNoHost) {
  const auto url = http::Url::parse("unix:///var/run/docker.sock");
  EXPECT_EQ(url.scheme, "unix");
  EXPECT_EQ(url.host, "");
  EXPECT_EQ(url.port, 0);
  EXPECT_EQ(url.path, "/var/run/docker.sock");
  EXPECT_EQ(url.authority(), "");
  EXPECT_EQ(url.str(), "unix:///var/run/docker.sock");
}

// ---------------------------------------------------------------------------------------------
// IPv6

TEST(HttpUrl, Ipv6LiteralsLoseTheirBracketsAndGetThemBackInAuthority) {
  const auto url = http::Url::parse("http://[::1]:8080/x");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 8080);
  EXPECT_EQ(url.path, "/x");
  EXPECT_EQ(url.authority(), "[::1]:8080");
  EXPECT_EQ(url.str(), "http://[::1]:8080/x");

  const auto plain = http::Url::parse("https://[2001:DB8::A]");
  EXPECT_EQ(plain.host, "2001:db8::a");
  EXPECT_EQ(plain.port, 443);
  EXPECT_EQ(plain.path, "/");
  EXPECT_EQ(plain.authority(), "[2001:db8::a]");
  EXPECT_EQ(plain.str(), "https://[2001:db8::a]/");

  const auto empty_port = http::Url::parse("http://[::1]:/");
  EXPECT_EQ(empty_port.port, 80);

  const auto with_user = http::Url::parse("http://u:p@[fe80::1]:81?q");
  EXPECT_EQ(with_user.userinfo, "u:p");
  EXPECT_EQ(with_user.host, "fe80::1");
  EXPECT_EQ(with_user.port, 81);
  EXPECT_EQ(with_user.path, "/");
  EXPECT_EQ(with_user.query, "q");
}

TEST(HttpUrl, RejectsMalformedIpv6Literals) {
  expect_invalid("http://[::1/");
  expect_invalid("http://[::1");
  expect_invalid("http://[::1]x/");
  expect_invalid("http://[::1]8080/");
  expect_invalid("http://[::1]]:80/");
}

// ---------------------------------------------------------------------------------------------
// User information

TEST(HttpUrl, UserinfoIsKeptButNeverPrinted) {
  const auto url = http::Url::parse("https://alice:s%3Acret@api.example.com:8443/base?token=1");
  EXPECT_EQ(url.userinfo, "alice:s%3Acret");
  EXPECT_EQ(url.host, "api.example.com");
  EXPECT_EQ(url.port, 8443);
  EXPECT_EQ(url.authority(), "api.example.com:8443");
  EXPECT_EQ(url.str(), "https://api.example.com:8443/base?token=1");
  EXPECT_EQ(url.str().find("alice"), std::string::npos);
  EXPECT_EQ(url.str().find("cret"), std::string::npos);
  EXPECT_EQ(url.authority().find('@'), std::string::npos);
}

TEST(HttpUrl, TheLastAtSignEndsTheUserinfo) {
  const auto url = http::Url::parse("http://a@b:c@host:81/");
  EXPECT_EQ(url.userinfo, "a@b:c");
  EXPECT_EQ(url.host, "host");
  EXPECT_EQ(url.port, 81);
  EXPECT_EQ(url.str(), "http://host:81/");
}

TEST(HttpUrl, AnAtSignInThePathIsNotUserinfo) {
  const auto url = http::Url::parse("http://host/users/@me?by=a@b");
  EXPECT_EQ(url.userinfo, "");
  EXPECT_EQ(url.host, "host");
  EXPECT_EQ(url.path, "/users/@me");
  EXPECT_EQ(url.query, "by=a@b");
}

TEST(HttpUrl, EmptyUserinfo) {
  const auto url = http::Url::parse("http://@host/");
  EXPECT_EQ(url.userinfo, "");
  EXPECT_EQ(url.host, "host");
}

// ---------------------------------------------------------------------------------------------
// Paths, queries and fragments

TEST(HttpUrl, PathDefaultsToSlashAndBasePathsAreKept) {
  EXPECT_EQ(http::Url::parse("http://h").path, "/");
  EXPECT_EQ(http::Url::parse("http://h").target(), "/");
  EXPECT_EQ(http::Url::parse("http://h/").path, "/");
  EXPECT_EQ(http::Url::parse("http://h/api").path, "/api");
  EXPECT_EQ(http::Url::parse("http://h/api/").path, "/api/");
  EXPECT_EQ(http::Url::parse("http://h/a%20b/c").path, "/a%20b/c");  // stays encoded
  EXPECT_EQ(http::Url::parse("http://h//double").path, "//double");
}

TEST(HttpUrl, QueryWithoutPath) {
  const auto url = http::Url::parse("http://h?a=1&b=2");
  EXPECT_EQ(url.path, "/");
  EXPECT_EQ(url.query, "a=1&b=2");
  EXPECT_EQ(url.target(), "/?a=1&b=2");
  EXPECT_EQ(url.str(), "http://h/?a=1&b=2");
}

TEST(HttpUrl, EmptyQueryIsDropped) {
  const auto url = http::Url::parse("http://h/p?");
  EXPECT_EQ(url.path, "/p");
  EXPECT_EQ(url.query, "");
  EXPECT_EQ(url.target(), "/p");
}

TEST(HttpUrl, QueryMayHoldSlashesAndQuestionMarks) {
  const auto url = http::Url::parse("http://h/p?next=/a?b");
  EXPECT_EQ(url.path, "/p");
  EXPECT_EQ(url.query, "next=/a?b");
}

TEST(HttpUrl, FragmentIsDropped) {
  EXPECT_EQ(http::Url::parse("http://h/p?q=1#frag").target(), "/p?q=1");
  EXPECT_EQ(http::Url::parse("http://h/p#frag").target(), "/p");
  EXPECT_EQ(http::Url::parse("http://h#frag").target(), "/");
  EXPECT_EQ(http::Url::parse("http://h:81#frag").port, 81);
  // A '?' after the '#' belongs to the fragment.
  const auto url = http::Url::parse("http://h/p#f?x=1");
  EXPECT_EQ(url.path, "/p");
  EXPECT_EQ(url.query, "");
  // What the fragment holds does not matter: it is never sent.
  EXPECT_EQ(http::Url::parse("http://h/p#a b").target(), "/p");
}

TEST(HttpUrl, RejectsControlCharactersAndSpacesInPathAndQuery) {
  expect_invalid("http://h/a b");
  expect_invalid("http://h/a\tb");
  expect_invalid("http://h/a\rb");
  expect_invalid("http://h/a\nb");
  expect_invalid("http://h/a\r\nHost: evil");
  expect_invalid(std::string("http://h/a\0b", 12));
  expect_invalid("http://h/a\x7f");
  expect_invalid("http://h/p?a b");
  expect_invalid("http://h/p?a=\r\nX: y");
  expect_invalid("http://h?\x01");
}

TEST(HttpUrl, AcceptsNonAsciiBytesInThePath) {
  // Bytes >= 0x80 are not controls; they are passed through as written.
  const auto url = http::Url::parse("http://h/caf\xc3\xa9");
  EXPECT_EQ(url.path, "/caf\xc3\xa9");
}

// The host goes into the Host header (Origin::host_header = authority()), so a host with a line
// break or a space must be refused like a path with one.
TEST(HttpUrl, RejectsControlCharactersAndSpacesInTheHost) {
  expect_invalid("http://exa mple.com/");
  expect_invalid("http://example.com\r\nX-Injected: 1/");
  expect_invalid("http://example.com\r\nX-Injected:1/");  // host "example.com\r\nX-Injected", port 1
  expect_invalid("http://example.com\n/");
  expect_invalid(std::string("http://exa\0mple.com/", 20));
  expect_invalid("http://example.com\t:80/");
  expect_invalid("http://[::1\r\nX: y]/");
}

// A host that is not bracketed may not hold a colon: "::1" and "h:1:2" are not hostnames.
TEST(HttpUrl, RejectsColonsInAnUnbracketedHost) {
  expect_invalid("http://::1/");
  expect_invalid("http://h:1:2/");
}

// ---------------------------------------------------------------------------------------------
// authority()

TEST(HttpUrl, AuthorityOmitsOnlyTheSchemesDefaultPort) {
  EXPECT_EQ(http::Url::parse("http://h:80/").authority(), "h");
  EXPECT_EQ(http::Url::parse("http://h:443/").authority(), "h:443");
  EXPECT_EQ(http::Url::parse("https://h:443/").authority(), "h");
  EXPECT_EQ(http::Url::parse("https://h:80/").authority(), "h:80");
  EXPECT_EQ(http::Url::parse("http://h:8080/").authority(), "h:8080");
  EXPECT_EQ(http::Url::parse("http://[::1]:80/").authority(), "[::1]");
  EXPECT_EQ(http::Url::parse("https://[::1]:80/").authority(), "[::1]:80");
  EXPECT_EQ(http::Url::parse("http://127.0.0.1:80/").authority(), "127.0.0.1");
  EXPECT_EQ(http::Url::parse("http://127.0.0.1:81/").authority(), "127.0.0.1:81");
  EXPECT_EQ(http::Url::parse("http://h:80/").str(), "http://h/");
  EXPECT_EQ(http::Url::parse("https://h:443/x").str(), "https://h/x");
}

TEST(HttpUrl, StrOfAParsedStrIsStable) {
  for (const char* text : {"http://h/", "https://u:p@[::1]:8443/a/b?c=d#e", "http://H:80", "ws://x:81/?",
                           "unix:///run/x.sock"}) {
    const std::string once = http::Url::parse(text).str();
    EXPECT_EQ(http::Url::parse(once).str(), once) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// percent_encode / percent_decode

TEST(HttpPercent, UnreservedCharactersPassThrough) {
  const std::string unreserved =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~";
  EXPECT_EQ(http::percent_encode(unreserved), unreserved);
  EXPECT_EQ(http::percent_encode(unreserved, true), unreserved);
}

TEST(HttpPercent, EveryOtherByteIsEncodedInUpperCaseHex) {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const std::string in(1, c);
    const std::string out = http::percent_encode(in);
    if (http::detail::is_unreserved(c)) {
      EXPECT_EQ(out, in) << b;
      continue;
    }
    static constexpr char hex[] = "0123456789ABCDEF";
    const std::string expected = {'%', hex[b >> 4], hex[b & 15]};
    EXPECT_EQ(out, expected) << b;
    // keep_slashes changes only '/'.
    EXPECT_EQ(http::percent_encode(in, true), b == '/' ? std::string("/") : expected) << b;
  }
}

TEST(HttpPercent, RoundTripsAll256ByteValues) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string encoded = http::percent_encode(all);
  // Only unreserved characters and escapes remain.
  for (char c : encoded) EXPECT_TRUE(http::detail::is_unreserved(c) || c == '%') << int(c);
  EXPECT_EQ(http::percent_decode(encoded), all);
  EXPECT_EQ(http::percent_decode(http::percent_encode(all, true)), all);
  // Each byte also on its own, and in pairs with every byte.
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(http::percent_decode(http::percent_encode(one)), one) << b;
    const std::string two = one + static_cast<char>(255 - b);
    EXPECT_EQ(http::percent_decode(http::percent_encode(two)), two) << b;
  }
}

TEST(HttpPercent, EmbeddedNulIsEncoded) {
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(http::percent_encode(with_nul), "a%00b");
  EXPECT_EQ(http::percent_decode("a%00b"), with_nul);
}

TEST(HttpPercent, KeepSlashes) {
  EXPECT_EQ(http::percent_encode("/home/user/my file.txt", true), "/home/user/my%20file.txt");
  EXPECT_EQ(http::percent_encode("/home/user/my file.txt"), "%2Fhome%2Fuser%2Fmy%20file.txt");
  EXPECT_EQ(http::percent_encode("a?b#c&d=e+f", true), "a%3Fb%23c%26d%3De%2Bf");
  EXPECT_EQ(http::percent_encode("%2F", true), "%252F");
  EXPECT_EQ(http::percent_encode(""), "");
}

TEST(HttpPercent, DecodeAcceptsBothHexCases) {
  EXPECT_EQ(http::percent_decode("%2f%2F%aB%Ab"), "//\xab\xab");
  EXPECT_EQ(http::percent_decode("plain"), "plain");
  EXPECT_EQ(http::percent_decode(""), "");
  // '+' is not a space outside form encoding.
  EXPECT_EQ(http::percent_decode("a+b"), "a+b");
  EXPECT_EQ(http::percent_decode("%41%42%43"), "ABC");
  EXPECT_EQ(http::percent_decode("%2541"), "%41");  // decoded once only
}

TEST(HttpPercent, DecodeRejectsMalformedEscapes) {
  for (const char* bad : {"%", "%4", "a%", "a%4", "%G0", "%0G", "%%", "%%41", "%-1", "% 1", "abc%2"}) {
    const Error e = error_from([&] { (void)http::percent_decode(bad); });
    EXPECT_EQ(e.code(), errc::invalid_argument) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// encode_query and make_target

TEST(HttpQuery, EncodesNamesAndValuesInOrder) {
  EXPECT_EQ(http::encode_query({}), "");
  EXPECT_EQ(http::encode_query({{"a", "1"}}), "a=1");
  EXPECT_EQ(http::encode_query({{"b", "2"}, {"a", "1"}}), "b=2&a=1");  // order kept, not sorted
  EXPECT_EQ(http::encode_query({{"a", ""}, {"", "v"}}), "a=&=v");
  EXPECT_EQ(http::encode_query({{"a", "1"}, {"a", "2"}}), "a=1&a=2");  // repeats kept
  EXPECT_EQ(http::encode_query({{"q", "a b&c=d/e?f#g+h%"}}), "q=a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25");
  EXPECT_EQ(http::encode_query({{"k&=", "v"}}), "k%26%3D=v");
  EXPECT_EQ(http::encode_query({{"caf\xc3\xa9", "\xe2\x82\xac"}}), "caf%C3%A9=%E2%82%AC");
}

TEST(HttpQuery, RoundTripsThroughPercentDecode) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string q = http::encode_query({{all, all}});
  const auto eq = q.find('=');
  ASSERT_NE(eq, std::string::npos);
  EXPECT_EQ(q.find('=', eq + 1), std::string::npos);  // '=' in the data is escaped
  EXPECT_EQ(q.find('&'), std::string::npos);
  EXPECT_EQ(http::percent_decode(q.substr(0, eq)), all);
  EXPECT_EQ(http::percent_decode(q.substr(eq + 1)), all);
}

TEST(HttpTarget, MakeTargetEncodesThePathButKeepsSlashes) {
  EXPECT_EQ(http::make_target(""), "/");
  EXPECT_EQ(http::make_target("/"), "/");
  EXPECT_EQ(http::make_target("/containers/json"), "/containers/json");
  EXPECT_EQ(http::make_target("containers/json"), "/containers/json");  // leading slash added
  EXPECT_EQ(http::make_target("/files/my file.txt"), "/files/my%20file.txt");
  EXPECT_EQ(http::make_target("/a?b#c"), "/a%3Fb%23c");  // never a query or fragment by accident
  EXPECT_EQ(http::make_target("/100%"), "/100%25");
  EXPECT_EQ(http::make_target("/\r\n"), "/%0D%0A");
  EXPECT_EQ(http::make_target("/caf\xc3\xa9"), "/caf%C3%A9");
}

TEST(HttpTarget, MakeTargetWithQueryParams) {
  EXPECT_EQ(http::make_target("/containers/json", {{"all", "true"}}), "/containers/json?all=true");
  EXPECT_EQ(http::make_target("/x", {{"a", "1"}, {"b", "two words"}}), "/x?a=1&b=two%20words");
  EXPECT_EQ(http::make_target("", {{"path", "/tmp/a b"}}), "/?path=%2Ftmp%2Fa%20b");
  EXPECT_EQ(http::make_target("files", {{"p", "&"}}), "/files?p=%26");
  EXPECT_EQ(http::make_target("/x", {}), "/x");
  const http::QueryParams params{{"filters", R"({"label":["a=b"]})"}};
  EXPECT_EQ(http::make_target("/v1.41/containers/json", params),
            "/v1.41/containers/json?filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
}

TEST(HttpTarget, MakeTargetIsAValidUrlTarget) {
  // Whatever the input, the target parses back as the path and query of a URL.
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string target = http::make_target("/" + all, {{all, all}});
  const auto url = http::Url::parse("http://h" + target);
  EXPECT_EQ(url.target(), target);
  EXPECT_EQ(http::percent_decode(url.path), "/" + all);
}

TEST(HttpUrlDetail, CaseHelpers) {
  EXPECT_EQ(http::detail::to_lower("AbC-XyZ_09"), "abc-xyz_09");
  EXPECT_TRUE(http::detail::iequals("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(http::detail::iequals("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(http::detail::iequals("a", "b"));
  EXPECT_TRUE(http::detail::iequals("", ""));
  // Only ASCII letters fold.
  EXPECT_FALSE(http::detail::iequals("\xc3\xa9", "\xc3\x89"));
}

}  // namespace
