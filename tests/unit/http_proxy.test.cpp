// http::ProxySettings: NO_PROXY matching, choosing the proxy for an origin, the environment, and
// what a client's Origin makes of them (no network).
#define _GLIBCXX_ASSERTIONS 1  // out-of-range string_view/vector access aborts instead of reading junk

#include <workspace/http/options.hpp>
#include <workspace/http/transport.hpp>

#include "../support/error_from.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace workspace;

bool bypassed(const std::string& no_proxy, const std::string& url) {
  http::ProxySettings s;
  s.no_proxy = no_proxy;
  return s.bypassed(http::Url::parse(url));
}

using workspace_test::error_from;

// ---------------------------------------------------------------------------------------------
// NO_PROXY

TEST(HttpNoProxy, EmptyListBypassesNothing) {
  EXPECT_FALSE(bypassed("", "http://example.com/"));
  EXPECT_FALSE(bypassed(",", "http://example.com/"));
  EXPECT_FALSE(bypassed(" , ,\t,", "http://example.com/"));
}

TEST(HttpNoProxy, StarBypassesEverything) {
  for (const char* url : {"http://example.com/", "https://a.b.c:8443/", "http://127.0.0.1/", "http://[::1]:81/",
                          "http://localhost/"}) {
    EXPECT_TRUE(bypassed("*", url)) << url;
    EXPECT_TRUE(bypassed(" * ", url)) << url;
    EXPECT_TRUE(bypassed("other.org, *", url)) << url;
  }
}

TEST(HttpNoProxy, StarOnlyCountsAlone) {
  EXPECT_FALSE(bypassed("**", "http://example.com/"));
  EXPECT_FALSE(bypassed("*x", "http://example.com/"));
}

TEST(HttpNoProxy, ExactHostAndSubdomains) {
  EXPECT_TRUE(bypassed("example.com", "http://example.com/"));
  EXPECT_TRUE(bypassed("example.com", "https://example.com:8443/x"));
  EXPECT_TRUE(bypassed("example.com", "http://api.example.com/"));
  EXPECT_TRUE(bypassed("example.com", "http://a.b.example.com/"));
  EXPECT_FALSE(bypassed("example.com", "http://badexample.com/"));
  EXPECT_FALSE(bypassed("example.com", "http://example.com.evil.org/"));
  EXPECT_FALSE(bypassed("example.com", "http://example.org/"));
  EXPECT_FALSE(bypassed("example.com", "http://com/"));
  EXPECT_FALSE(bypassed("api.example.com", "http://example.com/"));
  EXPECT_FALSE(bypassed("api.example.com", "http://www.example.com/"));
  EXPECT_TRUE(bypassed("localhost", "http://localhost:3000/"));
  EXPECT_FALSE(bypassed("localhost", "http://localhost.example.com/"));
  EXPECT_FALSE(bypassed("localhost", "http://127.0.0.1/"));  // names are not resolved
}

TEST(HttpNoProxy, LeadingDotAndStarDotMatchTheDomainAndItsSubdomains) {
  for (const char* entry : {".example.com", "*.example.com"}) {
    EXPECT_TRUE(bypassed(entry, "http://api.example.com/")) << entry;
    EXPECT_TRUE(bypassed(entry, "http://x.y.example.com/")) << entry;
    EXPECT_TRUE(bypassed(entry, "http://example.com/")) << entry;
    EXPECT_FALSE(bypassed(entry, "http://badexample.com/")) << entry;
    EXPECT_FALSE(bypassed(entry, "http://example.com.evil/")) << entry;
  }
}

TEST(HttpNoProxy, CaseInsensitive) {
  EXPECT_TRUE(bypassed("EXAMPLE.COM", "http://example.com/"));
  EXPECT_TRUE(bypassed("example.com", "http://EXAMPLE.com/"));
  EXPECT_TRUE(bypassed(".Example.Com", "http://API.EXAMPLE.COM/"));
  EXPECT_TRUE(bypassed("*.EXAMPLE.com", "http://Api.Example.Com/"));
  EXPECT_TRUE(bypassed("LocalHost", "http://localhost/"));
  EXPECT_TRUE(bypassed("FE80::1", "http://[fe80::1]/"));
}

TEST(HttpNoProxy, SpacesAndTabsAroundCommas) {
  const std::string list = " first.org ,\tsecond.org\t, third.org,fourth.org , ";
  for (const char* url : {"http://first.org/", "http://second.org/", "http://third.org/", "http://fourth.org/"})
    EXPECT_TRUE(bypassed(list, url)) << url;
  EXPECT_FALSE(bypassed(list, "http://fifth.org/"));
}

TEST(HttpNoProxy, Ipv4Literals) {
  EXPECT_TRUE(bypassed("127.0.0.1", "http://127.0.0.1:8080/"));
  EXPECT_TRUE(bypassed("127.0.0.1", "https://127.0.0.1/"));
  EXPECT_FALSE(bypassed("127.0.0.1", "http://127.0.0.2/"));
  EXPECT_FALSE(bypassed("127.0.0.1", "http://localhost/"));
  EXPECT_FALSE(bypassed("127.0.0.1", "http://127.0.0.10/"));
  EXPECT_FALSE(bypassed("27.0.0.1", "http://127.0.0.1/"));  // an address is not a domain suffix
}

// Domain-suffix matching is for names: an IP address host is not "a subdomain of" "0.0.1" or "1".
TEST(HttpNoProxy, IpAddressesAreNotMatchedAsDomainSuffixes) {
  EXPECT_FALSE(bypassed("0.0.1", "http://127.0.0.1/"));
  EXPECT_FALSE(bypassed("1", "http://10.0.0.1/"));
  EXPECT_FALSE(bypassed(".1", "http://10.0.0.1/"));
}

TEST(HttpNoProxy, Ipv6Literals) {
  EXPECT_TRUE(bypassed("::1", "http://[::1]:8080/"));
  EXPECT_TRUE(bypassed("[::1]", "http://[::1]:8080/"));
  EXPECT_TRUE(bypassed("0:0:0:0:0:0:0:1", "http://[::1]/"));  // compared as addresses
  EXPECT_TRUE(bypassed("::1", "http://[0:0::1]/"));
  EXPECT_FALSE(bypassed("::1", "http://[::2]/"));
  EXPECT_FALSE(bypassed("::1", "http://127.0.0.1/"));
  EXPECT_FALSE(bypassed("::1", "http://localhost/"));
  EXPECT_TRUE(bypassed("2001:db8::1, other", "https://[2001:DB8::1]/"));
}

TEST(HttpNoProxy, Ipv4Cidr) {
  EXPECT_TRUE(bypassed("10.0.0.0/8", "http://10.1.2.3/"));
  EXPECT_TRUE(bypassed("10.0.0.0/8", "http://10.255.255.255/"));
  EXPECT_FALSE(bypassed("10.0.0.0/8", "http://11.0.0.1/"));
  EXPECT_FALSE(bypassed("10.0.0.0/8", "http://9.255.255.255/"));
  EXPECT_TRUE(bypassed("192.168.1.0/24", "http://192.168.1.255/"));
  EXPECT_FALSE(bypassed("192.168.1.0/24", "http://192.168.2.1/"));
  EXPECT_TRUE(bypassed("172.16.0.0/12", "http://172.31.255.255/"));
  EXPECT_FALSE(bypassed("172.16.0.0/12", "http://172.32.0.0/"));
  EXPECT_FALSE(bypassed("172.16.0.0/12", "http://172.15.255.255/"));
  EXPECT_TRUE(bypassed("192.168.1.128/25", "http://192.168.1.200/"));
  EXPECT_FALSE(bypassed("192.168.1.128/25", "http://192.168.1.100/"));
  EXPECT_TRUE(bypassed("127.0.0.1/32", "http://127.0.0.1/"));
  EXPECT_FALSE(bypassed("127.0.0.1/32", "http://127.0.0.2/"));
  EXPECT_TRUE(bypassed("127.0.0.0/8", "http://127.8.9.10:9999/"));
  EXPECT_TRUE(bypassed("0.0.0.0/0", "http://8.8.8.8/"));
  // Host bits in the network are ignored.
  EXPECT_TRUE(bypassed("10.9.9.9/8", "http://10.1.1.1/"));
  // Names are not resolved, and families do not mix.
  EXPECT_FALSE(bypassed("0.0.0.0/0", "http://example.com/"));
  EXPECT_FALSE(bypassed("0.0.0.0/0", "http://[::1]/"));
  EXPECT_FALSE(bypassed("127.0.0.0/8", "http://[::ffff:127.0.0.1]/"));
  // A prefix longer than the address matches nothing.
  EXPECT_FALSE(bypassed("10.0.0.0/33", "http://10.0.0.1/"));
  EXPECT_FALSE(bypassed("10.0.0.0/129", "http://10.0.0.1/"));
  EXPECT_FALSE(bypassed("10.0.0.0/99999999999", "http://10.0.0.1/"));
}

TEST(HttpNoProxy, Ipv6Cidr) {
  EXPECT_TRUE(bypassed("::1/128", "http://[::1]/"));
  EXPECT_FALSE(bypassed("::1/128", "http://[::2]/"));
  EXPECT_TRUE(bypassed("fe80::/10", "http://[fe80::1]/"));
  EXPECT_TRUE(bypassed("fe80::/10", "http://[febf:ffff::1]/"));
  EXPECT_FALSE(bypassed("fe80::/10", "http://[fec0::1]/"));
  EXPECT_TRUE(bypassed("2001:db8::/32", "http://[2001:db8:ffff::1]:8080/"));
  EXPECT_FALSE(bypassed("2001:db8::/32", "http://[2001:db9::1]/"));
  EXPECT_TRUE(bypassed("fd00::/8", "https://[fdff::1]/"));
  EXPECT_TRUE(bypassed("::/0", "http://[1234::5]/"));
  EXPECT_FALSE(bypassed("::/0", "http://127.0.0.1/"));
  EXPECT_FALSE(bypassed("::/0", "http://example.com/"));
  EXPECT_FALSE(bypassed("::1/129", "http://[::1]/"));
  EXPECT_TRUE(bypassed("2001:db8::/127", "http://[2001:db8::1]/"));
  EXPECT_FALSE(bypassed("2001:db8::/127", "http://[2001:db8::2]/"));
}

// A CIDR entry that cannot be parsed is ignored, like any other entry that matches no host.
TEST(HttpNoProxy, MalformedCidrMatchesNothing) {
  EXPECT_FALSE(bypassed("not-an-ip/8", "http://10.0.0.1/"));
  EXPECT_FALSE(bypassed("10.0.0.0/x", "http://10.0.0.1/"));
  EXPECT_FALSE(bypassed("10.0.0.0/-1", "http://10.0.0.1/"));
  EXPECT_FALSE(bypassed("10.0.0.0/8/8", "http://10.0.0.1/"));
}

// An empty prefix length is not /0: "10.0.0.0/" must not bypass the proxy for every IPv4 address.
TEST(HttpNoProxy, EmptyCidrPrefixLengthMatchesNothing) {
  EXPECT_FALSE(bypassed("10.0.0.0/", "http://99.0.0.1/"));
  EXPECT_FALSE(bypassed("::/", "http://[1234::5]/"));
}

TEST(HttpNoProxy, HostAndPortEntries) {
  EXPECT_TRUE(bypassed("example.com:8080", "http://example.com:8080/"));
  EXPECT_TRUE(bypassed("example.com:8080", "https://example.com:8080/"));
  EXPECT_FALSE(bypassed("example.com:8080", "http://example.com/"));
  EXPECT_FALSE(bypassed("example.com:8080", "http://example.com:8081/"));
  EXPECT_TRUE(bypassed("example.com:8080", "http://api.example.com:8080/"));
  EXPECT_TRUE(bypassed("example.com:80", "http://example.com/"));    // the default port counts
  EXPECT_TRUE(bypassed("example.com:443", "https://example.com/"));
  EXPECT_FALSE(bypassed("example.com:443", "http://example.com/"));
  EXPECT_TRUE(bypassed("127.0.0.1:8080", "http://127.0.0.1:8080/"));
  EXPECT_FALSE(bypassed("127.0.0.1:8080", "http://127.0.0.1:8081/"));
  EXPECT_TRUE(bypassed(".example.com:8080", "http://a.example.com:8080/"));
  EXPECT_FALSE(bypassed("example.com:x", "http://example.com/"));
  EXPECT_FALSE(bypassed("example.com:", "http://example.com/"));
}

// An IPv6 address with a port can only be written with brackets.
TEST(HttpNoProxy, BracketedIpv6WithPort) {
  EXPECT_TRUE(bypassed("[::1]:8080", "http://[::1]:8080/"));
  EXPECT_FALSE(bypassed("[::1]:8080", "http://[::1]:8081/"));
}

// "." names no domain: it matches nothing.
TEST(HttpNoProxy, DotAloneMatchesNothing) {
  EXPECT_FALSE(bypassed(".", "http://example.com/"));
  EXPECT_FALSE(bypassed(" . ", "http://127.0.0.1/"));
}

// "*." names no domain either, and must not read past the entry.
TEST(HttpNoProxy, StarDotAloneMatchesNothing) {
  EXPECT_FALSE(bypassed("*.", "http://example.com/"));
  EXPECT_FALSE(bypassed("a.org, *.", "http://example.com/"));
}

TEST(HttpNoProxy, TheFirstMatchingEntryWinsAndOrderDoesNotMatter) {
  EXPECT_TRUE(bypassed("a.org,b.org,10.0.0.0/8,::1", "http://10.2.3.4/"));
  EXPECT_TRUE(bypassed("::1,10.0.0.0/8,b.org,a.org", "http://b.org/"));
  EXPECT_FALSE(bypassed("a.org,b.org,10.0.0.0/8,::1", "http://c.org/"));
}

// ---------------------------------------------------------------------------------------------
// proxy_for

TEST(HttpProxyFor, NoProxyConfigured) {
  const http::ProxySettings none = http::ProxySettings::none();
  EXPECT_TRUE(none.http_proxy.empty());
  EXPECT_TRUE(none.https_proxy.empty());
  EXPECT_TRUE(none.no_proxy.empty());
  EXPECT_EQ(none.proxy_for(http::Url::parse("http://example.com/")), std::nullopt);
  EXPECT_EQ(none.proxy_for(http::Url::parse("https://example.com/")), std::nullopt);
}

TEST(HttpProxyFor, PicksTheProxyByTheOriginsScheme) {
  http::ProxySettings s{.http_proxy = "http://plain-proxy:3128", .https_proxy = "http://tls-proxy:3129"};
  const auto for_http = s.proxy_for(http::Url::parse("http://example.com/"));
  ASSERT_TRUE(for_http);
  EXPECT_EQ(for_http->host, "plain-proxy");
  EXPECT_EQ(for_http->port, 3128);
  const auto for_https = s.proxy_for(http::Url::parse("https://example.com/"));
  ASSERT_TRUE(for_https);
  EXPECT_EQ(for_https->host, "tls-proxy");
  EXPECT_EQ(for_https->port, 3129);
  EXPECT_EQ(for_https->scheme, "http");
}

TEST(HttpProxyFor, EachSchemeUsesOnlyItsOwnSetting) {
  const http::ProxySettings only_http{.http_proxy = "http://p:1"};
  EXPECT_TRUE(only_http.proxy_for(http::Url::parse("http://example.com/")));
  EXPECT_FALSE(only_http.proxy_for(http::Url::parse("https://example.com/")));
  const http::ProxySettings only_https{.https_proxy = "http://p:1"};
  EXPECT_FALSE(only_https.proxy_for(http::Url::parse("http://example.com/")));
  EXPECT_TRUE(only_https.proxy_for(http::Url::parse("https://example.com/")));
}

TEST(HttpProxyFor, AcceptsHostAndPortWithoutAScheme) {
  const http::ProxySettings s{.http_proxy = "proxy.internal:3128", .https_proxy = "Proxy.Internal"};
  const auto p = s.proxy_for(http::Url::parse("http://example.com/"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->scheme, "http");
  EXPECT_EQ(p->host, "proxy.internal");
  EXPECT_EQ(p->port, 3128);
  const auto no_port = s.proxy_for(http::Url::parse("https://example.com/"));
  ASSERT_TRUE(no_port);
  EXPECT_EQ(no_port->host, "proxy.internal");
  EXPECT_EQ(no_port->port, 80);
  const http::ProxySettings ipv6{.http_proxy = "[::1]:3128"};
  const auto v6 = ipv6.proxy_for(http::Url::parse("http://example.com/"));
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 3128);
}

TEST(HttpProxyFor, KeepsUserinfoForProxyAuthorization) {
  const http::ProxySettings s{.http_proxy = "http://user:p%40ss@proxy:3128/"};
  const auto p = s.proxy_for(http::Url::parse("http://example.com/"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->userinfo, "user:p%40ss");
  EXPECT_EQ(p->str(), "http://proxy:3128/");
  const http::ProxySettings bare{.http_proxy = "user:pw@proxy:3128"};
  const auto q = bare.proxy_for(http::Url::parse("http://example.com/"));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->userinfo, "user:pw");
  EXPECT_EQ(q->host, "proxy");
}

TEST(HttpProxyFor, SchemeIsCaseInsensitive) {
  const http::ProxySettings s{.http_proxy = "HTTP://proxy:3128"};
  const auto p = s.proxy_for(http::Url::parse("http://example.com/"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->scheme, "http");
}

TEST(HttpProxyFor, RejectsTlsAndSocksProxies) {
  for (const char* proxy : {"https://proxy:3128", "socks5://proxy:1080", "socks5h://proxy:1080", "socks4://proxy:1080",
                            "socks4a://proxy:1080", "ftp://proxy:21"}) {
    const http::ProxySettings s{.http_proxy = proxy, .https_proxy = proxy};
    for (const char* origin : {"http://example.com/", "https://example.com/"}) {
      const Error e = error_from([&] { (void)s.proxy_for(http::Url::parse(origin)); });
      EXPECT_EQ(e.code(), errc::unsupported) << proxy << " for " << origin;
    }
  }
}

TEST(HttpProxyFor, UnsupportedProxyMessageHoldsNoCredentials) {
  const http::ProxySettings s{.http_proxy = "socks5://alice:hunter2@proxy:1080"};
  const Error e = error_from([&] { (void)s.proxy_for(http::Url::parse("http://example.com/")); });
  EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
}

TEST(HttpProxyFor, InvalidProxyUrlIsAnInvalidArgument) {
  for (const char* proxy : {"http://", "http://:3128", "proxy:99999", "http://proxy:0"}) {
    const http::ProxySettings s{.http_proxy = proxy};
    const Error e = error_from([&] { (void)s.proxy_for(http::Url::parse("http://example.com/")); });
    EXPECT_EQ(e.code(), errc::invalid_argument) << proxy;
  }
}

TEST(HttpProxyFor, BypassedOriginsGetNoProxy) {
  const http::ProxySettings s{.http_proxy = "http://proxy:3128",
                              .https_proxy = "http://proxy:3128",
                              .no_proxy = "localhost,127.0.0.0/8,::1,.internal"};
  EXPECT_FALSE(s.proxy_for(http::Url::parse("http://localhost:8080/")));
  EXPECT_FALSE(s.proxy_for(http::Url::parse("https://127.0.0.1/")));
  EXPECT_FALSE(s.proxy_for(http::Url::parse("http://[::1]/")));
  EXPECT_FALSE(s.proxy_for(http::Url::parse("https://svc.internal/")));
  EXPECT_TRUE(s.proxy_for(http::Url::parse("http://example.com/")));
  EXPECT_TRUE(s.proxy_for(http::Url::parse("https://example.com/")));
  // A bypassed origin never looks at the proxy, so a bad one does not matter there.
  const http::ProxySettings bad{.http_proxy = "socks5://p:1", .no_proxy = "*"};
  EXPECT_NO_THROW(EXPECT_FALSE(bad.proxy_for(http::Url::parse("http://example.com/"))));
}

// ---------------------------------------------------------------------------------------------
// from_environment

// Sets the proxy variables for one test and restores what was there before.
class ProxyEnvironment : public ::testing::Test {
 protected:
  static constexpr const char* names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                          "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};

  void SetUp() override {
    for (const char* name : names) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }
  static void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(ProxyEnvironment, NothingSet) {
  const auto s = http::ProxySettings::from_environment();
  EXPECT_EQ(s.http_proxy, "");
  EXPECT_EQ(s.https_proxy, "");
  EXPECT_EQ(s.no_proxy, "");
}

TEST_F(ProxyEnvironment, LowerCaseIsReadFirst) {
  set("http_proxy", "http://lower:1");
  set("HTTP_PROXY", "http://upper:1");
  set("https_proxy", "http://lower:2");
  set("HTTPS_PROXY", "http://upper:2");
  set("no_proxy", "lower.org");
  set("NO_PROXY", "upper.org");
  const auto s = http::ProxySettings::from_environment();
  EXPECT_EQ(s.http_proxy, "http://lower:1");
  EXPECT_EQ(s.https_proxy, "http://lower:2");
  EXPECT_EQ(s.no_proxy, "lower.org");
}

TEST_F(ProxyEnvironment, UpperCaseIsTheFallback) {
  set("HTTP_PROXY", "http://upper:1");
  set("HTTPS_PROXY", "http://upper:2");
  set("NO_PROXY", "upper.org");
  const auto s = http::ProxySettings::from_environment();
  EXPECT_EQ(s.http_proxy, "http://upper:1");
  EXPECT_EQ(s.https_proxy, "http://upper:2");
  EXPECT_EQ(s.no_proxy, "upper.org");
}

TEST_F(ProxyEnvironment, AnEmptyLowerCaseValueFallsBackToUpperCase) {
  set("http_proxy", "");
  set("HTTP_PROXY", "http://upper:1");
  set("no_proxy", "");
  set("NO_PROXY", "*");
  const auto s = http::ProxySettings::from_environment();
  EXPECT_EQ(s.http_proxy, "http://upper:1");
  EXPECT_EQ(s.no_proxy, "*");
}

TEST_F(ProxyEnvironment, AllProxyFillsWhatIsMissing) {
  set("ALL_PROXY", "http://all:9");
  auto s = http::ProxySettings::from_environment();
  EXPECT_EQ(s.http_proxy, "http://all:9");
  EXPECT_EQ(s.https_proxy, "http://all:9");
  set("all_proxy", "http://all-lower:9");
  set("HTTPS_PROXY", "http://tls:2");
  s = http::ProxySettings::from_environment();
  EXPECT_EQ(s.http_proxy, "http://all-lower:9");
  EXPECT_EQ(s.https_proxy, "http://tls:2");
}

TEST_F(ProxyEnvironment, ClientOriginReadsTheEnvironmentUnlessTold) {
  set("http_proxy", "http://env-proxy:3128");
  const auto from_env = http::Tcp::make_origin("http://example.com/", {});
  ASSERT_TRUE(from_env.proxy);
  EXPECT_EQ(from_env.proxy->host, "env-proxy");
  http::ClientOptions none;
  none.proxy = http::ProxySettings::none();
  EXPECT_FALSE(http::Tcp::make_origin("http://example.com/", none).proxy);
  set("no_proxy", "example.com");
  EXPECT_FALSE(http::Tcp::make_origin("http://example.com/", {}).proxy);
}

// ---------------------------------------------------------------------------------------------
// What a client's Origin makes of a URL and its proxy

http::ClientOptions with_proxy(std::string http_proxy, std::string no_proxy = {}) {
  http::ClientOptions options;
  options.proxy = http::ProxySettings{.http_proxy = std::move(http_proxy), .no_proxy = std::move(no_proxy)};
  return options;
}

TEST(HttpOrigin, DirectOrigin) {
  http::ClientOptions options;
  options.proxy = http::ProxySettings::none();
  const auto o = http::Tcp::make_origin("http://user:pw@Example.com:8080/api/v1//?ignored=1", options);
  EXPECT_EQ(o.url.host, "example.com");
  EXPECT_EQ(o.url.port, 8080);
  EXPECT_EQ(o.host_header, "example.com:8080");
  EXPECT_EQ(o.description, "http://example.com:8080");
  EXPECT_EQ(o.base_path, "/api/v1");  // trailing slashes trimmed
  EXPECT_FALSE(o.proxy);
  EXPECT_FALSE(o.absolute_form);
  EXPECT_EQ(o.proxy_authorization, "");
  EXPECT_EQ(o.description.find("pw"), std::string::npos);
  const auto root = http::Tcp::make_origin("http://[::1]/", options);
  EXPECT_EQ(root.base_path, "");
  EXPECT_EQ(root.host_header, "[::1]");
  EXPECT_EQ(root.description, "http://[::1]");
}

TEST(HttpOrigin, PlainHttpThroughAProxyUsesAbsoluteFormAndBasicAuth) {
  const auto o = http::Tcp::make_origin("http://example.com/", with_proxy("http://alice:p%40ss%3Aw@proxy:3128"));
  ASSERT_TRUE(o.proxy);
  EXPECT_EQ(o.proxy->host, "proxy");
  EXPECT_EQ(o.proxy->port, 3128);
  EXPECT_TRUE(o.absolute_form);
  // user information is percent-decoded before it is encoded: "alice:p@ss:w"
  EXPECT_EQ(o.proxy_authorization, "Basic " + workspace::detail::base64_encode("alice:p@ss:w"));
  EXPECT_EQ(o.proxy_authorization, "Basic YWxpY2U6cEBzczp3");
  const auto no_user = http::Tcp::make_origin("http://example.com/", with_proxy("proxy:3128"));
  EXPECT_TRUE(no_user.absolute_form);
  EXPECT_EQ(no_user.proxy_authorization, "");
}

TEST(HttpOrigin, BypassedOriginGoesDirect) {
  const auto o = http::Tcp::make_origin("http://127.0.0.1:9/", with_proxy("http://proxy:3128", "127.0.0.0/8"));
  EXPECT_FALSE(o.proxy);
  EXPECT_FALSE(o.absolute_form);
}

TEST(HttpOrigin, BadProxyFailsWhenTheClientIsMade) {
  EXPECT_EQ(error_from([] { (void)http::Tcp::make_origin("http://example.com/", with_proxy("socks5://p:1")); }).code(),
            errc::unsupported);
  EXPECT_NO_THROW((void)http::Tcp::make_origin("http://example.com/", with_proxy("http://p:1")));
}

TEST(HttpOrigin, TransportsCheckTheScheme) {
  http::ClientOptions options;
  options.proxy = http::ProxySettings::none();
  EXPECT_EQ(error_from([&] { (void)http::Tcp::make_origin("https://example.com/", options); }).code(),
            errc::invalid_argument);
  EXPECT_EQ(error_from([&] { (void)http::Tcp::make_origin("ftp://example.com/", options); }).code(),
            errc::invalid_argument);
  EXPECT_EQ(error_from([&] { (void)http::Tcp::make_origin("example.com", options); }).code(), errc::invalid_argument);
}

TEST(HttpOrigin, UnixSocketOrigin) {
  const auto o = http::UnixSocket::make_origin("unix:///var/run/docker.sock", {});
  EXPECT_EQ(o.unix_path, "/var/run/docker.sock");
  EXPECT_EQ(o.host_header, "localhost");
  EXPECT_EQ(o.description, "unix:/var/run/docker.sock");
  EXPECT_EQ(http::UnixSocket::make_origin("/tmp/x.sock", {}).unix_path, "/tmp/x.sock");
  EXPECT_EQ(error_from([] { (void)http::UnixSocket::make_origin("", {}); }).code(), errc::invalid_argument);
  EXPECT_EQ(error_from([] { (void)http::UnixSocket::make_origin("unix://", {}); }).code(), errc::invalid_argument);
  EXPECT_EQ(error_from([] { (void)http::UnixSocket::make_origin("/" + std::string(200, 'x'), {}); }).code(),
            errc::invalid_argument);
}

}  // namespace
