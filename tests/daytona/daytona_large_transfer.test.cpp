// A 256 MiB file up to a Daytona sandbox and back (tests/servers/daytona, see
// daytona_workspace.test.cpp), in constant memory: the peak resident set of the test process
// must stay under 64 MiB. Each test runs in its own process under CTest, so VmHWM measures that
// test alone. Not run under sanitizers (label "memory"): their shadow memory is not ours.
#include <workspace/daytona.hpp>

#include "../support/daytona_server.hpp"
#include "../support/process.hpp"
#include "../support/scripted_server.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace workspace;
namespace ts = workspace_test;

namespace {

constexpr std::uint64_t file_size = 256ull << 20;
constexpr std::uint64_t rss_limit_kib = 64 * 1024;

// Peak resident set size of this process, in KiB.
std::uint64_t peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  ADD_FAILURE() << "no VmHWM in /proc/self/status";
  return 0;
}

// A deterministic, non-repeating-looking byte stream.
struct Pattern {
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  void fill(char* out, std::size_t n) {
    for (std::size_t i = 0; i < n; i += sizeof state) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      std::memcpy(out + i, &state, std::min(sizeof state, n - i));
    }
  }
};

// Writes `size` bytes of the pattern to `path`, 1 MiB at a time; returns their checksum.
ts::Checksum write_pattern_file(const std::string& path, std::uint64_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<char> buffer(1 << 20);
  Pattern pattern;
  ts::Checksum sum;
  for (std::uint64_t done = 0; done < size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - done));
    pattern.fill(buffer.data(), n);
    out.write(buffer.data(), static_cast<std::streamsize>(n));
    sum.update({buffer.data(), n});
    done += n;
  }
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
  return sum;
}

// The checksum and size of a local file, read 1 MiB at a time.
std::pair<ts::Checksum, std::uint64_t> checksum_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(1 << 20);
  ts::Checksum sum;
  std::uint64_t size = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    sum.update({buffer.data(), n});
    size += n;
  }
  return {sum, size};
}

// `sha256sum` of a local file (coreutils), for comparison with the sandbox's busybox.
std::string local_sha256(const std::string& path) {
  const std::string command = "sha256sum '" + path + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run sha256sum");
  char out[128] = {};
  const std::size_t n = std::fread(out, 1, sizeof out - 1, pipe);
  ::pclose(pipe);
  return std::string(out, n).substr(0, 64);
}

}  // namespace

TEST(DaytonaLargeTransfer, A256MiBFileGoesUpAndDownInConstantMemory) {
  try {
    ts::daytona_server();
  } catch (const std::exception& e) {
    GTEST_FAIL() << e.what();
  }
  ts::TempDir local;
  const std::string source = (local.path() / "big.bin").string();
  const std::string back = (local.path() / "big.back.bin").string();
  const auto sent = write_pattern_file(source, file_size);
  const std::string sha = local_sha256(source);
  ASSERT_EQ(sha.size(), 64u);

  DaytonaWorkspace ws(ts::daytona_options());

  std::uint64_t last_progress = 0;
  TransferOptions progress;
  progress.on_progress = [&](std::uint64_t done, std::optional<std::uint64_t>) {
    last_progress = done;
    return true;
  };
  const auto up = ws.file_upload(source, "big/big.bin", progress);
  ASSERT_TRUE(up.success) << up.error.value_or("");
  EXPECT_EQ(up.file_size, file_size);
  EXPECT_EQ(last_progress, file_size);

  auto remote = ws.execute_command("wc -c < big/big.bin; sha256sum big/big.bin");
  ASSERT_EQ(remote.exit_code, 0) << remote.std_err;
  EXPECT_EQ(remote.std_out, std::to_string(file_size) + "\n" + sha + "  big/big.bin\n")
      << "the sandbox holds other bytes than were sent";

  const auto down = ws.file_download("big/big.bin", back);
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(down.file_size, file_size);
  const auto [received, size] = checksum_of_file(back);
  EXPECT_EQ(size, file_size);
  EXPECT_EQ(received.hex(), sent.hex()) << "the downloaded bytes differ from the uploaded ones";

  const auto peak = peak_rss_kib();
  RecordProperty("peak_rss_kib", std::to_string(peak));
  EXPECT_LT(peak, rss_limit_kib) << "peak RSS " << peak << " KiB";
}
