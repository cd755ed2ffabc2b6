// URLs as the client needs them: parse "scheme://[user@]host[:port]/path?query", build request
// targets, and percent-encode path segments and query components (RFC 3986).
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {
inline bool is_unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

inline char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// Without the optional white space (spaces, tabs) around it.
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}
}  // namespace detail

// Percent-encodes everything but RFC 3986's unreserved characters; with keep_slashes, '/' passes
// through so a whole path ("/home/user/my file.txt") can be encoded at once.
inline std::string percent_encode(std::string_view text, bool keep_slashes = false) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (detail::is_unreserved(c) || (keep_slashes && c == '/')) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 0x0F];
    }
  }
  return out;
}

// Decodes %XX escapes; a malformed escape is an invalid_argument Error.
inline std::string percent_decode(std::string_view text) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size())
      throw Error(errc::invalid_argument, "malformed percent-escape in URL");
    const int hi = nibble(text[i + 1]);
    const int lo = nibble(text[i + 2]);
    if (hi < 0 || lo < 0) throw Error(errc::invalid_argument, "malformed percent-escape in URL");
    out += static_cast<char>((hi << 4) | lo);
    i += 2;
  }
  return out;
}

// Query parameters in the order given; values are encoded when the target is built.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

inline std::string encode_query(const QueryParams& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += percent_encode(name);
    out += '=';
    out += percent_encode(value);
  }
  return out;
}

// "path?query" from a raw (unencoded) path and parameters.
inline std::string make_target(std::string_view path, const QueryParams& params = {}) {
  std::string target = percent_encode(path.empty() ? std::string_view("/") : path, true);
  if (target.front() != '/') target.insert(target.begin(), '/');
  if (!params.empty()) target += '?' + encode_query(params);
  return target;
}

struct Url {
  std::string scheme;    // lower case: "http", "https", "unix"
  std::string userinfo;  // as written (still percent-encoded); never printed
  std::string host;      // without IPv6 brackets
  std::uint16_t port = 0;
  std::string path;      // as written (already encoded); "/" when empty
  std::string query;     // without '?', as written

  static Url parse(std::string_view text) {
    Url url;
    const auto bad = [&](const char* why) {
      // The text may hold credentials, so only the reason goes into the message.
      return Error(errc::invalid_argument, std::string("invalid URL: ") + why);
    };
    const auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) throw bad("no scheme");
    url.scheme = detail::to_lower(text.substr(0, scheme_end));
    for (char c : url.scheme)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
        throw bad("bad scheme");
    text.remove_prefix(scheme_end + 3);

    const auto authority_end = text.find_first_of("/?#");
    std::string_view authority = text.substr(0, authority_end);
    text = authority_end == std::string_view::npos ? std::string_view{} : text.substr(authority_end);

    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      url.userinfo = std::string(authority.substr(0, at));
      authority.remove_prefix(at + 1);
    }
    std::string_view port_text;
    const bool bracketed = !authority.empty() && authority.front() == '[';
    if (bracketed) {
      const auto close = authority.find(']');
      if (close == std::string_view::npos) throw bad("unterminated IPv6 address");
      url.host = std::string(authority.substr(1, close - 1));
      authority.remove_prefix(close + 1);
      if (!authority.empty()) {
        if (authority.front() != ':') throw bad("junk after IPv6 address");
        port_text = authority.substr(1);
      }
    } else {
      const auto colon = authority.rfind(':');
      url.host = std::string(authority.substr(0, colon));
      if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (url.host.empty() && url.scheme != "unix") throw bad("no host");
    url.host = detail::to_lower(url.host);
    // The host goes into the Host header and into name resolution: only name characters, or an
    // IPv6 address inside brackets.
    for (char c : url.host) {
      const bool name_char = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
      const bool v6_char = (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' || c == '.';
      if (bracketed ? !v6_char : !name_char) throw bad("bad character in host");
    }
    if (bracketed && url.host.find(':') == std::string::npos) throw bad("bad IPv6 address");
    if (!port_text.empty()) {
      unsigned long value = 0;
      for (char c : port_text) {
        if (c < '0' || c > '9') throw bad("bad port");
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) throw bad("port out of range");
      }
      if (value == 0) throw bad("port 0");
      url.port = static_cast<std::uint16_t>(value);
    } else {
      url.port = default_port(url.scheme);
    }

    if (const auto hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
    const auto question = text.find('?');
    url.path = std::string(text.substr(0, question));
    if (url.path.empty()) url.path = "/";
    if (question != std::string_view::npos) url.query = std::string(text.substr(question + 1));
    for (char c : url.path)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) throw bad("control or space in path");
    for (char c : url.query)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) throw bad("control or space in query");
    return url;
  }

  static std::uint16_t default_port(std::string_view scheme) noexcept {
    if (scheme == "http" || scheme == "ws") return 80;
    if (scheme == "https" || scheme == "wss") return 443;
    return 0;
  }

  bool is_tls() const noexcept { return scheme == "https" || scheme == "wss"; }

  // "host[:port]" as the Host header wants it: brackets for IPv6, default ports omitted.
  std::string authority() const {
    std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != default_port(scheme)) out += ':' + std::to_string(port);
    return out;
  }

  // The origin-form request target: path and query.
  std::string target() const { return query.empty() ? path : path + '?' + query; }

  // scheme://authority/path?query, without user information (safe to print).
  std::string str() const { return scheme + "://" + authority() + target(); }
};

}  // namespace http
WORKSPACE_NAMESPACE_END
