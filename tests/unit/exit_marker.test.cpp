// The status frame a Docker command's wrapper writes to stderr: taken out of the stream wherever
// the reads split it, and nothing of the command's own stderr lost or held back at the end.
#include <workspace/docker/detail/exit_marker.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

using workspace::docker::detail::ExitMarker;

const std::string prefix = "\x01workspace: exit 0123abcd ";

// Feeds `stream` in pieces of `piece` bytes; returns what reached the caller.
std::string run(ExitMarker& m, std::string_view stream, std::size_t piece) {
  std::string out;
  const auto sink = [&](std::string_view d) { out.append(d); };
  for (std::size_t at = 0; at < stream.size(); at += piece) m.feed(stream.substr(at, piece), sink);
  m.finish(sink);
  return out;
}

TEST(ExitMarker, TakesTheFrameOutWhereverTheReadsSplitIt) {
  const std::string before = std::string("err\x01 with a \x01workspace: lookalike\0\xff", 36);
  const std::string after = "written by a background job\n";
  const std::string stream = before + prefix + "137\x01" + after;
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
    ExitMarker m(prefix);
    EXPECT_EQ(run(m, stream, piece), before + after) << piece;
    ASSERT_TRUE(m.status().has_value()) << piece;
    EXPECT_EQ(*m.status(), 137);
  }
}

TEST(ExitMarker, WithoutTheFrameEverythingPassesAndNoStatus) {
  // A killed wrapper: the stream ends with a part of the frame, which was the command's after all.
  for (const std::string& stream : {std::string("plain"), "x" + prefix.substr(0, 10), "y" + prefix + "12",
                                   "z" + prefix + "12345\x01", "w" + prefix + "\x01", prefix + "1a\x01"}) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{3}, stream.size()}) {
      ExitMarker m(prefix);
      EXPECT_EQ(run(m, stream, piece), stream) << piece;
      EXPECT_FALSE(m.status().has_value());
    }
  }
}

TEST(ExitMarker, OnlyTheFirstFrameCounts) {
  ExitMarker m(prefix);
  const std::string later = prefix + "9\x01";
  EXPECT_EQ(run(m, prefix + "0\x01" + later, 5), later);
  EXPECT_EQ(m.status(), 0);
}

}  // namespace
