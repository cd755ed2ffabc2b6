// RFC 6455 frames as a client writes them, and the handshake's accept key.
#pragma once

#include <workspace/core/detail/base64.hpp>
#include <workspace/core/detail/random.hpp>
#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

namespace detail {

// RFC 6455 §5.2 opcodes.
enum class WebSocketOpcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// base64(SHA-1(key + GUID)): the Sec-WebSocket-Accept a server must answer to `key`.
inline std::string websocket_accept(std::string_view key) {
  std::string input(key);
  input += websocket_guid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1)
    throw Error(errc::io_error, "websocket handshake: SHA-1 is not available");
  return workspace::detail::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), size));
}

// n random bytes: masks and keys must be unpredictable to the network path (RFC 6455 §10.3).
inline void websocket_random(unsigned char* out, std::size_t n) { workspace::detail::random_fill(out, n); }

// One client frame: masked with `mask`, FIN set when `fin`.
inline std::string websocket_client_frame(WebSocketOpcode opcode, std::string_view payload, bool fin,
                                          const std::array<unsigned char, 4>& mask) {
  std::string frame;
  frame.reserve(payload.size() + 14);
  frame += static_cast<char>((fin ? 0x80u : 0x00u) | static_cast<unsigned>(opcode));
  const std::uint64_t size = payload.size();
  if (size <= 125) {
    frame += static_cast<char>(0x80u | static_cast<unsigned>(size));
  } else if (size <= 0xFFFF) {
    frame += static_cast<char>(0x80u | 126u);
    frame += static_cast<char>((size >> 8) & 0xFF);
    frame += static_cast<char>(size & 0xFF);
  } else {
    frame += static_cast<char>(0x80u | 127u);
    for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>((size >> shift) & 0xFF);
  }
  for (const unsigned char m : mask) frame += static_cast<char>(m);
  const std::size_t at = frame.size();
  frame.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i)
    frame[at + i] = static_cast<char>(static_cast<unsigned char>(frame[at + i]) ^ mask[i & 3]);
  return frame;
}

inline std::string websocket_close_payload(std::uint16_t code, std::string_view reason = {}) {
  // 1005, 1006 and 1015 name the absence of a code; they never go on the wire (RFC 6455 §7.4.1).
  if (code == 1005 || code == 1006 || code == 1015) return {};
  std::string payload;
  payload += static_cast<char>((code >> 8) & 0xFF);
  payload += static_cast<char>(code & 0xFF);
  payload.append(reason.substr(0, 123));
  return payload;
}

}  // namespace detail

}  // namespace http
WORKSPACE_NAMESPACE_END
