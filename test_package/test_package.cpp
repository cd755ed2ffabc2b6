// Code written against the Workspace concept, run on a LocalWorkspace in a fresh folder; the
// umbrella header checks that every header compiles with the packaged dependencies.
#include <workspace/workspace.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

template <workspace::Workspace W>
bool exercise(W& ws) {
  const auto hello = ws.execute_command("printf hello");
  if (!hello.ok() || hello.std_out != "hello") return false;
  if (!ws.file_write("dir/file.txt", "packaged\n").success) return false;
  return ws.file_read("dir/file.txt").content == "packaged\n";
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  std::string folder = (fs::temp_directory_path() / "workspace-test-package-XXXXXX").string();
  if (::mkdtemp(folder.data()) == nullptr) return 1;
  bool ok = false;
  {
    workspace::AnyWorkspace ws(workspace::LocalWorkspace{folder});
    ok = exercise(ws);
  }
  fs::remove_all(folder);
  std::printf("workspace %s test package: %s\n", WORKSPACE_VERSION_STRING, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
