// Streamed bodies: file_source, set_file_body, Multipart, and the base64 used for proxy
// credentials (no network).
#define _GLIBCXX_ASSERTIONS 1  // out-of-range string_view/vector access aborts instead of reading junk

#include <workspace/http/body.hpp>
#include <workspace/http/transport.hpp>

#include "../support/error_from.hpp"

#include <workspace/core/detail/base64.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace workspace;
using namespace std::chrono_literals;
using namespace std::string_literals;

// Reads a BodySource to its end, `capacity` bytes at a time.
std::string drain(http::BodySource& source, std::size_t capacity) {
  std::string out;
  std::vector<char> buffer(capacity);
  for (int guard = 0; guard < 10'000'000; ++guard) {
    const std::size_t n = source(buffer.data(), capacity);
    EXPECT_LE(n, capacity);
    if (n == 0) return out;
    out.append(buffer.data(), n);
  }
  ADD_FAILURE() << "the source never ended";
  return out;
}

// A streamed source over `data` that hands out at most `step` bytes per call.
http::BodySource string_source(std::string data, std::size_t step = SIZE_MAX) {
  auto state = std::make_shared<std::pair<std::string, std::size_t>>(std::move(data), 0);
  return [state, step](char* buffer, std::size_t capacity) {
    auto& [bytes, at] = *state;
    const std::size_t n = std::min({capacity, step, bytes.size() - at});
    bytes.copy(buffer, n, at);
    at += n;
    return n;
  };
}

using workspace_test::error_from;

// A temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "workspace-http-body-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string write(const std::string& name, std::string_view content) const {
    const std::string file = path_ + "/" + name;
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    std::size_t at = 0;
    while (at < content.size()) {
      const ssize_t n = ::write(fd, content.data() + at, content.size() - at);
      if (n <= 0) break;
      at += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return file;
  }

 private:
  std::string path_;
};

std::size_t open_descriptors() {
  std::size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir)) ++n;
    ::closedir(dir);
  }
  return n;
}

// The descriptor this process has open on `path`, if any.
std::optional<int> descriptor_for(const std::string& path) {
  for (int fd = 0; fd < 1024; ++fd) {
    char target[4096];
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
    if (n > 0 && std::string(target, static_cast<std::size_t>(n)) == path) return fd;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// file_source

TEST(HttpFileSource, ReadsAFileAndKnowsItsSize) {
  TempDir dir;
  std::string content;
  for (int i = 0; i < 100'000; ++i) content += static_cast<char>(i * 7 % 256);
  const std::string path = dir.write("data.bin", content);
  for (std::size_t capacity : {std::size_t{1} << 16, std::size_t{4096}, std::size_t{7}}) {
    auto file = http::file_source(path);
    EXPECT_EQ(file.size, content.size());
    if (capacity == 7) {
      // Only the first few kilobytes a byte-ish at a time: the whole file would be slow.
      std::vector<char> buffer(7);
      const std::size_t n = file.source(buffer.data(), 7);
      EXPECT_EQ(n, 7u);
      EXPECT_EQ(std::string(buffer.data(), n), content.substr(0, 7));
      continue;
    }
    EXPECT_EQ(drain(file.source, capacity), content);
    // At its end it stays at its end.
    char c;
    EXPECT_EQ(file.source(&c, 1), 0u);
  }
}

TEST(HttpFileSource, EmptyFile) {
  TempDir dir;
  auto file = http::file_source(dir.write("empty", ""));
  EXPECT_EQ(file.size, 0u);
  char buffer[16];
  EXPECT_EQ(file.source(buffer, sizeof buffer), 0u);
}

TEST(HttpFileSource, MissingFileIsNotFound) {
  const Error e = error_from([] { (void)http::file_source("/nonexistent/workspace-test/file.txt"); });
  EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  EXPECT_NE(std::string(e.what()).find("/nonexistent/workspace-test/file.txt"), std::string::npos) << e.what();
}

TEST(HttpFileSource, UnreadableFileIsPermissionDenied) {
  TempDir dir;
  const std::string path = dir.write("secret", "x");
  ::chmod(path.c_str(), 0);
  const auto check = [&]() -> int {
    try {
      (void)http::file_source(path);
      return 1;
    } catch (const Error& e) {
      return e.code() == std::errc::permission_denied ? 0 : 2;
    }
  };
  if (::geteuid() != 0) {
    EXPECT_EQ(check(), 0);
    return;
  }
  // Root reads any file: check as an unprivileged user, in a child process.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
    ::_exit(check());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: opened, 2: another error, 3: could not drop privileges";
}

TEST(HttpFileSource, DirectoriesAndDevicesAreRejected) {
  TempDir dir;
  for (const std::string& path : {dir.path(), std::string("/dev/null"), std::string("/proc/self")}) {
    const Error e = error_from([&] { (void)http::file_source(path); });
    EXPECT_EQ(e.code(), errc::invalid_argument) << path;
    EXPECT_NE(std::string(e.what()).find("regular file"), std::string::npos) << e.what();
  }
}

// open(O_RDONLY) on a FIFO blocks until a writer appears, so a FIFO must be refused without
// waiting for one.
TEST(HttpFileSource, FifoIsRejectedWithoutBlocking) {
  TempDir dir;
  const std::string path = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  std::promise<std::optional<Error>> result;
  auto future = result.get_future();
  std::thread reader([&] {
    try {
      (void)http::file_source(path);
      result.set_value(std::nullopt);
    } catch (const Error& e) {
      result.set_value(e);
    }
  });
  const bool in_time = future.wait_for(500ms) == std::future_status::ready;
  if (!in_time) {
    // Release the blocked open() with a writer so the test can finish.
    for (int i = 0; i < 100; ++i) {
      const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) {
        ::close(fd);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  reader.join();
  EXPECT_TRUE(in_time) << "file_source blocked in open() on a FIFO with no writer";
  const auto error = future.get();
  ASSERT_TRUE(error.has_value()) << "a FIFO was accepted";
  EXPECT_EQ(error->code(), errc::invalid_argument);
}

TEST(HttpFileSource, DescriptorIsCloseOnExecAndClosedWithTheLastCopy) {
  TempDir dir;
  const std::string path = dir.write("f", "hello");
  const std::size_t before = open_descriptors();
  {
    auto file = http::file_source(path);
    const auto fd = descriptor_for(path);
    ASSERT_TRUE(fd);
    EXPECT_TRUE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(open_descriptors(), before + 1);
    // Copies share the descriptor (and its offset).
    http::BodySource copy = file.source;
    char c[3];
    EXPECT_EQ(file.source(c, 2), 2u);
    EXPECT_EQ(copy(c, 3), 3u);
    EXPECT_EQ(std::string(c, 3), "llo");
    EXPECT_EQ(open_descriptors(), before + 1);
  }
  EXPECT_EQ(open_descriptors(), before);
}

TEST(HttpFileSource, RejectingAFileLeaksNoDescriptor) {
  TempDir dir;
  const std::size_t before = open_descriptors();
  for (int i = 0; i < 5; ++i) EXPECT_THROW((void)http::file_source(dir.path()), Error);
  EXPECT_EQ(open_descriptors(), before);
}

TEST(HttpFileSource, SetFileBody) {
  TempDir dir;
  const std::string path = dir.write("body.json", R"({"a":1})");
  http::Request request{.method = "PUT"};
  http::set_file_body(request, path);
  ASSERT_TRUE(request.source);
  EXPECT_EQ(request.source_size, 7u);
  EXPECT_TRUE(request.has_body());
  EXPECT_EQ(drain(request.source, 4096), R"({"a":1})");
  http::Request bad;
  EXPECT_THROW(http::set_file_body(bad, dir.path() + "/missing"), Error);
  EXPECT_FALSE(bad.source);
  EXPECT_FALSE(bad.source_size);
}

// ---------------------------------------------------------------------------------------------
// Multipart

struct Part {
  std::vector<std::string> headers;
  std::string content;
};

// Splits a multipart body at its boundary lines, checking the framing on the way.
std::vector<Part> parse_multipart(const std::string& body, const std::string& boundary) {
  const std::string first = "--" + boundary + "\r\n";
  const std::string between = "\r\n--" + boundary + "\r\n";
  const std::string closing_after_part = "\r\n--" + boundary + "--\r\n";
  const std::string closing_alone = "--" + boundary + "--\r\n";
  std::vector<Part> parts;
  if (body == closing_alone) return parts;
  EXPECT_EQ(body.substr(0, first.size()), first);
  EXPECT_GE(body.size(), first.size() + closing_after_part.size());
  if (body.size() < first.size() + closing_after_part.size()) return parts;
  EXPECT_EQ(body.substr(body.size() - closing_after_part.size()), closing_after_part);
  const std::string inner =
      body.substr(first.size(), body.size() - first.size() - closing_after_part.size());
  std::size_t at = 0;
  for (;;) {
    const std::size_t end = inner.find(between, at);
    const std::string raw = inner.substr(at, end == std::string::npos ? std::string::npos : end - at);
    const std::size_t blank = raw.find("\r\n\r\n");
    EXPECT_NE(blank, std::string::npos) << raw;
    if (blank == std::string::npos) return parts;
    Part part;
    std::size_t line = 0;
    while (line < blank) {
      const std::size_t eol = raw.find("\r\n", line);
      part.headers.push_back(raw.substr(line, eol - line));
      line = eol + 2;
    }
    part.content = raw.substr(blank + 4);
    parts.push_back(std::move(part));
    if (end == std::string::npos) break;
    at = end + between.size();
  }
  return parts;
}

std::string read_all(http::Multipart multipart, std::size_t capacity, std::uint64_t* size = nullptr,
                     std::string* boundary = nullptr) {
  if (size) *size = multipart.size();
  if (boundary) *boundary = multipart.boundary();
  http::Request request;
  std::move(multipart).attach_to(request);
  return drain(request.source, capacity);
}

TEST(HttpMultipart, BoundaryAndContentType) {
  const http::Multipart a;
  const http::Multipart b;
  const std::string prefix = "----workspace-";
  ASSERT_EQ(a.boundary().size(), prefix.size() + 24);
  EXPECT_EQ(a.boundary().substr(0, prefix.size()), prefix);
  for (char c : a.boundary().substr(prefix.size()))
    EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) << c;
  EXPECT_NE(a.boundary(), b.boundary());
  EXPECT_EQ(a.content_type(), "multipart/form-data; boundary=" + a.boundary());
  // RFC 2046: at most 70 characters.
  EXPECT_LE(a.boundary().size(), 70u);
}

TEST(HttpMultipart, ExactBytesForFieldsAndFiles) {
  http::Multipart m;
  const std::string b = m.boundary();
  m.add_field("name", "value")
      .add_file("upload", "hello.txt", "file content\r\nline two", "text/plain")
      .add_file("blob", "data.bin", std::string("\0\x01\xff", 3));
  const std::string expected = "--" + b +
                               "\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nvalue\r\n"
                               "--" + b +
                               "\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"hello.txt\"\r\n"
                               "Content-Type: text/plain\r\n\r\nfile content\r\nline two\r\n"
                               "--" + b +
                               "\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"data.bin\"\r\n"
                               "Content-Type: application/octet-stream\r\n\r\n" + std::string("\0\x01\xff", 3) +
                               "\r\n--" + b + "--\r\n";
  std::uint64_t size = 0;
  const std::string body = read_all(std::move(m), 4096, &size);
  EXPECT_EQ(body, expected);
  EXPECT_EQ(size, expected.size());
}

TEST(HttpMultipart, ParsesBack) {
  http::Multipart m;
  m.add_field("a", "1").add_field("empty", "").add_file("f", "x.json", R"({"k":"v"})", "application/json");
  std::string boundary;
  const std::string body = read_all(std::move(m), 4096, nullptr, &boundary);
  const auto parts = parse_multipart(body, boundary);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].headers, (std::vector<std::string>{"Content-Disposition: form-data; name=\"a\""}));
  EXPECT_EQ(parts[0].content, "1");
  EXPECT_EQ(parts[1].content, "");
  EXPECT_EQ(parts[2].headers, (std::vector<std::string>{"Content-Disposition: form-data; name=\"f\"; filename=\"x.json\"",
                                                         "Content-Type: application/json"}));
  EXPECT_EQ(parts[2].content, R"({"k":"v"})");
}

TEST(HttpMultipart, QuotesAndLineBreaksInNamesAreEscaped) {
  http::Multipart m;
  m.add_field("we\"ird\r\nname", "v").add_file("f\"", "evil\".txt\r\nContent-Type: text/html", "x");
  std::string boundary;
  const std::string body = read_all(std::move(m), 4096, nullptr, &boundary);
  const auto parts = parse_multipart(body, boundary);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].headers, (std::vector<std::string>{"Content-Disposition: form-data; name=\"we%22ird%0D%0Aname\""}));
  ASSERT_EQ(parts[1].headers.size(), 2u);  // no injected header line
  EXPECT_EQ(parts[1].headers[0],
            "Content-Disposition: form-data; name=\"f%22\"; filename=\"evil%22.txt%0D%0AContent-Type: text/html\"");
  EXPECT_EQ(parts[1].headers[1], "Content-Type: application/octet-stream");
}

TEST(HttpMultipart, NonAsciiNamesPassThrough) {
  http::Multipart m;
  m.add_file("file", "r\xc3\xa9sum\xc3\xa9.pdf", "%PDF");
  std::string boundary;
  const auto parts = parse_multipart(read_all(std::move(m), 4096, nullptr, &boundary), boundary);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].headers[0], "Content-Disposition: form-data; name=\"file\"; filename=\"r\xc3\xa9sum\xc3\xa9.pdf\"");
}

TEST(HttpMultipart, EmptyMultipart) {
  http::Multipart m;
  const std::string b = m.boundary();
  std::uint64_t size = 0;
  const std::string body = read_all(std::move(m), 4096, &size);
  EXPECT_EQ(body, "--" + b + "--\r\n");
  EXPECT_EQ(size, body.size());
}

http::Multipart mixed(const std::string& big) {
  http::Multipart m;
  m.add_field("meta", R"({"path":"/workspace/a b.txt"})")
      .add_file("small", "s.txt", "tiny")
      .add_file("streamed", "big.bin", string_source(big, 1000), big.size())
      .add_file("trickle", "t.txt", string_source("one byte at a time", 1), 18, "text/plain")
      .add_file("nothing", "empty.bin", string_source(""), 0)
      .add_field("tail", "end");
  return m;
}

TEST(HttpMultipart, SizeEqualsTheStreamedLengthForAnyReadCapacity) {
  std::string big;
  std::mt19937 random(42);
  for (int i = 0; i < 50'000; ++i) big += static_cast<char>(random() & 0xff);
  const std::string reference = [&] {
    std::string boundary;
    const std::string body = read_all(mixed(big), 1 << 20, nullptr, &boundary);
    const auto parts = parse_multipart(body, boundary);
    EXPECT_EQ(parts.size(), 6u);
    if (parts.size() == 6) {
      EXPECT_EQ(parts[0].content, R"({"path":"/workspace/a b.txt"})");
      EXPECT_EQ(parts[1].content, "tiny");
      EXPECT_EQ(parts[2].content, big);
      EXPECT_EQ(parts[3].content, "one byte at a time");
      EXPECT_EQ(parts[4].content, "");
      EXPECT_EQ(parts[5].content, "end");
    }
    return body;
  }();
  for (const std::size_t capacity : std::initializer_list<std::size_t>{1, 2, 3, 7, 13, 64, 100, 999, 1000, 1001, 4096, 65536}) {
    http::Multipart m = mixed(big);
    // The boundary differs per Multipart: compare with it replaced.
    const std::string boundary = m.boundary();
    std::uint64_t size = 0;
    std::string body = read_all(std::move(m), capacity, &size);
    EXPECT_EQ(size, body.size()) << capacity;
    for (std::size_t at = body.find(boundary); at != std::string::npos; at = body.find(boundary, at))
      body.replace(at, boundary.size(), std::string(boundary.size(), '#'));
    std::string expected = reference;
    for (std::size_t at = expected.find("----workspace-"); at != std::string::npos;
         at = expected.find("----workspace-", at))
      expected.replace(at, boundary.size(), std::string(boundary.size(), '#'));
    EXPECT_EQ(body, expected) << capacity;
  }
}

TEST(HttpMultipart, AttachToSetsTheRequest) {
  http::Multipart m;
  m.add_field("a", "b");
  const std::string type = m.content_type();
  const std::uint64_t size = m.size();
  http::Request request{.method = "POST"};
  request.headers.add("content-type", "text/plain");  // replaced
  std::move(m).attach_to(request);
  EXPECT_EQ(request.headers.size(), 1u);
  EXPECT_EQ(request.headers.get("Content-Type"), type);
  EXPECT_EQ(request.source_size, size);
  ASSERT_TRUE(request.source);
  EXPECT_EQ(drain(request.source, 5).size(), size);
  // At its end it stays at its end.
  char c;
  EXPECT_EQ(request.source(&c, 1), 0u);
}

TEST(HttpMultipart, FileFromPath) {
  TempDir dir;
  const std::string content = "line\r\n--not-a-boundary\r\n\0end"s;
  const std::string path = dir.write("in.txt", content);
  http::Multipart m;
  m.add_file_from_path("file", "in.txt", path, "text/plain");
  std::string boundary;
  std::uint64_t size = 0;
  const std::string body = read_all(std::move(m), 3, &size, &boundary);
  EXPECT_EQ(size, body.size());
  const auto parts = parse_multipart(body, boundary);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].content, content);
  EXPECT_THROW(http::Multipart().add_file_from_path("f", "f", dir.path()), Error);
}

TEST(HttpMultipart, ASourceShorterThanDeclaredThrows) {
  http::Multipart m;
  m.add_file("f", "f.bin", string_source("abc"), 5);
  http::Request request;
  std::move(m).attach_to(request);
  const Error e = error_from([&] { (void)drain(request.source, 4096); });
  EXPECT_EQ(e.code(), errc::invalid_argument);
  EXPECT_NE(std::string(e.what()).find("shorter"), std::string::npos) << e.what();
}

TEST(HttpMultipart, ASourceLongerThanDeclaredThrows) {
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, SIZE_MAX}) {
    http::Multipart m;
    m.add_file("f", "f.bin", string_source("abcdef", step), 3);
    http::Request request;
    std::move(m).attach_to(request);
    const Error e = error_from([&] { (void)drain(request.source, 4096); });
    EXPECT_EQ(e.code(), errc::invalid_argument) << step;
    EXPECT_NE(std::string(e.what()).find("longer"), std::string::npos) << e.what();
  }
}

// A declared size bigger than the source, read through a small buffer, must not succeed either.
TEST(HttpMultipart, AnEmptySourceDeclaredNonEmptyThrows) {
  http::Multipart m;
  m.add_file("f", "f.bin", string_source(""), 1);
  http::Request request;
  std::move(m).attach_to(request);
  EXPECT_THROW((void)drain(request.source, 1), Error);
}

TEST(HttpMultipart, ErrorsFromTheSourcePropagate) {
  http::Multipart m;
  m.add_file("f", "f.bin", [](char*, std::size_t) -> std::size_t { throw Error(errc::io_error, "disk gone"); }, 10);
  http::Request request;
  std::move(m).attach_to(request);
  EXPECT_EQ(error_from([&] { (void)drain(request.source, 4096); }).code(), errc::io_error);
}

// ---------------------------------------------------------------------------------------------
// base64 (RFC 4648)

TEST(HttpBase64, Rfc4648TestVectors) {
  const auto base64 = [](std::string_view in) { return workspace::detail::base64_encode(in); };
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

TEST(HttpBase64, BinaryAndTheLastTwoAlphabetCharacters) {
  const auto base64 = [](std::string_view in) { return workspace::detail::base64_encode(in); };
  EXPECT_EQ(base64(std::string("\0", 1)), "AA==");
  EXPECT_EQ(base64(std::string("\0\0\0", 3)), "AAAA");
  EXPECT_EQ(base64("\xff\xff\xff"), "////");
  EXPECT_EQ(base64("\xfb\xff"), "+/8=");
  EXPECT_EQ(base64("\xff"), "/w==");
  EXPECT_EQ(base64("\x80"), "gA==");
  EXPECT_EQ(base64("Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");  // RFC 7617's example
  EXPECT_EQ(base64("user:p@ss:w\xc3\xb6rd"), "dXNlcjpwQHNzOnfDtnJk");
}

// The library's own decoder, fed in pieces of every size.
std::string decode_base64(std::string_view text, std::size_t piece = 1) {
  workspace::detail::Base64Decoder decoder;
  std::string out;
  const auto sink = [&](std::string_view bytes) { out.append(bytes); };
  for (std::size_t at = 0; at < text.size(); at += piece) decoder.feed(text.substr(at, piece), sink);
  decoder.finish(sink);
  return out;
}

TEST(HttpBase64, RoundTripsEveryLengthAndByte) {
  std::mt19937 random(7);
  for (std::size_t length = 0; length < 100; ++length) {
    std::string data;
    for (std::size_t i = 0; i < length; ++i) data += static_cast<char>(random() & 0xff);
    const std::string encoded = workspace::detail::base64_encode(data);
    EXPECT_EQ(encoded.size(), (length + 2) / 3 * 4) << length;
    EXPECT_EQ(decode_base64(encoded), data) << length;
    EXPECT_EQ(decode_base64(encoded, 3), data) << length;
    EXPECT_EQ(decode_base64(encoded, 1000), data) << length;
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(decode_base64(workspace::detail::base64_encode(all)), all);
}

TEST(HttpBase64, TheDecoderRefusesWhatIsNotBase64) {
  EXPECT_THROW(decode_base64("Zm9v!"), Error);
  EXPECT_THROW(decode_base64("Zm9"), Error);      // truncated
  EXPECT_THROW(decode_base64("Zg==Zg=="), Error); // data after padding
  EXPECT_EQ(decode_base64("Zm9v\nYmFy\r\n"), "foobar");  // line breaks are skipped
}

}  // namespace
