// A gigabyte each way through the client in constant memory: the peak resident set of the whole
// test process (client, and the in-process sink server) must stay under 64 MiB. Each test runs
// in its own process under CTest, so VmHWM measures that test alone. Not run under sanitizers
// (label "memory"): their shadow memory is not ours.
#include <workspace/http.hpp>

#include "../support/nginx.hpp"
#include "../support/scripted_server.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

using namespace workspace;

namespace {

constexpr std::uint64_t gib = 1ull << 30;
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

http::ClientOptions direct() {
  http::ClientOptions o;
  o.proxy = http::ProxySettings::none();
  return o;
}

// A deterministic, non-repeating-looking byte stream, generated as it is sent.
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

}  // namespace

TEST(HttpLargeTransfer, UploadsOneGibibyteInConstantMemory) {
  workspace_test::ScriptedServer server(workspace_test::sink());
  http::Client<http::Tcp> client(server.url(), direct());

  Pattern pattern;
  workspace_test::Checksum sent;
  std::uint64_t produced = 0;
  http::Request request{.method = "PUT", .target = "/big"};
  request.source_size = gib;
  request.source = [&](char* buffer, std::size_t capacity) -> std::size_t {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(capacity, gib - produced));
    pattern.fill(buffer, n);
    sent.update({buffer, n});
    produced += n;
    return n;
  };
  const auto reply = nlohmann::json::parse(client.request(std::move(request)).body);
  EXPECT_EQ(reply["bytes"].get<std::uint64_t>(), gib);
  EXPECT_EQ(reply["fnv1a"].get<std::string>(), sent.hex());
  EXPECT_TRUE(server.errors().empty());
  const auto peak = peak_rss_kib();
  RecordProperty("peak_rss_kib", std::to_string(peak));
  EXPECT_LT(peak, rss_limit_kib) << "peak RSS " << peak << " KiB";
}

TEST(HttpLargeTransfer, DownloadsOneGibibyteInConstantMemory) {
  workspace_test::Nginx nginx;
  workspace_test::make_sparse_file(nginx.files_dir() / "big.bin", gib);
  http::Client<http::Tcp> client(nginx.base_url(), direct());

  for (const char* target : {"/files/big.bin", "/chunked/big.bin"}) {
    std::uint64_t received = 0;
    bool all_zero = true;
    http::RequestOptions options;
    options.on_body = [&](std::string_view piece) {
      received += piece.size();
      for (char c : piece) all_zero &= c == 0;
      return true;
    };
    const auto r = client.get(target, {}, options);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(received, gib) << target;
    EXPECT_TRUE(all_zero) << target;
  }
  const auto peak = peak_rss_kib();
  RecordProperty("peak_rss_kib", std::to_string(peak));
  EXPECT_LT(peak, rss_limit_kib) << "peak RSS " << peak << " KiB";
}

TEST(HttpLargeTransfer, AnOversizedBodyIsRefusedRatherThanBuffered) {
  workspace_test::Nginx nginx;
  workspace_test::make_sparse_file(nginx.files_dir() / "big.bin", gib);
  auto options = direct();
  options.max_body_in_memory = 16 << 20;
  http::Client<http::Tcp> client(nginx.base_url(), options);
  try {
    client.get("/files/big.bin");
    FAIL() << "no error";
  } catch (const http::TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("max_body_in_memory"), std::string::npos) << e.what();
  }
  EXPECT_LT(peak_rss_kib(), rss_limit_kib);
}
