// The tar writer, reader and extractors behind DockerWorkspace's archive transfers: round trips,
// interoperability with GNU tar in both directions, corrupt and truncated archives, and archives
// built to escape the destination (no network, no Docker).
#define _GLIBCXX_ASSERTIONS 1  // out-of-range string_view/vector access aborts instead of reading junk

#include <workspace/tar.hpp>

#include "../support/error_from.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace workspace;
namespace tar = workspace::tar;
namespace fs = std::filesystem;
using workspace_test::error_from;

// ---- helpers ----

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "workspace-tar-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    // Read-only folders left by a test would stop remove_all.
    for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string operator/(std::string_view sub) const { return (path_ / sub).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, std::string_view content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

unsigned mode_of(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return 0xFFFFFFFFu;
  return static_cast<unsigned>(info.st_mode) & 07777u;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xFF);
  return s;
}

int run(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// Pulls a source to its end, `capacity` bytes at a time.
std::string drain(tar::Writer::Source source, std::size_t capacity) {
  std::string out;
  std::vector<char> buffer(capacity);
  for (;;) {
    const std::size_t n = source(buffer.data(), capacity);
    EXPECT_LE(n, capacity);
    if (n == 0) return out;
    out.append(buffer.data(), n);
  }
}

struct ReadEntry {
  tar::Entry entry;
  std::string data;
  bool ended = false;
};

// Reads a whole archive, `step` bytes per feed.
std::vector<ReadEntry> read_all(std::string_view archive, std::size_t step = SIZE_MAX) {
  std::vector<ReadEntry> out;
  tar::Reader reader(tar::Handler{
      [&](const tar::Entry& e) { out.push_back({e, {}, false}); },
      [&](std::string_view d) { out.back().data.append(d); },
      [&](const tar::Entry& e) {
        EXPECT_EQ(e.path, out.back().entry.path);
        EXPECT_EQ(out.back().data.size(), e.size);
        out.back().ended = true;
      }});
  for (std::size_t at = 0; at < archive.size(); at += step) reader.feed(archive.substr(at, step));
  reader.finish();
  EXPECT_TRUE(reader.done());
  return out;
}

std::map<std::string, ReadEntry> by_path(std::vector<ReadEntry> entries) {
  std::map<std::string, ReadEntry> out;
  for (auto& e : entries) out[e.entry.path] = std::move(e);
  return out;
}

// A hand-made archive: headers from encode_header (which does not check paths), then data.
struct Raw {
  tar::Entry entry;
  std::string data;
};
std::string raw_archive(const std::vector<Raw>& members, bool trailer = true) {
  std::string out;
  for (const auto& m : members) {
    tar::Entry e = m.entry;
    if (e.type == tar::EntryType::file) e.size = m.data.size();
    out += tar::encode_header(e);
    out += m.data;
    out.append((512 - m.data.size() % 512) % 512, '\0');
  }
  if (trailer) out.append(1024, '\0');
  return out;
}

tar::Entry file_entry(std::string path, unsigned mode = 0644) {
  tar::Entry e;
  e.path = std::move(path);
  e.mode = mode;
  e.mtime = 1700000000;
  return e;
}
tar::Entry dir_entry(std::string path, unsigned mode = 0755) {
  tar::Entry e = file_entry(std::move(path), mode);
  e.type = tar::EntryType::directory;
  e.typeflag = '5';
  return e;
}
tar::Entry link_entry(std::string path, std::string target, bool hard = false) {
  tar::Entry e = file_entry(std::move(path), 0777);
  e.type = hard ? tar::EntryType::hardlink : tar::EntryType::symlink;
  e.typeflag = hard ? '1' : '2';
  e.linkname = std::move(target);
  return e;
}

// Everything under `root` (paths relative to it) with type, mode and content, for before/after
// comparisons.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string p = it->path().string();
    std::string desc = std::to_string(mode_of(p)) + ":";
    if (it->is_symlink()) desc += "link:" + fs::read_symlink(it->path()).string();
    else if (it->is_directory()) desc += "dir";
    else desc += "file:" + read_file(p);
    out[fs::relative(it->path(), root).string()] = desc;
  }
  return out;
}

// The sample tree many tests archive: every shape of entry the writer makes.
struct Sample {
  std::string long_dir = std::string(60, 'd') + "/" + std::string(60, 'e') + "/" + std::string(50, 'f');
  std::string long_base = std::string(150, 'n');
  std::string big = random_bytes(300000, 7);
};

tar::Writer sample_writer(const TempDir& dir, const Sample& s) {
  write_file(dir / "local.bin", s.big);
  ::chmod((dir / "local.bin").c_str(), 0750);
  tar::Writer w;
  w.add_directory("top", 0750)
      .add_bytes("top/empty", "")
      .add_bytes("top/one", "x", 0600)
      .add_bytes("top/511", std::string(511, 'a'))
      .add_bytes("top/512", std::string(512, 'b'))
      .add_bytes("top/513", std::string(513, 'c'), 0755)
      .add_bytes("top/binary", std::string("\0\x01\xff\0zz", 6))
      .add_file("top/local.bin", dir / "local.bin")
      .add_parents(s.long_dir + "/x")
      .add_bytes(s.long_dir + "/in-long-dir", "long dir")  // fits ustar's prefix/name split
      .add_bytes("top/" + s.long_base, "long base name")   // does not: pax path
      .add_bytes("top/données/été.txt", "non-ascii")      // pax path, parents implicit
      .add_symlink("top/link", "one")
      .add_symlink("top/long-link", std::string(120, 't'))
      .add_directory("top/private", tar::Attributes{0700, 12345, 1000, 1000});
  return w;
}

// ---- pax records and headers ----

TEST(TarPax, RecordLengthCountsItsOwnDigits) {
  EXPECT_EQ(tar::pax_record("path", "a"), "9 path=a\n");  // " path=a\n" is 8 bytes, plus 1 digit
  EXPECT_EQ(tar::pax_record("a", "bcd"), "8 a=bcd\n");
  EXPECT_EQ(tar::pax_record("path", "abc"), "12 path=abc\n");  // 10 bytes: the length needs 2 digits
  for (std::size_t n = 0; n < 3000; ++n) {
    const std::string record = tar::pax_record("path", std::string(n, 'v'));
    const std::size_t space = record.find(' ');
    ASSERT_NE(space, std::string::npos);
    EXPECT_EQ(std::stoul(record.substr(0, space)), record.size()) << "value length " << n;
    EXPECT_EQ(record.back(), '\n');
  }
  // Around the digit boundaries: a body of 8 needs 1 digit (9), of 9 needs 2 (11), of 98 needs 3.
  EXPECT_EQ(tar::pax_record("k", std::string(4, 'v')).size(), 9u);   // " k=vvvv\n" = 8
  EXPECT_EQ(tar::pax_record("k", std::string(5, 'v')).size(), 11u);  // 9 + 2 digits
  EXPECT_EQ(tar::pax_record("k", std::string(94, 'v')).size(), 101u);  // 98 + 3 digits
  EXPECT_EQ(tar::pax_record("k", std::string(93, 'v')).size(), 99u);   // 97 + 2 digits
}

TEST(TarPax, HugeSizeGoesInAPaxRecord) {
  tar::Entry e = file_entry("huge.bin");
  e.size = std::uint64_t{10} << 30;  // 10 GiB, past ustar's 8 GiB
  const std::string header = tar::encode_header(e);
  ASSERT_EQ(header.size(), 3u * 512);  // pax header, its records, the ustar header
  EXPECT_EQ(header[156], 'x');
  EXPECT_NE(header.find(tar::pax_record("size", "10737418240")), std::string::npos);

  tar::Entry seen;
  tar::Reader reader(tar::Handler{[&](const tar::Entry& entry) { seen = entry; }, {}, {}});
  reader.feed(header);
  reader.feed(std::string(1000, 'z'));
  EXPECT_EQ(seen.path, "huge.bin");
  EXPECT_EQ(seen.size, std::uint64_t{10} << 30);
  const Error error = error_from([&] { reader.finish(); });
  EXPECT_EQ(error.code(), errc::protocol_error);
  EXPECT_NE(std::string(error.what()).find("truncated archive"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("huge.bin"), std::string::npos) << error.what();
}

TEST(TarPax, SizeJustBelowEightGiBStaysUstar) {
  tar::Entry e = file_entry("big");
  e.size = (std::uint64_t{8} << 30) - 1;
  EXPECT_EQ(tar::encode_header(e).size(), 512u);
  e.size = std::uint64_t{8} << 30;
  EXPECT_EQ(tar::encode_header(e).size(), 3u * 512);
}

TEST(TarPax, NamesThatFitTheUstarSplitNeedNoPax) {
  const std::string split = std::string(120, 'p') + "/" + std::string(99, 'n');  // 220 bytes
  EXPECT_EQ(tar::encode_header(file_entry(split)).size(), 512u);
  EXPECT_EQ(tar::encode_header(file_entry(std::string(100, 'n'))).size(), 512u);
  EXPECT_EQ(tar::encode_header(file_entry(std::string(101, 'n'))).size(), 3u * 512);
  EXPECT_EQ(tar::encode_header(file_entry(std::string(156, 'p') + "/n")).size(), 3u * 512);  // prefix > 155
  EXPECT_EQ(tar::encode_header(file_entry("caf\xc3\xa9")).size(), 3u * 512);                // not ASCII
  EXPECT_EQ(tar::encode_header(link_entry("l", std::string(101, 't'))).size(), 3u * 512);
  tar::Entry owned = file_entry("owned");
  owned.uid = 3000000;  // more than 7 octal digits
  EXPECT_EQ(tar::encode_header(owned).size(), 3u * 512);
  tar::Entry old = file_entry("old");
  old.mtime = -5;
  EXPECT_EQ(tar::encode_header(old).size(), 3u * 512);

  const auto entries = read_all(raw_archive({{file_entry(split), "s"}, {owned, ""}, {old, ""}}));
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].entry.path, split);
  EXPECT_EQ(entries[1].entry.uid, 3000000u);
  EXPECT_EQ(entries[2].entry.mtime, -5);
}

TEST(TarPax, UstarHeaderFieldsAndChecksum) {
  tar::Entry e = file_entry("dir/name.txt", 0640);
  e.size = 10;
  e.uid = 7;
  e.gid = 8;
  const std::string h = tar::encode_header(e);
  ASSERT_EQ(h.size(), 512u);
  EXPECT_EQ(std::string(h.data(), 12), "dir/name.txt");
  EXPECT_EQ(std::string(h.data() + 100, 8), std::string("0000640\0", 8));
  EXPECT_EQ(std::string(h.data() + 108, 8), std::string("0000007\0", 8));
  EXPECT_EQ(std::string(h.data() + 124, 12), std::string("00000000012\0", 12));
  EXPECT_EQ(std::string(h.data() + 257, 8), std::string("ustar\0" "00", 8));
  EXPECT_EQ(h[156], '0');
  unsigned sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? 32u : static_cast<unsigned char>(h[i]);
  EXPECT_EQ(std::stoul(std::string(h.data() + 148, 6), nullptr, 8), sum);
  EXPECT_EQ(h[154], '\0');
  EXPECT_EQ(h[155], ' ');
  // Directories are stored with a trailing slash and read back without it.
  const std::string d = tar::encode_header(dir_entry("some/dir"));
  EXPECT_EQ(std::string(d.data(), 9), "some/dir/");
  EXPECT_EQ(d[156], '5');
}

// ---- writer ----

TEST(TarWriter, RoundTripEveryShapeAtEveryPieceSize) {
  TempDir dir;
  Sample s;
  for (std::size_t capacity : {std::size_t{1}, std::size_t{7}, std::size_t{512}, std::size_t{4096}, std::size_t{1} << 20}) {
    tar::Writer w = sample_writer(dir, s);
    const std::uint64_t expected = w.size();
    const std::string archive = drain(std::move(w).source(), capacity);
    ASSERT_EQ(archive.size(), expected) << "capacity " << capacity;
    ASSERT_EQ(archive.size() % 512, 0u);
    EXPECT_EQ(archive.substr(archive.size() - 1024), std::string(1024, '\0'));

    for (std::size_t step : {std::size_t{1}, std::size_t{333}, SIZE_MAX}) {
      if (capacity != 4096 && step == 1) continue;  // the 1-byte feed once is enough
      auto entries = read_all(archive, step);
      auto m = by_path(entries);
      ASSERT_EQ(entries.size(), m.size());
      EXPECT_EQ(m["top"].entry.type, tar::EntryType::directory);
      EXPECT_EQ(m["top"].entry.mode, 0750u);
      EXPECT_EQ(m["top/empty"].data, "");
      EXPECT_EQ(m["top/one"].data, "x");
      EXPECT_EQ(m["top/one"].entry.mode, 0600u);
      EXPECT_EQ(m["top/511"].data, std::string(511, 'a'));
      EXPECT_EQ(m["top/512"].data, std::string(512, 'b'));
      EXPECT_EQ(m["top/513"].data, std::string(513, 'c'));
      EXPECT_EQ(m["top/513"].entry.mode, 0755u);
      EXPECT_EQ(m["top/binary"].data, std::string("\0\x01\xff\0zz", 6));
      EXPECT_EQ(m["top/local.bin"].data, s.big);
      EXPECT_EQ(m["top/local.bin"].entry.mode, 0750u);
      EXPECT_EQ(m[s.long_dir].entry.type, tar::EntryType::directory);
      EXPECT_EQ(m[std::string(60, 'd')].entry.type, tar::EntryType::directory);
      EXPECT_EQ(m[s.long_dir + "/in-long-dir"].data, "long dir");
      EXPECT_EQ(m["top/" + s.long_base].data, "long base name");
      EXPECT_EQ(m["top/données/été.txt"].data, "non-ascii");
      EXPECT_EQ(m["top/link"].entry.type, tar::EntryType::symlink);
      EXPECT_EQ(m["top/link"].entry.linkname, "one");
      EXPECT_EQ(m["top/long-link"].entry.linkname, std::string(120, 't'));
      EXPECT_EQ(m["top/private"].entry.mode, 0700u);
      EXPECT_EQ(m["top/private"].entry.mtime, 12345);
      EXPECT_EQ(m["top/private"].entry.uid, 1000u);
      EXPECT_EQ(m["top/private"].entry.gid, 1000u);
      for (const auto& e : entries) EXPECT_TRUE(e.ended) << e.entry.path;
    }
  }
}

TEST(TarWriter, EmptyArchiveIsTwoZeroBlocks) {
  tar::Writer w;
  EXPECT_EQ(w.size(), 1024u);
  const std::string archive = drain(std::move(w).source(), 100);
  EXPECT_EQ(archive, std::string(1024, '\0'));
  EXPECT_TRUE(read_all(archive).empty());
}

TEST(TarWriter, FileMetadataComesFromTheFile) {
  TempDir dir;
  write_file(dir / "f", "hello");
  ::chmod((dir / "f").c_str(), 0604);
  const struct timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "f").c_str(), times, 0), 0);
  tar::Writer w;
  w.add_file("f", dir / "f").add_file("g", dir / "f", tar::Attributes{0611, 42, 5, 6});
  const auto entries = read_all(drain(std::move(w).source(), 4096));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].entry.mode, 0604u);
  EXPECT_EQ(entries[0].entry.mtime, 1234567890);
  EXPECT_EQ(entries[0].entry.uid, 0u);
  EXPECT_EQ(entries[0].entry.size, 5u);
  EXPECT_EQ(entries[1].entry.mode, 0611u);
  EXPECT_EQ(entries[1].entry.mtime, 42);
  EXPECT_EQ(entries[1].entry.uid, 5u);
  EXPECT_EQ(entries[1].entry.gid, 6u);
}

TEST(TarWriter, PathsAreNormalisedAndBadOnesRefused) {
  tar::Writer w;
  w.add_bytes("./a//b/./c", "x").add_directory("d/");
  const auto entries = read_all(drain(std::move(w).source(), 4096));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].entry.path, "a/b/c");
  EXPECT_EQ(entries[1].entry.path, "d");

  tar::Writer bad;
  for (const std::string& path : std::vector<std::string>{"../x", "/abs", "", ".", "a/../b", std::string("nul\0x", 5)}) {
    const Error error = error_from([&] { bad.add_bytes(path, "x"); });
    EXPECT_EQ(error.code(), errc::invalid_argument) << path;
  }
  EXPECT_EQ(error_from([&] { bad.add_symlink("l", ""); }).code(), errc::invalid_argument);
  EXPECT_EQ(bad.entries(), 0u);
}

TEST(TarWriter, AddParentsAddsEachFolderOnce) {
  tar::Writer w;
  w.add_directory("a", 0700).add_parents("a/b/c/file.txt").add_parents("a/b/other", 0711).add_bytes("a/b/c/file.txt", "");
  const auto entries = read_all(drain(std::move(w).source(), 4096));
  std::vector<std::string> paths;
  for (const auto& e : entries) paths.push_back(e.entry.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a/b", "a/b/c", "a/b/c/file.txt"}));
  EXPECT_EQ(entries[0].entry.mode, 0700u);
  EXPECT_EQ(entries[1].entry.mode, 0755u);
}

TEST(TarWriter, MissingOrSpecialLocalFilesAreErrors) {
  TempDir dir;
  tar::Writer w;
  const Error missing = error_from([&] { w.add_file("x", dir / "missing"); });
  EXPECT_EQ(missing.code(), std::errc::no_such_file_or_directory);
  EXPECT_NE(std::string(missing.what()).find("missing"), std::string::npos);
  EXPECT_EQ(error_from([&] { w.add_file("x", dir.path().string()); }).code(), errc::invalid_argument);
}

TEST(TarWriter, AFileThatChangesSizeStopsTheStream) {
  TempDir dir;
  write_file(dir / "f", "0123456789");
  {
    tar::Writer w;
    w.add_file("f", dir / "f");
    write_file(dir / "f", "0123");
    auto source = std::move(w).source();
    std::vector<char> buffer(4096);
    const Error error = error_from([&] { source(buffer.data(), buffer.size()); });
    EXPECT_EQ(error.code(), errc::io_error);
    EXPECT_NE(std::string(error.what()).find("changed size"), std::string::npos) << error.what();
  }
  {
    // Shrinks after the header went out: the stream cannot pad it, so it throws.
    write_file(dir / "g", std::string(100000, 'g'));
    tar::Writer w;
    w.add_file("g", dir / "g");
    auto source = std::move(w).source();
    std::vector<char> buffer(1024);
    EXPECT_EQ(source(buffer.data(), buffer.size()), 1024u);
    ASSERT_EQ(::truncate((dir / "g").c_str(), 600), 0);
    const Error error = error_from([&] {
      while (source(buffer.data(), buffer.size()) > 0) {
      }
    });
    EXPECT_NE(std::string(error.what()).find("shorter"), std::string::npos) << error.what();
  }
}

// ---- interoperability with GNU tar ----

TEST(TarInterop, GnuTarExtractsWhatWeWrite) {
  TempDir dir;
  Sample s;
  tar::Writer w = sample_writer(dir, s);
  const std::uint64_t size = w.size();
  const std::string archive = drain(std::move(w).source(), 65536);
  ASSERT_EQ(archive.size(), size);
  write_file(dir / "ours.tar", archive);
  fs::create_directories(dir / "out");
  ASSERT_EQ(run("cd " + shell_quote(dir / "out") + " && LC_ALL=C.UTF-8 tar -xf ../ours.tar 2>" +
                shell_quote(dir / "stderr")),
            0)
      << read_file(dir / "stderr");
  EXPECT_EQ(read_file(dir / "stderr"), "");
  const std::string out = dir / "out";
  EXPECT_EQ(read_file(out + "/top/local.bin"), s.big);
  EXPECT_EQ(mode_of(out + "/top/local.bin"), 0750u);
  EXPECT_EQ(read_file(out + "/top/513"), std::string(513, 'c'));
  EXPECT_EQ(read_file(out + "/top/binary"), std::string("\0\x01\xff\0zz", 6));
  EXPECT_EQ(read_file(out + "/top/empty"), "");
  EXPECT_EQ(read_file(out + "/" + s.long_dir + "/in-long-dir"), "long dir");
  EXPECT_EQ(read_file(out + "/top/" + s.long_base), "long base name");
  EXPECT_EQ(read_file(out + "/top/données/été.txt"), "non-ascii");
  EXPECT_EQ(fs::read_symlink(out + "/top/link").string(), "one");
  EXPECT_EQ(fs::read_symlink(out + "/top/long-link").string(), std::string(120, 't'));
  EXPECT_EQ(mode_of(out + "/top"), 0750u);
  EXPECT_TRUE(fs::is_directory(out + "/top/private"));

  // And `tar -t` lists exactly our entries.
  ASSERT_EQ(run("cd " + shell_quote(dir.path().string()) + " && LC_ALL=C.UTF-8 tar -tf ours.tar > list"), 0);
  const std::string list = read_file(dir / "list");
  EXPECT_NE(list.find("top/" + s.long_base + "\n"), std::string::npos);
  EXPECT_NE(list.find("top/private/\n"), std::string::npos);
}

// A tree GNU tar archives in each format; returns the archive's bytes.
std::string gnu_tar(const TempDir& dir, const std::string& format, const std::string& tree) {
  const std::string archive = dir / (format + ".tar");
  EXPECT_EQ(run("cd " + shell_quote(tree) + " && LC_ALL=C.UTF-8 tar --format=" + format +
                " --sort=name -cf " + shell_quote(archive) + " . 2>/dev/null"),
            0);
  return read_file(archive);
}

void make_tree(const std::string& root, bool ustar_only) {
  write_file(root + "/plain.txt", "plain\n");
  write_file(root + "/sub/big.bin", random_bytes(70000, 3));
  ::chmod((root + "/sub/big.bin").c_str(), 0700);
  fs::create_directories(root + "/empty-dir");
  write_file(root + "/" + std::string(80, 'a') + "/" + std::string(90, 'b'), "split path");  // 171 bytes
  fs::create_symlink("plain.txt", root + "/link");
  fs::create_hard_link(root + "/plain.txt", root + "/hard");
  if (!ustar_only) {
    write_file(root + "/" + std::string(130, 'L'), "long base");
    write_file(root + "/" + std::string(120, 'x') + "/" + std::string(120, 'y') + "/" + std::string(120, 'z'), "deep");
    fs::create_symlink(std::string(150, 'T'), root + "/long-link");
    write_file(root + "/café/naïve.txt", "utf8");
  }
}

TEST(TarInterop, WeReadWhatGnuTarWritesInEveryFormat) {
  for (std::string format : {"pax", "gnu", "ustar", "v7"}) {
    SCOPED_TRACE(format);
    TempDir dir;
    const bool ustar_only = format == "ustar" || format == "v7";
    make_tree(dir / "tree", ustar_only);
    if (format == "v7") {  // v7 has 100-byte names only and no prefix
      fs::remove_all(dir / ("tree/" + std::string(80, 'a')));
    }
    const std::string archive = gnu_tar(dir, format, dir / "tree");
    ASSERT_FALSE(archive.empty());
    for (std::size_t step : {SIZE_MAX, std::size_t{1}}) {
      auto m = by_path(read_all(archive, step));
      EXPECT_EQ(m["./sub/big.bin"].data, random_bytes(70000, 3));
      EXPECT_EQ(m["./sub/big.bin"].entry.mode, 0700u);
      EXPECT_EQ(m["./empty-dir"].entry.type, tar::EntryType::directory);
      EXPECT_EQ(m["."].entry.type, tar::EntryType::directory);
      EXPECT_EQ(m["./link"].entry.type, tar::EntryType::symlink);
      EXPECT_EQ(m["./link"].entry.linkname, "plain.txt");
      // --sort=name puts "hard" before "plain.txt": the first one is the file, the second a link.
      EXPECT_EQ(m["./hard"].entry.type, tar::EntryType::file);
      EXPECT_EQ(m["./hard"].data, "plain\n");
      EXPECT_EQ(m["./plain.txt"].entry.type, tar::EntryType::hardlink);
      EXPECT_EQ(m["./plain.txt"].entry.linkname, "./hard");
      if (format != "v7") {
        EXPECT_EQ(m["./" + std::string(80, 'a') + "/" + std::string(90, 'b')].data, "split path");
      }
      if (!ustar_only) {
        EXPECT_EQ(m["./" + std::string(130, 'L')].data, "long base");
        EXPECT_EQ(m["./" + std::string(120, 'x') + "/" + std::string(120, 'y') + "/" + std::string(120, 'z')].data, "deep");
        EXPECT_EQ(m["./long-link"].entry.linkname, std::string(150, 'T'));
        EXPECT_EQ(m["./café/naïve.txt"].data, "utf8");
      }
    }
  }
}

TEST(TarInterop, GnuTarHardLinksAreReported) {
  TempDir dir;
  write_file(dir / "tree/a", "same");
  fs::create_hard_link(dir / "tree/a", dir / "tree/b");
  const auto entries = read_all(gnu_tar(dir, "pax", dir / "tree"));
  auto m = by_path(entries);
  EXPECT_EQ(m["./a"].entry.type, tar::EntryType::file);
  EXPECT_EQ(m["./b"].entry.type, tar::EntryType::hardlink);
  EXPECT_EQ(m["./b"].entry.linkname, "./a");
  EXPECT_EQ(m["./b"].entry.size, 0u);
}

TEST(TarInterop, ExtractorReproducesAGnuTarTree) {
  for (std::string format : {"pax", "gnu"}) {
    SCOPED_TRACE(format);
    TempDir dir;
    make_tree(dir / "tree", false);
    ::chmod((dir / "tree/empty-dir").c_str(), 0555);
    const std::string archive = gnu_tar(dir, format, dir / "tree");
    tar::Extractor extractor(dir / "out");
    for (std::size_t at = 0; at < archive.size(); at += 1000) extractor.feed(std::string_view(archive).substr(at, 1000));
    extractor.finish();
    EXPECT_EQ(snapshot(dir / "out"), snapshot(dir / "tree"));
    EXPECT_EQ(mode_of(dir / "out/empty-dir"), 0555u);
    EXPECT_EQ(mode_of(dir / "out/sub/big.bin"), 0700u);
    struct stat a {}, b {};
    ASSERT_EQ(::stat((dir / "out/hard").c_str(), &a), 0);
    ASSERT_EQ(::stat((dir / "out/plain.txt").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_GE(extractor.files_written(), 5u);
  }
}

// ---- malformed archives ----

TEST(TarReader, BadChecksumNamesTheOffset) {
  std::string archive = raw_archive({{file_entry("a"), "data"}, {file_entry("b"), "more"}});
  std::string first = archive;
  first[10] = 'X';  // inside the first header's name
  Error error = error_from([&] { read_all(first); });
  EXPECT_EQ(error.code(), errc::protocol_error);
  EXPECT_NE(std::string(error.what()).find("tar: bad header checksum at offset 0"), std::string::npos) << error.what();

  std::string second = archive;
  second[1024 + 100] = '7';  // the second header's mode
  error = error_from([&] { read_all(second, 1); });
  EXPECT_NE(std::string(error.what()).find("bad header checksum at offset 1024"), std::string::npos) << error.what();
}

TEST(TarReader, TruncationAnywhereIsAnError) {
  tar::Writer w;
  w.add_bytes("a", std::string(700, 'a')).add_directory("d").add_bytes(std::string(200, 'n'), "long");
  const std::string archive = drain(std::move(w).source(), 4096);
  const std::size_t end_marker = archive.size() - 1024;
  for (std::size_t cut = 0; cut < end_marker + 512; ++cut) {
    tar::Reader reader(tar::Handler{});
    reader.feed(std::string_view(archive).substr(0, cut));
    const Error error = error_from([&] { reader.finish(); });
    ASSERT_EQ(error.code(), errc::protocol_error) << cut;
    ASSERT_NE(std::string(error.what()).find("tar: truncated archive"), std::string::npos) << error.what();
  }
  // A lone zero block at the end is accepted, as GNU tar does.
  tar::Reader lone(tar::Handler{});
  lone.feed(std::string_view(archive).substr(0, end_marker + 512));
  lone.finish();
  EXPECT_TRUE(lone.done());
  // Bytes after the end marker (GNU tar pads to 10 KiB) are ignored.
  EXPECT_EQ(read_all(archive + std::string(9216, '\0')).size(), 3u);
}

TEST(TarReader, NamesTheEntryItWasInWhenTruncated) {
  const std::string archive = raw_archive({{file_entry("cut-here"), std::string(2000, 'x')}});
  tar::Reader reader(tar::Handler{});
  reader.feed(std::string_view(archive).substr(0, 1000));
  const Error error = error_from([&] { reader.finish(); });
  EXPECT_NE(std::string(error.what()).find("inside entry 'cut-here'"), std::string::npos) << error.what();
}

TEST(TarReader, GzipAndGarbageAreRefusedClearly) {
  std::string gz(1024, '\0');
  gz[0] = '\x1f';
  gz[1] = '\x8b';
  Error error = error_from([&] { read_all(gz); });
  EXPECT_NE(std::string(error.what()).find("gzip"), std::string::npos) << error.what();
  error = error_from([&] { read_all(std::string(600, 'j')); });
  EXPECT_EQ(error.code(), errc::protocol_error);
}

TEST(TarReader, AnErrorIsFinal) {
  std::string archive = raw_archive({{file_entry("a"), "data"}});
  archive[0] = 'b';
  tar::Reader reader(tar::Handler{});
  EXPECT_EQ(error_from([&] { reader.feed(archive); }).code(), errc::protocol_error);
  const Error again = error_from([&] { reader.feed(std::string(512, '\0')); });
  EXPECT_NE(std::string(again.what()).find("after an error"), std::string::npos);
  EXPECT_EQ(error_from([&] { reader.finish(); }).code(), errc::protocol_error);
}

TEST(TarReader, MalformedPaxRecordsAreErrors) {
  for (std::string records : {"5 a=b\n", "9 path=x", "x path=y\n", "99 path=y\n", "11 noequal\n", "7 =abc\n"}) {
    tar::Entry pax = file_entry("PaxHeaders/x");
    pax.type = tar::EntryType::other;
    pax.typeflag = 'x';
    pax.size = records.size();
    std::string archive = tar::encode_header(pax) + records + std::string(512 - records.size(), '\0');
    archive += raw_archive({{file_entry("x"), ""}});
    const Error error = error_from([&] { read_all(archive); });
    EXPECT_NE(std::string(error.what()).find("malformed pax record"), std::string::npos) << records << error.what();
  }
}

TEST(TarReader, GlobalPaxHeadersApplyToLaterEntries) {
  const std::string records = tar::pax_record("uid", "77") + tar::pax_record("comment", "hi");
  tar::Entry global = file_entry("GlobalHead");
  global.type = tar::EntryType::other;
  global.typeflag = 'g';
  global.size = records.size();
  std::string archive = tar::encode_header(global) + records + std::string(512 - records.size(), '\0');
  tar::Entry own = file_entry("own");
  own.uid = 5000000;  // its own pax uid record wins
  archive += raw_archive({{file_entry("a"), "1"}, {own, "2"}});
  const auto entries = read_all(archive, 3);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].entry.uid, 77u);
  EXPECT_EQ(entries[1].entry.uid, 5000000u);
}

TEST(TarReader, Base256NumbersAreRead) {
  tar::Entry e = file_entry("b256");
  e.size = 3;
  std::string header = tar::encode_header(e);
  std::string size_field(12, '\0');
  size_field[0] = '\x80';
  size_field[11] = '\x03';
  header.replace(124, 12, size_field);
  std::memset(header.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : header) sum += static_cast<unsigned char>(c);
  char digits[8];
  std::snprintf(digits, sizeof digits, "%06o", sum);
  header.replace(148, 7, std::string(digits, 6) + '\0');
  const auto entries = read_all(header + "xyz" + std::string(509, '\0') + std::string(1024, '\0'));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].data, "xyz");
}

// ---- extraction: what it writes ----

TEST(TarExtractor, WritesTheWritersArchive) {
  TempDir dir;
  Sample s;
  tar::Writer w = sample_writer(dir, s);
  w.add_bytes("top/suid", "s", 04755).add_directory("ro", 0555).add_bytes("ro/inside", "i");
  const std::string archive = drain(std::move(w).source(), 8192);
  tar::Extractor extractor(dir / "out");
  for (char c : archive) extractor.feed(std::string_view(&c, 1));
  extractor.finish();
  const std::string out = dir / "out";
  EXPECT_EQ(read_file(out + "/top/local.bin"), s.big);
  EXPECT_EQ(mode_of(out + "/top/local.bin"), 0750u);
  EXPECT_EQ(mode_of(out + "/top/one"), 0600u);
  EXPECT_EQ(mode_of(out + "/top/suid"), 0755u);  // no setuid
  EXPECT_EQ(mode_of(out + "/top"), 0750u);
  EXPECT_EQ(mode_of(out + "/ro"), 0555u);
  EXPECT_EQ(read_file(out + "/ro/inside"), "i");
  EXPECT_EQ(read_file(out + "/top/" + s.long_base), "long base name");
  EXPECT_EQ(read_file(out + "/top/données/été.txt"), "non-ascii");
  EXPECT_EQ(fs::read_symlink(out + "/top/link").string(), "one");
  struct stat info {};
  ASSERT_EQ(::stat((out + "/top/private").c_str(), &info), 0);
  EXPECT_EQ(info.st_mtime, 12345);
  // No temporary file is left behind.
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tar-"), std::string::npos) << e.path();
  EXPECT_EQ(extractor.bytes_written(), s.big.size() + 1 + 511 + 512 + 513 + 6 + 8 + 14 + 9 + 1 + 1);
}

TEST(TarExtractor, LaterEntriesReplaceEarlierOnes) {
  TempDir dir;
  write_file(dir / "out/existing", "old");
  fs::create_symlink("existing", dir / "out/was-link");
  const std::string archive = raw_archive({{file_entry("existing"), "new"},
                                           {file_entry("dup"), "first"},
                                           {file_entry("dup"), "second"},
                                           {file_entry("was-link"), "plain now"}});
  tar::Extractor extractor(dir / "out");
  extractor.feed(archive);
  extractor.finish();
  EXPECT_EQ(read_file(dir / "out/existing"), "new");
  EXPECT_EQ(read_file(dir / "out/dup"), "second");
  EXPECT_FALSE(fs::is_symlink(dir / "out/was-link"));
  EXPECT_EQ(read_file(dir / "out/was-link"), "plain now");
}

TEST(TarExtractor, AFileCannotReplaceAFolder) {
  TempDir dir;
  fs::create_directories(dir / "out/folder/inner");
  tar::Extractor extractor(dir / "out");
  const Error error = error_from([&] { extractor.feed(raw_archive({{file_entry("folder"), "x"}})); });
  EXPECT_NE(std::string(error.what()).find("'folder'"), std::string::npos) << error.what();
  EXPECT_TRUE(fs::is_directory(dir / "out/folder/inner"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "out/folder"), fs::directory_iterator()), 1);
  extractor = tar::Extractor(dir / "other");  // the failed one is gone: its temporary file too
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "out"), fs::directory_iterator()), 1);
}

// ---- extraction: archives that try to escape ----

struct Escape {
  std::string name;
  std::string archive;
  std::string must_mention;  // the entry the error names
};

TEST(TarExtractor, RefusesEveryEscape) {
  TempDir dir;
  const std::string outside = dir / "outside";  // a sibling of the destination
  write_file(outside + "/victim", "victim");
  const std::string abs_target = outside + "/evil";

  std::vector<Escape> cases = {
      {"dotdot", raw_archive({{file_entry("../evil"), "e"}}), "'../evil'"},
      {"absolute", raw_archive({{file_entry(abs_target), "e"}}), abs_target},
      {"inner dotdot", raw_archive({{file_entry("a/../../evil"), "e"}}), "'a/../../evil'"},
      {"deep dotdot", raw_archive({{dir_entry("a"), ""}, {file_entry("a/b/../../../outside/evil"), "e"}}), "outside/evil"},
      {"symlink to root", raw_archive({{link_entry("link", "/"), ""}, {file_entry("link" + abs_target), "e"}}), "'link'"},
      {"symlink to absolute", raw_archive({{link_entry("link", outside), ""}, {file_entry("link/evil"), "e"}}), "'link'"},
      {"symlink up", raw_archive({{link_entry("link", "../../outside"), ""}, {file_entry("link/evil"), "e"}}), "'link'"},
      {"symlink just above", raw_archive({{link_entry("link", ".."), ""}}), "'link'"},
      {"nested symlink up", raw_archive({{dir_entry("a"), ""}, {link_entry("a/l", "../../outside"), ""}}), "'a/l'"},
      {"symlink down then up", raw_archive({{link_entry("l", "a/../.."), ""}}), "'l'"},
      {"symlink through symlink",
       raw_archive({{dir_entry("a"), ""}, {link_entry("a/up", ".."), ""}, {link_entry("b", "a/up/.."), ""}}), "'b'"},
      {"file through inside symlink",
       raw_archive({{dir_entry("sub"), ""}, {link_entry("in", "sub"), ""}, {file_entry("in/evil"), "e"}}), "'in/evil'"},
      {"dir through symlink", raw_archive({{link_entry("in", "."), ""}, {dir_entry("in/x"), ""}}), "'in/x'"},
      {"hardlink absolute", raw_archive({{link_entry("h", outside + "/victim", true), ""}}), "'h'"},
      {"hardlink up", raw_archive({{link_entry("h", "../outside/victim", true), ""}}), "'h'"},
      {"hardlink through pre-existing symlink", raw_archive({{link_entry("h", "pre/victim", true), ""}}), "'h'"},
      {"file through pre-existing symlink", raw_archive({{file_entry("pre/evil"), "e"}}), "'pre/evil'"},
      {"directory over pre-existing symlink", raw_archive({{dir_entry("pre"), ""}, {file_entry("pre/evil"), "e"}}), "'pre'"},
  };
  // Names from GNU long-name and pax records are checked the same way.
  {
    tar::Entry longname = file_entry("././@LongLink");
    longname.type = tar::EntryType::other;
    longname.typeflag = 'L';
    const std::string name = "../evil";
    longname.size = name.size() + 1;
    std::string gnu = tar::encode_header(longname) + name + '\0' + std::string(512 - name.size() - 1, '\0');
    gnu += raw_archive({{file_entry("harmless"), "e"}});
    cases.push_back({"gnu long name", gnu, "'../evil'"});
  }
  {
    const std::string records = tar::pax_record("path", "../evil");
    tar::Entry pax = file_entry("PaxHeaders/harmless");
    pax.type = tar::EntryType::other;
    pax.typeflag = 'x';
    pax.size = records.size();
    std::string archive = tar::encode_header(pax) + records + std::string(512 - records.size(), '\0');
    archive += raw_archive({{file_entry("harmless"), "e"}});
    cases.push_back({"pax path", archive, "'../evil'"});
  }

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dest = dir / "dest";
    fs::remove_all(dest);
    fs::create_directories(dest);
    fs::create_symlink(outside, dest + "/pre");  // a link that was already there
    auto before = snapshot(dir.path());

    tar::Extractor extractor(dest);
    const Error error = error_from([&] {
      extractor.feed(c.archive);
      extractor.finish();
    });
    EXPECT_EQ(error.code(), errc::protocol_error) << error.what();
    const std::string what = error.what();
    EXPECT_EQ(what.rfind("tar: refusing", 0), 0u) << what;
    EXPECT_NE(what.find(c.must_mention), std::string::npos) << what;

    // Nothing changed outside the destination.
    auto after = snapshot(dir.path());
    for (auto* m : {&before, &after})
      for (auto it = m->begin(); it != m->end();)
        it = it->first.rfind("dest", 0) == 0 ? m->erase(it) : std::next(it);
    EXPECT_EQ(before, after);
    EXPECT_EQ(read_file(outside + "/victim"), "victim");
    EXPECT_FALSE(fs::exists(outside + "/evil"));
    EXPECT_FALSE(fs::exists(dir / "evil"));
  }
}

TEST(TarExtractor, SymlinksThatStayInsideAreKept) {
  TempDir dir;
  const std::string archive = raw_archive({{dir_entry("a/b"), ""},
                                           {file_entry("a/f"), "f"},
                                           {link_entry("a/b/up", "../f"), ""},
                                           {link_entry("a/b/top", "../../a"), ""},
                                           {link_entry("a/self", "."), ""},
                                           {link_entry("dangling", "nothing/here"), ""},
                                           {link_entry("a/hard", "a/f", true), ""}});
  tar::Extractor extractor(dir / "out");
  extractor.feed(archive);
  extractor.finish();
  EXPECT_EQ(fs::read_symlink(dir / "out/a/b/up").string(), "../f");
  EXPECT_EQ(read_file(dir / "out/a/b/up"), "f");
  EXPECT_EQ(fs::read_symlink(dir / "out/a/b/top").string(), "../../a");
  EXPECT_EQ(fs::read_symlink(dir / "out/dangling").string(), "nothing/here");
  EXPECT_EQ(read_file(dir / "out/a/hard"), "f");
}

TEST(TarExtractor, DevicesAndFifosAreSkipped) {
  TempDir dir;
  tar::Entry fifo = file_entry("fifo");
  fifo.type = tar::EntryType::other;
  fifo.typeflag = '6';
  tar::Extractor extractor(dir / "out");
  extractor.feed(raw_archive({{fifo, ""}, {file_entry("after"), "ok"}}));
  extractor.finish();
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "out/fifo")));
  EXPECT_EQ(read_file(dir / "out/after"), "ok");
  EXPECT_EQ(extractor.entries_skipped(), 1u);
}

// ---- single files ----

TEST(TarSingleFile, WritesTheOneFileToAnExactPath) {
  TempDir dir;
  const std::string content = random_bytes(100000, 9);
  const std::string archive = raw_archive({{file_entry("basename.bin", 0751), content}});
  tar::SingleFileExtractor extractor(dir / "deep/new/target.bin");
  for (std::size_t at = 0; at < archive.size(); at += 777) extractor.feed(std::string_view(archive).substr(at, 777));
  extractor.finish();
  EXPECT_EQ(read_file(dir / "deep/new/target.bin"), content);
  EXPECT_EQ(mode_of(dir / "deep/new/target.bin"), 0751u);
  ASSERT_TRUE(extractor.entry());
  EXPECT_EQ(extractor.entry()->path, "basename.bin");
  EXPECT_EQ(extractor.bytes_written(), content.size());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "deep/new"), fs::directory_iterator()), 1);
}

TEST(TarSingleFile, GnuTarArchiveOfOneFile) {
  TempDir dir;
  write_file(dir / "src/report.xml", "<xml/>");
  ASSERT_EQ(run("tar -C " + shell_quote(dir / "src") + " -cf " + shell_quote(dir / "one.tar") + " report.xml"), 0);
  EXPECT_EQ(tar::read_single_file(read_file(dir / "one.tar")), "<xml/>");
}

TEST(TarSingleFile, AnythingButOneFileIsAnError) {
  TempDir dir;
  struct Case {
    std::string name;
    std::string archive;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"folder", raw_archive({{dir_entry("d"), ""}}), "'d' is a folder"},
      {"symlink", raw_archive({{link_entry("l", "target"), ""}}), "symbolic link to 'target'"},
      {"two files", raw_archive({{file_entry("a"), "1"}, {file_entry("b"), "2"}}), "also holds 'b'"},
      {"empty", raw_archive({}), "holds no file"},
      {"truncated", raw_archive({{file_entry("a"), std::string(1000, 'x')}}).substr(0, 1000), "truncated"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string target = dir / "target";
    {
      tar::SingleFileExtractor extractor(target);
      const Error error = error_from([&] {
        extractor.feed(c.archive);
        extractor.finish();
      });
      EXPECT_EQ(error.code(), errc::protocol_error);
      EXPECT_NE(std::string(error.what()).find(c.message), std::string::npos) << error.what();
    }
    EXPECT_FALSE(fs::exists(target));
    EXPECT_TRUE(fs::is_empty(dir.path())) << "a temporary file was left behind";

    tar::SingleFileReader reader;
    const Error in_memory = error_from([&] {
      reader.feed(c.archive);
      reader.finish();
    });
    EXPECT_NE(std::string(in_memory.what()).find(c.message), std::string::npos) << in_memory.what();
  }
}

TEST(TarSingleFile, ReadsIntoMemoryWithALimit) {
  const std::string archive = raw_archive({{file_entry("f"), std::string(3000, 'q')}});
  tar::SingleFileReader reader;
  for (char c : archive) reader.feed(std::string_view(&c, 1));
  reader.finish();
  EXPECT_EQ(reader.content(), std::string(3000, 'q'));
  EXPECT_EQ(reader.entry()->size, 3000u);

  tar::SingleFileReader limited(100);
  const Error error = error_from([&] { limited.feed(archive); });
  EXPECT_EQ(error.code(), errc::invalid_argument);
  EXPECT_NE(std::string(error.what()).find("limit"), std::string::npos);
}

TEST(TarSingleFile, DestinationThatIsAFolderIsAnError) {
  TempDir dir;
  fs::create_directories(dir / "folder");
  tar::SingleFileExtractor extractor(dir / "folder");
  const Error error = error_from([&] { extractor.feed(raw_archive({{file_entry("f"), "x"}})); });
  EXPECT_EQ(error.code(), errc::io_error);
  EXPECT_NE(std::string(error.what()).find("is a directory"), std::string::npos) << error.what();
}

}  // namespace
