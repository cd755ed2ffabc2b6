// The kernel-backed randomness behind tokens, multipart boundaries, websocket masks and
// temporary names.
#include <workspace/core/detail/random.hpp>
#include <workspace/shell/killer.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace {

namespace detail = workspace::detail;

TEST(Random, FillsEveryByteAndNeverRepeats) {
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{17}, std::size_t{300}, std::size_t{1} << 20}) {
    // Two buffers of random bytes (over 256 of them crosses getrandom's one-call guarantee).
    std::vector<unsigned char> a(size, 0), b(size, 0);
    detail::random_fill(a.data(), a.size());
    detail::random_fill(b.data(), b.size());
    if (size >= 17) {
      EXPECT_NE(a, b) << size;
    }
  }
  // Every byte value turns up in 1 MiB, and no quarter of it is left at zero.
  std::vector<unsigned char> big(std::size_t{1} << 20, 0);
  detail::random_fill(big.data(), big.size());
  std::array<std::size_t, 256> seen{};
  for (const unsigned char c : big) ++seen[c];
  for (std::size_t v = 0; v < 256; ++v) EXPECT_GT(seen[v], 0u) << v;
  // 4096 expected per value; 3000 is more than 17 standard deviations below.
  EXPECT_LT(seen[0], 6000u);
  EXPECT_GT(seen[0], 3000u);
}

TEST(Random, SixtyFourBitValuesDiffer) {
  std::set<std::uint64_t> values;
  for (int i = 0; i < 1000; ++i) values.insert(detail::random_u64());
  EXPECT_EQ(values.size(), 1000u);
}

TEST(Random, TokensAre32HexDigitsAndUnique) {
  std::set<std::string> tokens;
  for (int i = 0; i < 1000; ++i) {
    const std::string token = workspace::shell::random_token();
    ASSERT_EQ(token.size(), 32u);
    EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
    tokens.insert(token);
  }
  EXPECT_EQ(tokens.size(), 1000u);
}

}  // namespace
