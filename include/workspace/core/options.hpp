// Options for commands and transfers.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/version.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN

enum class OutputStream { std_out, std_err };

// What a workspace does on destruction with the container, runtime or sandbox it created (never
// with one it attached to): remove it (delete, or stop a runtime, which ends it), stop it, pause
// it, or keep it running. Each type says which it supports.
enum class OnClose { remove, stop, pause, keep };

struct CommandOptions {
  // Where the command runs. Relative paths resolve against the workspace's working_dir, which
  // is also the default; a directory that does not exist is an Error naming it.
  std::optional<std::string> cwd{};
  // The whole command, including its background children, is killed when this passes. Must be
  // positive; sub-second values work; no_timeout disables it.
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  // Added to (or overriding) the workspace's environment for this command only.
  std::map<std::string, std::string> env{};
  // Receives output as it arrives, in order per stream; chunk boundaries are arbitrary (a
  // multi-byte character may span two chunks). The result still holds all of it. Called on the
  // thread that called execute_command; an exception thrown here kills the command and
  // propagates.
  std::function<void(OutputStream, std::string_view)> on_output{};
};

struct TransferOptions {
  // Called as bytes move: (bytes so far, total if known). Return false to cancel; the transfer
  // then fails with an error saying so and leaves no partial destination file.
  std::function<bool(std::uint64_t, std::optional<std::uint64_t>)> on_progress{};
};

WORKSPACE_NAMESPACE_END
