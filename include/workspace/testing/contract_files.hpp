// The contract suite's tests of files. See contract.hpp.
#pragma once

#include <workspace/testing/contract_fixture.hpp>

WORKSPACE_NAMESPACE_BEGIN
namespace testing {

// --- files ---------------------------------------------------------------------------------

TYPED_TEST_P(WorkspaceContract, UploadAndDownloadRoundTrip) {
  const std::string source = this->local_ / "in.txt", back = this->local_ / "out.txt";
  contract::write_local(source, "hello workspace\n");
  auto up = this->ws_.file_upload(source, "round/trip.txt");
  ASSERT_TRUE(up.success) << up.error.value_or("");
  EXPECT_EQ(up.file_size, 16u);
  EXPECT_EQ(up.source_path, source);
  EXPECT_EQ(up.destination_path, this->in_working_dir("round/trip.txt"));
  EXPECT_FALSE(up.error);
  auto down = this->ws_.file_download("round/trip.txt", back);
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(down.file_size, 16u);
  EXPECT_EQ(contract::read_local(back), "hello workspace\n");
}

TYPED_TEST_P(WorkspaceContract, BinaryFilesSurviveBothWays) {
  const std::string data = contract::random_bytes(3u << 20, 7);
  const std::string source = this->local_ / "bin", back = this->local_ / "bin.back";
  contract::write_local(source, data);
  ASSERT_TRUE(this->ws_.file_upload(source, "data.bin").success);
  ASSERT_TRUE(this->ws_.file_download("data.bin", back).success);
  EXPECT_TRUE(contract::read_local(back) == data);
  auto read = this->ws_.file_read("data.bin");
  ASSERT_TRUE(read.success);
  EXPECT_TRUE(read.content == data);
}

TYPED_TEST_P(WorkspaceContract, EmptyFiles) {
  const std::string source = this->local_ / "empty", back = this->local_ / "empty.back";
  contract::write_local(source, "");
  auto up = this->ws_.file_upload(source, "empty");
  ASSERT_TRUE(up.success) << up.error.value_or("");
  EXPECT_EQ(up.file_size, 0u);
  ASSERT_TRUE(this->ws_.file_download("empty", back).success);
  EXPECT_TRUE(std::filesystem::exists(back));
  EXPECT_EQ(std::filesystem::file_size(back), 0u);
  EXPECT_TRUE(this->ws_.file_write("empty2", "").success);
  auto read = this->ws_.file_read("empty2");
  EXPECT_TRUE(read.success);
  EXPECT_EQ(read.content, "");
}

TYPED_TEST_P(WorkspaceContract, PathsWithSpacesAndUnicode) {
  const std::string name = "dir with space/f\xc3\xafle \xe2\x9c\x93.txt";
  const std::string source = this->local_ / "my source.txt";
  const std::string back = this->local_ / ("back dir/" + name);
  contract::write_local(source, "spaced");
  ASSERT_TRUE(this->ws_.file_upload(source, name).success);
  auto down = this->ws_.file_download(name, back);
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(contract::read_local(back), "spaced");
}

TYPED_TEST_P(WorkspaceContract, CreatesParentFoldersBothWays) {
  ASSERT_TRUE(this->ws_.file_write("a/b/c/d.txt", "deep").success);
  EXPECT_EQ(this->ws_.file_read(this->in_working_dir("a/b/c/d.txt")).content, "deep");
  const std::string back = this->local_ / "x/y/z/d.txt";
  ASSERT_TRUE(this->ws_.file_download("a/b/c/d.txt", back).success);
  EXPECT_EQ(contract::read_local(back), "deep");
}

TYPED_TEST_P(WorkspaceContract, OverwritesWholeFiles) {
  ASSERT_TRUE(this->ws_.file_write("over.txt", "a much longer first version").success);
  ASSERT_TRUE(this->ws_.file_write("over.txt", "short").success);
  EXPECT_EQ(this->ws_.file_read("over.txt").content, "short");
}

TYPED_TEST_P(WorkspaceContract, InMemoryRoundTrip) {
  const std::string data = contract::random_bytes(100000, 11) + std::string("\0end", 4);
  auto written = this->ws_.file_write("mem/blob", data);
  ASSERT_TRUE(written.success) << written.error.value_or("");
  EXPECT_EQ(written.file_size, data.size());
  EXPECT_EQ(written.destination_path, this->in_working_dir("mem/blob"));
  auto read = this->ws_.file_read("mem/blob");
  ASSERT_TRUE(read.success) << read.error.value_or("");
  EXPECT_EQ(read.path, this->in_working_dir("mem/blob"));
  EXPECT_TRUE(read.content == data);
}

TYPED_TEST_P(WorkspaceContract, ShellSeesUploadedFiles) {
  ASSERT_TRUE(this->ws_.file_write("seen/by shell.txt", "visible").success);
  auto r = this->run("cat 'seen/by shell.txt'", FakeResponse{.std_out = "visible"});
  EXPECT_EQ(r.std_out, "visible");
  if constexpr (TestFixture::runs_shell) {
    ASSERT_EQ(this->ws_.execute_command("printf made > made.txt").exit_code, 0);
    EXPECT_EQ(this->ws_.file_read("made.txt").content, "made");
  }
}

TYPED_TEST_P(WorkspaceContract, MissingSourcesFailNamingThePath) {
  auto up = this->ws_.file_upload(this->local_ / "does-not-exist", "never.txt");
  EXPECT_FALSE(up.success);
  ASSERT_TRUE(up.error);
  EXPECT_NE(up.error->find("does-not-exist"), std::string::npos) << *up.error;
  EXPECT_FALSE(this->ws_.file_read("never.txt").success);

  const std::string back = this->local_ / "never-downloaded";
  auto down = this->ws_.file_download("no-such-file.txt", back);
  EXPECT_FALSE(down.success);
  ASSERT_TRUE(down.error);
  EXPECT_NE(down.error->find("no-such-file.txt"), std::string::npos) << *down.error;
  EXPECT_FALSE(std::filesystem::exists(back));

  auto read = this->ws_.file_read("no-such-file.txt");
  EXPECT_FALSE(read.success);
  ASSERT_TRUE(read.error);
  EXPECT_NE(read.error->find("no-such-file.txt"), std::string::npos) << *read.error;
}

TYPED_TEST_P(WorkspaceContract, UnwritableDestinationsFailNamingThePath) {
  ASSERT_TRUE(this->ws_.file_write("plain-file", "x").success);
  auto under_file = this->ws_.file_write("plain-file/child.txt", "y");
  EXPECT_FALSE(under_file.success);
  ASSERT_TRUE(under_file.error);
  EXPECT_NE(under_file.error->find("plain-file"), std::string::npos) << *under_file.error;

  ASSERT_TRUE(this->ws_.file_write("a-dir/inside.txt", "x").success);
  auto onto_dir = this->ws_.file_write("a-dir", "y");
  EXPECT_FALSE(onto_dir.success);
  EXPECT_EQ(this->ws_.file_read("a-dir/inside.txt").content, "x");

  contract::write_local(this->local_ / "local-file", "x");
  auto down = this->ws_.file_download("plain-file", this->local_ / "local-file/child");
  EXPECT_FALSE(down.success);
  ASSERT_TRUE(down.error);
  EXPECT_NE(down.error->find("local-file"), std::string::npos) << *down.error;

  EXPECT_FALSE(this->ws_.file_read("a-dir").success);
  EXPECT_FALSE(this->ws_.file_write("", "x").success);
  EXPECT_FALSE(this->ws_.file_read("").success);
}

TYPED_TEST_P(WorkspaceContract, RelativeLocalPathsResolveAgainstTheProcessDirectory) {
  // Local paths are as the calling process sees them: relative ones against its current
  // directory, not against working_dir.
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(this->local_.path());
  struct Restore {
    std::filesystem::path dir;
    ~Restore() { std::filesystem::current_path(dir); }
  } restore{previous};
  contract::write_local("relative-source.txt", "relative");
  auto up = this->ws_.file_upload("relative-source.txt", "relative/uploaded.txt");
  ASSERT_TRUE(up.success) << up.error.value_or("");
  auto down = this->ws_.file_download("relative/uploaded.txt", "relative-back/downloaded.txt");
  ASSERT_TRUE(down.success) << down.error.value_or("");
  EXPECT_EQ(contract::read_local(this->local_ / "relative-back/downloaded.txt"), "relative");
}

TYPED_TEST_P(WorkspaceContract, WrittenFilesBelongToTheCommandsUser) {
  // Whoever commands run as can write in working_dir, and owns what file_write and file_upload
  // made there, parent folders included. Checked on the workspace the suite makes and, where
  // the type can run commands as a non-root user, on one that does.
  if constexpr (TestFixture::runs_shell) {
    this->expect_user_owns_its_files(this->ws_);
    if constexpr (requires { TestFixture::Traits::make_non_root(); }) {
      auto non_root = TestFixture::Traits::make_non_root();
      const std::string uid = this->expect_user_owns_its_files(non_root);
      EXPECT_NE(uid, "0") << "make_non_root() made a workspace whose commands run as root";
    }
  } else {
    ASSERT_TRUE(this->ws_.file_write("owned/by-user.txt", "mine").success);
    EXPECT_EQ(this->ws_.file_read("owned/by-user.txt").content, "mine");
  }
}

TYPED_TEST_P(WorkspaceContract, ProgressIsReportedAndCanCancel) {
  const std::string data = contract::random_bytes(5u << 20, 3);
  const std::string source = this->local_ / "progress.bin";
  contract::write_local(source, data);
  std::uint64_t last = 0;
  bool monotonic = true;
  TransferOptions watch;
  watch.on_progress = [&](std::uint64_t done, std::optional<std::uint64_t>) {
    monotonic = monotonic && done >= last;
    last = done;
    return true;
  };
  ASSERT_TRUE(this->ws_.file_upload(source, "progress.bin", watch).success);
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(last, data.size());

  TransferOptions cancel;
  cancel.on_progress = [](std::uint64_t, std::optional<std::uint64_t>) { return false; };
  auto up = this->ws_.file_upload(source, "cancelled.bin", cancel);
  EXPECT_FALSE(up.success);
  ASSERT_TRUE(up.error);
  EXPECT_NE(up.error->find("cancel"), std::string::npos) << *up.error;
  EXPECT_FALSE(this->ws_.file_read("cancelled.bin").success);

  const std::string back = this->local_ / "cancelled.back";
  auto down = this->ws_.file_download("progress.bin", back, cancel);
  EXPECT_FALSE(down.success);
  EXPECT_FALSE(std::filesystem::exists(back));
}

}  // namespace testing
WORKSPACE_NAMESPACE_END
