// Quickstart: run commands and move files in a LocalWorkspace.
//
// Everything here is written against the Workspace concept, so the same function runs unchanged
// on a DockerWorkspace, a RemoteWorkspace or a FakeWorkspace in a unit test.
#include <workspace/local.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <unistd.h>

using namespace std::chrono_literals;

template <workspace::Workspace W>
int tour(W& ws) {
  std::cout << "working_dir: " << ws.working_dir() << "\n\n";

  // 1. A command: stdout and stderr come back separately, with the exit code.
  auto hello = ws.execute_command("echo hello from $(uname -s); echo 'a warning' >&2; exit 3");
  std::cout << "exit_code=" << hello.exit_code << "\n  stdout: " << hello.std_out
            << "  stderr: " << hello.std_err << "\n";

  // 2. Options: working directory (relative to working_dir), environment, a timeout, and output
  //    streamed as it arrives.
  workspace::CommandOptions options;
  options.cwd = ".";
  options.env = {{"GREETING", "streamed"}};
  options.timeout = 5s;
  options.on_output = [](workspace::OutputStream stream, std::string_view chunk) {
    std::cout << (stream == workspace::OutputStream::std_out ? "  [out] " : "  [err] ") << chunk;
  };
  ws.execute_command("for i in 1 2 3; do echo \"$GREETING $i\"; sleep 0.1; done", options);

  // 3. A timeout kills the command and everything it started, and says so.
  workspace::CommandOptions quick;
  quick.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto slow = ws.execute_command("sleep 30 & sleep 30", quick);
  std::cout << "\ntimeout_occurred=" << std::boolalpha << slow.timeout_occurred << " after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms\n";

  // 4. Files: upload from this machine, download back, or write and read bytes in memory.
  const auto local = std::filesystem::temp_directory_path() /
                     ("quickstart-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(local) << "uploaded by quickstart\n";
  auto up = ws.file_upload(local.string(), "inbox/notes.txt");
  std::cout << "\nupload: success=" << up.success << " -> " << up.destination_path << " ("
            << up.file_size.value_or(0) << " bytes)\n";
  std::cout << "  the shell sees: " << ws.execute_command("cat inbox/notes.txt").std_out;

  ws.file_write("data/blob.bin", std::string("\0binary\xff", 8));
  auto back = ws.file_read("data/blob.bin");
  std::cout << "in-memory round trip: " << back.content.size() << " bytes\n";

  auto missing = ws.file_download("no/such/file", local.string() + ".out");
  std::cout << "a missing file is a result, not a crash: success=" << missing.success << ", "
            << missing.error.value_or("") << "\n";
  std::filesystem::remove(local);

  return hello.exit_code == 3 && slow.timeout_occurred && up.success && back.success &&
                 !missing.success
             ? 0
             : 1;
}

int main() {
  try {
    workspace::LocalWorkspace ws(std::filesystem::temp_directory_path() / "workspace-quickstart");
    return tour(ws);
  } catch (const workspace::Error& e) {
    std::cerr << "workspace error: " << e.what() << "\n";
    return 2;
  }
}
