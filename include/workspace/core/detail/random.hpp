// Random bits straight from the kernel (getrandom(2)). Tokens, boundaries, websocket masks and
// temporary names need unpredictable bits, never a reproducible sequence, and <random> costs
// every translation unit that includes the library more to parse than all of them together.
#pragma once

#include <workspace/version.hpp>

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>

WORKSPACE_NAMESPACE_BEGIN
namespace detail {

inline void random_fill(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    const ssize_t got = ::getrandom(p, size, 0);
    if (got < 0) {
      if (errno == EINTR) continue;  // a signal during a read of over 256 bytes
      throw std::system_error(errno, std::system_category(), "getrandom");
    }
    p += got;
    size -= static_cast<std::size_t>(got);
  }
}

inline std::uint64_t random_u64() {
  std::uint64_t value = 0;
  random_fill(&value, sizeof value);
  return value;
}

}  // namespace detail
WORKSPACE_NAMESPACE_END
