// Base64 (RFC 4648, standard alphabet) both ways: the encoder for credentials and websocket
// keys, the streaming decoder for what the remote-shell runner prints.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <cstdint>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

inline std::string base64_encode(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto byte = [&](std::size_t i) -> std::uint32_t {
    return i < in.size() ? static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) : 0u;
  };
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < in.size() ? table[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? table[v & 63] : '=';
  }
  return out;
}

// Decodes base64 as it arrives, in pieces cut anywhere, skipping line breaks and spaces.
// Malformed input is Error(protocol_error).
class Base64Decoder {
 public:
  template <class Sink>
  void feed(std::string_view text, Sink&& sink) {
    char out[3 * 256];
    std::size_t n = 0;
    for (char c : text) {
      if (c == '\n' || c == '\r' || c == ' ') continue;
      if (c == '=') {
        ++padding_;
        continue;
      }
      const int v = value(c);
      if (v < 0 || padding_ > 0) throw Error(errc::protocol_error, "corrupt base64");
      bits_ = (bits_ << 6) | static_cast<std::uint32_t>(v);
      if (++count_ == 4) {
        out[n++] = static_cast<char>((bits_ >> 16) & 0xff);
        out[n++] = static_cast<char>((bits_ >> 8) & 0xff);
        out[n++] = static_cast<char>(bits_ & 0xff);
        count_ = 0;
        bits_ = 0;
        if (n == sizeof out) {
          sink(std::string_view(out, n));
          n = 0;
        }
      }
    }
    if (n) sink(std::string_view(out, n));
  }

  // The bytes held back by a final group that padding shortened.
  template <class Sink>
  void finish(Sink&& sink) {
    if (count_ + padding_ != 0 && count_ + padding_ != 4) throw Error(errc::protocol_error, "truncated base64");
    char out[2];
    if (count_ == 2) {
      out[0] = static_cast<char>((bits_ >> 4) & 0xff);
      sink(std::string_view(out, 1));
    } else if (count_ == 3) {
      out[0] = static_cast<char>((bits_ >> 10) & 0xff);
      out[1] = static_cast<char>((bits_ >> 2) & 0xff);
      sink(std::string_view(out, 2));
    }
    count_ = padding_ = 0;
    bits_ = 0;
  }

 private:
  static int value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  }

  std::uint32_t bits_ = 0;
  int count_ = 0;
  int padding_ = 0;
};

}  // namespace detail
WORKSPACE_NAMESPACE_END
