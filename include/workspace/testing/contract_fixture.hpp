// The contract suite's fixture: ContractTraits<W> (what a workspace type tells the suite), the
// WorkspaceContract test class, and the helpers its tests share. See contract.hpp.
#pragma once

#include <gtest/gtest.h>

#include <workspace/core.hpp>
#include <workspace/testing/fake_workspace.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

WORKSPACE_NAMESPACE_BEGIN
namespace testing {

template <class W>
struct ContractTraits;  // specialise for each workspace type

template <>
struct ContractTraits<FakeWorkspace> {
  static FakeWorkspace make() { return FakeWorkspace("/home/user/project"); }
  static constexpr bool runs_shell = false;
  static constexpr std::chrono::milliseconds timeout_grace{250};
  static void script(FakeWorkspace& w, const std::string& command, FakeWorkspace::Handler h) {
    w.on(command, std::move(h));
  }
};

namespace contract {

// A folder on the local side for sources and destinations of transfers, removed afterwards.
class LocalScratch {
 public:
  LocalScratch() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("workspace-contract-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter.fetch_add(1)));
    std::filesystem::create_directories(path_);
  }
  ~LocalScratch() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  LocalScratch(const LocalScratch&) = delete;
  LocalScratch& operator=(const LocalScratch&) = delete;

  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A folder of this process under the temporary directory, removed with all in it when the
// process ends: where a ContractTraits<W>::make() of a local kind puts its working dirs, so that
// the suite leaves nothing behind.
inline std::filesystem::path process_scratch(const std::string& prefix) {
  struct Root {
    std::filesystem::path path;
    ~Root() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Root root{std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()))};
  return root.path;
}

inline void write_local(const std::string& path, const std::string& content) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

inline std::string read_local(const std::string& path) {
  return workspace::detail::read_file(path).content;
}

inline std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 engine(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(engine() & 0xff);
  return out;
}

// What `yes <line> | head -c <size>` prints.
inline std::string repeated_lines(const std::string& line, std::size_t size) {
  std::string out;
  out.reserve(size + line.size() + 1);
  while (out.size() < size) {
    out += line;
    out += '\n';
  }
  out.resize(size);
  return out;
}

inline FakeWorkspace::Handler respond(FakeResponse response) {
  return [response = std::move(response)](const FakeCall&) { return response; };
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace contract

template <class W>
class WorkspaceContract : public ::testing::Test {
 protected:
  using Traits = ContractTraits<W>;
  static constexpr bool runs_shell = Traits::runs_shell;

  WorkspaceContract() : ws_(Traits::make()) {}

  // Runs `command`, first teaching a scripted workspace what it does.
  CommandResult run(const std::string& command, FakeWorkspace::Handler does,
                    const CommandOptions& options = {}) {
    if constexpr (!runs_shell) Traits::script(ws_, command, std::move(does));
    return ws_.execute_command(command, options);
  }
  CommandResult run(const std::string& command, FakeResponse does,
                    const CommandOptions& options = {}) {
    return run(command, contract::respond(std::move(does)), options);
  }

  // The workspace path a relative path resolves to.
  std::string in_working_dir(const std::string& relative) const {
    std::string dir(ws_.working_dir());
    return dir == "/" ? "/" + relative : dir + "/" + relative;
  }

  // Pids of processes still alive (not zombies) among `pids`, asked inside the workspace and
  // retried for a while: killed processes take a moment to be reaped.
  std::string alive_among(const std::vector<std::string>& pids) {
    std::string list;
    for (const auto& pid : pids) list += pid + " ";
    const std::string probe =
        "for p in " + list +
        "; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); case \"$s\" in ''|Z|X) ;; "
        "*) printf '%s ' $p;; esac; done";
    std::string alive;
    for (int attempt = 0; attempt < 40; ++attempt) {
      alive = ws_.execute_command(probe).std_out;
      if (alive.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return alive;
  }

  // Checks, on `w`, that the commands' user can write in working_dir and owns what the file
  // calls wrote (and the folders they made); returns that user's uid.
  template <class Any>
  std::string expect_user_owns_its_files(Any& w) {
    auto id = w.execute_command("id -u");
    EXPECT_EQ(id.exit_code, 0) << id.std_err;
    std::string uid = id.std_out;
    while (!uid.empty() && (uid.back() == '\n' || uid.back() == '\r')) uid.pop_back();
    auto touch = w.execute_command("touch made-by-user && rm made-by-user");
    EXPECT_EQ(touch.exit_code, 0) << "the user cannot write in working_dir: " << touch.std_err;
    const std::string source = local_ / "to-upload.txt";
    contract::write_local(source, "uploaded");
    auto up = w.file_upload(source, "owned/uploaded.txt");
    EXPECT_TRUE(up.success) << up.error.value_or("");
    auto written = w.file_write("owned/new folder/written.txt", "written");
    EXPECT_TRUE(written.success) << written.error.value_or("");
    auto owners = w.execute_command(
        "stat -c %u owned/uploaded.txt 'owned/new folder/written.txt' 'owned/new folder' owned");
    EXPECT_EQ(owners.exit_code, 0) << owners.std_err;
    EXPECT_EQ(owners.std_out, uid + "\n" + uid + "\n" + uid + "\n" + uid + "\n")
        << "files written for user " << uid << " belong to someone else";
    auto inside = w.execute_command("touch 'owned/new folder/by-command' && echo x >> owned/uploaded.txt");
    EXPECT_EQ(inside.exit_code, 0) << "the user cannot write in the folders uploads made: " << inside.std_err;
    return uid;
  }

  // A timed-out call must return within the workspace's grace of its deadline.
  static void expect_prompt_return(double elapsed, std::chrono::milliseconds timeout) {
    EXPECT_LT(elapsed, std::chrono::duration<double>(timeout + Traits::timeout_grace).count())
        << "the call returned too long after its deadline";
  }

  W ws_;
  contract::LocalScratch local_;
};

TYPED_TEST_SUITE_P(WorkspaceContract);

}  // namespace testing
WORKSPACE_NAMESPACE_END
