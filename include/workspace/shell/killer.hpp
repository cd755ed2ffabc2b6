// What every back end that runs commands through a shell it does not own needs to find and kill
// them again: a word quoted for /bin/sh, a random per-command token, and the killer, a shell
// snippet that kills every process carrying the token in its environment.
#pragma once

#include <workspace/core/detail/random.hpp>
#include <workspace/version.hpp>

#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace shell {

// A word for /bin/sh, whatever it holds: '...' with each ' written as '\''.
inline std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  out += '\'';
  return out;
}

// 128 random bits as 32 hex digits: names a command's token and its spool folder.
inline std::string random_token() {
  static constexpr char digits[] = "0123456789abcdef";
  unsigned char bytes[16];
  workspace::detail::random_fill(bytes, sizeof bytes);
  std::string out;
  for (const unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15u];
  }
  return out;
}

// The environment variable that marks every process of one command.
inline constexpr std::string_view exec_token_variable = "WORKSPACE_EXEC_TOKEN";

// Kills every process that carries the token $1 in its environment: the command, its children,
// and daemons it started (they inherit the environment even when they leave the process
// group). A grep with -z (GNU) reads every environ file in one run; without it (busybox) each
// file is read on its own, which costs two processes per process. Repeated while it finds
// something, for processes forked meanwhile.
inline constexpr const char* exec_killer =
    "t=\"WORKSPACE_EXEC_TOKEN=$1\"; z=; printf 'x\\0' | grep -qzx x 2>/dev/null && z=1; i=0; "
    "while [ $i -lt 5 ]; do i=$((i+1)); found=; "
    "if [ -n \"$z\" ]; then l=$(grep -slzx -- \"$t\" /proc/[0-9]*/environ 2>/dev/null); "
    "else l=; for d in /proc/[0-9]*; do "
    "{ tr '\\0' '\\n' <\"$d/environ\" | grep -qx -- \"$t\"; } 2>/dev/null && l=\"$l $d/environ\"; done; fi; "
    "for f in $l; do q=${f#/proc/}; q=${q%/environ}; [ \"$q\" = \"$$\" ] && continue; "
    "kill -9 \"$q\" 2>/dev/null && found=1; done; [ -z \"$found\" ] && break; done; :";

}  // namespace shell
WORKSPACE_NAMESPACE_END
