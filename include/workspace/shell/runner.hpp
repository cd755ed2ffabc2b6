// The runner: a small POSIX-sh script that runs one command on a shell the back end does not own
// (the agent server's, a Daytona session's) and keeps what the back end would lose. Its stdout
// and stderr go to spool files, read live with ranged reads when the caller streams; it
// enforces the timeout itself with sub-second precision and kills by token; and it prints one
// last line the client decodes (shell/output.hpp; its own stderr is silenced, so back ends that
// merge the streams carry that line alone):
//
//   <base64 of stdout> "." <base64 of stderr> "." <status> " " <timed_out> " " <out bytes> " "
//   <err bytes> " " <mode> "\n"
//
// where mode is i (both outputs inline, spool removed), f (outputs left in the spool files, too
// big to inline), c (cwd missing) or d (the spool files could not be made). Base64 is ASCII,
// so a server's decoding cannot alter it, and '.' is outside its alphabet.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/shell/killer.hpp>
#include <workspace/version.hpp>

#include <chrono>
#include <map>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace shell {

// The runner, run by the server's /bin/sh after `set -- <arguments>`: $1 spool path prefix,
// $2 cwd, $3 timeout in seconds ("" for none), $4 inline limit in bytes (-1: never), $5 token,
// $6 command, $7 "env" when a variable name is not a shell name (so `export` cannot set it),
// $8 the seconds to keep the spool files after the end (the client may be reading them: a file
// removed under a range request breaks the server's response mid-body), $9 flags: "s" to run
// the command in a session of its own, "m" to make the cwd when it is missing (it is the
// workspace's working_dir, which every back end creates), then NAME=VALUE words for the
// command's environment.
//
// A session of its own (setsid, where the image has it) is for servers that signal the whole
// process group of the shell they started once the call ends (Daytona deletes a command's
// session so): a job the command left running in the background must outlive that. The
// watchdog finds the command's processes by token, not by group, so a timeout still kills all
// of them. Elsewhere it is not asked for, since it costs one more exec per command.
//
// Every program it starts costs milliseconds on the server, so it starts as few as it can: the
// command's own shell, `sleep` for the watchdog (in the background), and only when there is
// output, wc and base64; the spool files are removed in the background.
inline std::string runner_script() {
  return std::string(
             "d=$1 c=$2 t=$3 l=$4 k=$5 x=$6 e=$7 r=$8 f=$9; shift 9; exec 2>/dev/null; "
             "cd -- \"$c\" 2>/dev/null || { case $f in *m*) mkdir -p -- \"$c\" && cd -- \"$c\";; *) false;; esac; } || "
             "{ printf '..0 0 0 0 c\\n'; exit 0; }; "
             "( umask 077 && : >\"$d.o\" && : >\"$d.e\" ) || { printf '..0 0 0 0 d\\n'; exit 0; }; "
             "( WORKSPACE_EXEC_TOKEN=$k; export WORKSPACE_EXEC_TOKEN; "
             "S=; case $f in *s*) command -v setsid >/dev/null 2>&1 && S=setsid;; esac; "
             "if [ -n \"$e\" ]; then exec env -- \"$@\" $S /bin/sh -c \"$x\"; fi; "
             "for a do export \"$a\" || exit 125; done; exec $S /bin/sh -c \"$x\" ) </dev/null >\"$d.o\" 2>\"$d.e\" & "
             "p=$!; w=; "
             "if [ -n \"$t\" ]; then "
             "( sleep \"$t\" & z=$!; trap 'kill $z 2>/dev/null; exit 0' TERM; wait $z; : >\"$d.t\"; "
             "set -- \"$k\"; ") +
         exec_killer +
         " ) </dev/null >/dev/null 2>&1 & w=$!; fi; "
         "wait \"$p\"; s=$?; "
         "if [ -n \"$w\" ]; then if [ -e \"$d.t\" ]; then wait \"$w\"; else kill \"$w\" 2>/dev/null; fi; fi; "
         "to=0; [ -e \"$d.t\" ] && to=1; "
         "if [ ! -s \"$d.o\" ] && [ ! -s \"$d.e\" ]; then printf '..%s %s 0 0 i\\n' \"$s\" \"$to\"; "
         "( [ \"$r\" -gt 0 ] && sleep \"$r\"; rm -f -- \"$d.o\" \"$d.e\" \"$d.t\" ) </dev/null >/dev/null 2>&1 & exit 0; fi; "
         "set -- $(wc -c <\"$d.o\") $(wc -c <\"$d.e\"); "
         "command -v base64 >/dev/null 2>&1 || l=-1; "
         "if [ \"$l\" -ge 0 ] && [ $(($1 + $2)) -le \"$l\" ]; then "
         "[ \"$1\" -gt 0 ] && base64 <\"$d.o\"; printf .; [ \"$2\" -gt 0 ] && base64 <\"$d.e\"; "
         "printf '.%s %s %s %s i\\n' \"$s\" \"$to\" \"$1\" \"$2\"; "
         "( [ \"$r\" -gt 0 ] && sleep \"$r\"; rm -f -- \"$d.o\" \"$d.e\" \"$d.t\" ) </dev/null >/dev/null 2>&1 & "
         "else printf '..%s %s %s %s f\\n' \"$s\" \"$to\" \"$1\" \"$2\"; fi; exit 0";
}

inline bool is_shell_name(std::string_view name) noexcept {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// A timeout as the runner's `sleep` argument: seconds with millisecond precision.
inline std::string seconds_text(std::chrono::milliseconds timeout) {
  const auto ms = timeout.count();
  std::string fraction = std::to_string(ms % 1000);
  while (fraction.size() < 3) fraction.insert(fraction.begin(), '0');
  return std::to_string(ms / 1000) + "." + fraction;
}

// What one run of the runner is told.
struct RunnerArgs {
  std::string spool;               // path prefix of the spool files (.o, .e, .t)
  std::string cwd;
  std::chrono::milliseconds timeout = no_timeout;
  long long inline_limit = 256 * 1024;  // -1: never inline the output
  std::string token;
  std::string command;
  const std::map<std::string, std::string>* environment = nullptr;
  int keep_spool_seconds = 0;
  bool new_session = false;
  bool make_cwd = false;
};

// The whole command line for the server's /bin/sh.
inline std::string runner_command(const RunnerArgs& a) {
  static const std::string script = runner_script();
  static const std::map<std::string, std::string> none;
  const auto& env = a.environment ? *a.environment : none;
  bool needs_env = false;
  for (const auto& entry : env) needs_env = needs_env || !is_shell_name(entry.first);
  std::string flags = std::string(a.new_session ? "s" : "") + (a.make_cwd ? "m" : "");
  std::string line = "set -- " + shell_quote(a.spool) + ' ' + shell_quote(a.cwd) + ' ' +
                     shell_quote(a.timeout == no_timeout ? std::string() : seconds_text(a.timeout)) + ' ' +
                     std::to_string(a.inline_limit) + ' ' + a.token + ' ' + shell_quote(a.command) +
                     (needs_env ? " env" : " ''") + ' ' + std::to_string(a.keep_spool_seconds) + ' ' +
                     (flags.empty() ? std::string("''") : flags);
  for (const auto& [name, value] : env) line += ' ' + shell_quote(name + "=" + value);
  return line + "; " + script;
}

// Removes a command's spool files, first killing its processes by token when `kill`.
inline std::string cleanup_command(const std::string& spool, const std::string& token, bool kill) {
    std::string line = "rm -f -- " + shell_quote(spool + ".o") + ' ' + shell_quote(spool + ".e") + ' ' +
                     shell_quote(spool + ".t");
  if (kill) line = "/bin/sh -c " + shell_quote(exec_killer) + " workspace-kill " + token + "; " + line;
  return line;
}

}  // namespace shell
WORKSPACE_NAMESPACE_END
