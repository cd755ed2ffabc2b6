// The program both consumer projects build (against the installed package, and against the
// source tree through add_subdirectory): generic code written against the Workspace concept, run
// on a LocalWorkspace in a fresh temporary folder. Exits non-zero on any mismatch.
#include <workspace/local.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

namespace {

template <workspace::Workspace W>
bool exercise(W& ws) {
  const workspace::CommandResult hello = ws.execute_command("printf hello");
  if (hello.exit_code != 0 || hello.timeout_occurred || hello.std_out != "hello" ||
      !hello.std_err.empty()) {
    std::fprintf(stderr, "printf hello: exit %d, stdout '%s', stderr '%s'\n", hello.exit_code,
                 hello.std_out.c_str(), hello.std_err.c_str());
    return false;
  }

  const std::string content = "consumer\nsecond line\n";
  const workspace::FileOperationResult written = ws.file_write("sub/dir/file.txt", content);
  if (!written.success) {
    std::fprintf(stderr, "file_write: %s\n", written.error.value_or("(no error)").c_str());
    return false;
  }
  const workspace::FileReadResult read = ws.file_read("sub/dir/file.txt");
  if (!read.success || read.content != content) {
    std::fprintf(stderr, "file_read: success %d, content '%s', error %s\n", read.success,
                 read.content.c_str(), read.error.value_or("(none)").c_str());
    return false;
  }
  // The command and the file operations see the same working directory.
  const workspace::CommandResult cat = ws.execute_command("cat sub/dir/file.txt");
  if (cat.exit_code != 0 || cat.std_out != content) {
    std::fprintf(stderr, "cat: exit %d, stdout '%s'\n", cat.exit_code, cat.std_out.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  std::string folder = (fs::temp_directory_path() / "workspace-consumer-XXXXXX").string();
  if (::mkdtemp(folder.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  bool ok = false;
  try {
    workspace::LocalWorkspace ws(fs::path(folder) / "ws");
    ok = exercise(ws);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception: %s\n", e.what());
  }
  std::error_code ec;
  fs::remove_all(folder, ec);
  std::printf("workspace %d.%d.%d consumer: %s\n", workspace::version.major,
              workspace::version.minor, workspace::version.patch, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
