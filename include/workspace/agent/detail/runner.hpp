// How RemoteWorkspace runs a command on the agent server without the server's output handling.
//
// The agent server decodes output as UTF-8 with replacement per 8 KiB read (corrupting binary
// output and characters split across reads) and reports output only per MiB or at the end. So
// the command does not write to the server at all: a small runner script sends its stdout and
// stderr to spool files (read live with HTTP range requests when the caller streams), enforces
// the timeout itself with sub-second precision, kills by environment token, and finally prints
// one line the client decodes (its own stderr is silenced, so back ends that merge the streams,
// like Daytona's session logs, carry that line alone):
//
//   <base64 of stdout> "." <base64 of stderr> "." <status> " " <timed_out> " " <out bytes> " "
//   <err bytes> " " <mode> "\n"
//
// where mode is i (both outputs inline, spool removed), f (outputs left in the spool files, too
// big to inline), c (cwd missing) or d (the spool files could not be made). Base64 is ASCII,
// so the server's decoding cannot alter it, and '.' is outside its alphabet.
#pragma once

#include <workspace/core/detail/shell.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/version.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace agent::detail {

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
         workspace::detail::exec_killer +
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

// The whole command line for the server's /bin/sh.
inline std::string runner_command(const std::string& spool, const std::string& cwd,
                                  const std::string& timeout_seconds, long long inline_limit,
                                  const std::string& token, const std::string& command,
                                  const std::map<std::string, std::string>& env, int keep_spool_seconds = 0,
                                  bool new_session = false, bool make_cwd = false) {
  using workspace::detail::shell_quote;
  static const std::string script = runner_script();
  bool needs_env = false;
  for (const auto& entry : env) needs_env = needs_env || !is_shell_name(entry.first);
  std::string line = "set -- " + shell_quote(spool) + ' ' + shell_quote(cwd) + ' ' +
                     shell_quote(timeout_seconds) + ' ' + std::to_string(inline_limit) + ' ' + token + ' ' +
                     shell_quote(command) + (needs_env ? " env" : " ''") + ' ' + std::to_string(keep_spool_seconds) +
                     (new_session || make_cwd ? std::string(" ") + (new_session ? "s" : "") + (make_cwd ? "m" : "")
                                              : std::string(" ''"));
  for (const auto& [name, value] : env) line += ' ' + shell_quote(name + "=" + value);
  return line + "; " + script;
}

// Removes a command's spool files, first killing its processes by token when `kill`.
inline std::string cleanup_command(const std::string& spool, const std::string& token, bool kill) {
  using workspace::detail::shell_quote;
  std::string line = "rm -f -- " + shell_quote(spool + ".o") + ' ' + shell_quote(spool + ".e") + ' ' +
                     shell_quote(spool + ".t");
  if (kill) line = "/bin/sh -c " + shell_quote(workspace::detail::exec_killer) + " workspace-kill " + token + "; " + line;
  return line;
}

// A timeout as the runner's `sleep` argument: seconds with millisecond precision.
inline std::string seconds_text(std::chrono::milliseconds timeout) {
  const auto ms = timeout.count();
  std::string fraction = std::to_string(ms % 1000);
  while (fraction.size() < 3) fraction.insert(fraction.begin(), '0');
  return std::to_string(ms / 1000) + "." + fraction;
}

// Decodes base64 as it arrives, skipping line breaks.
class Base64Decoder {
 public:
  template <class Sink>
  void feed(std::string_view text, Sink&& sink) {
    char out[3 * 256];
    std::size_t n = 0;
    for (char c : text) {
      if (c == '\n' || c == '\r' || c == ' ') continue;
      if (c == '=') {
        ++padding_;
        continue;
      }
      const int v = value(c);
      if (v < 0 || padding_ > 0) throw Error(errc::protocol_error, "agent server: corrupt command output (base64)");
      bits_ = (bits_ << 6) | static_cast<std::uint32_t>(v);
      if (++count_ == 4) {
        out[n++] = static_cast<char>((bits_ >> 16) & 0xff);
        out[n++] = static_cast<char>((bits_ >> 8) & 0xff);
        out[n++] = static_cast<char>(bits_ & 0xff);
        count_ = 0;
        bits_ = 0;
        if (n == sizeof out) {
          sink(std::string_view(out, n));
          n = 0;
        }
      }
    }
    if (n) sink(std::string_view(out, n));
  }

  // The bytes held back by a final group that padding shortened.
  template <class Sink>
  void finish(Sink&& sink) {
    if (count_ + padding_ != 0 && count_ + padding_ != 4)
      throw Error(errc::protocol_error, "agent server: truncated command output (base64)");
    char out[2];
    if (count_ == 2) {
      out[0] = static_cast<char>((bits_ >> 4) & 0xff);
      sink(std::string_view(out, 1));
    } else if (count_ == 3) {
      out[0] = static_cast<char>((bits_ >> 10) & 0xff);
      out[1] = static_cast<char>((bits_ >> 2) & 0xff);
      sink(std::string_view(out, 2));
    }
    count_ = padding_ = 0;
    bits_ = 0;
  }

 private:
  static int value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  }

  std::uint32_t bits_ = 0;
  int count_ = 0;
  int padding_ = 0;
};

// What the runner's last line says.
struct RunnerTrailer {
  int status = 0;
  bool timed_out = false;
  std::uint64_t out_size = 0;
  std::uint64_t err_size = 0;
  char mode = 0;  // 'i', 'f', 'c' or 'd'
};

// Parses the runner's stdout as it arrives. Decoded bytes go to the sink with their stream and
// the offset of their first byte in that stream.
class RunnerOutput {
 public:
  using Sink = std::function<void(OutputStream, std::uint64_t offset, std::string_view)>;

  explicit RunnerOutput(Sink sink) : sink_(std::move(sink)) {}

  void feed(std::string_view text) {
    while (!text.empty()) {
      if (part_ == 2) {
        trailer_text_.append(text);
        if (trailer_text_.size() > 256) throw Error(errc::protocol_error, "agent server: corrupt runner trailer");
        return;
      }
      const auto dot = text.find('.');
      decode(text.substr(0, dot));
      if (dot == std::string_view::npos) return;
      finish_part();
      text.remove_prefix(dot + 1);
    }
  }

  // The trailer, once the whole line arrived.
  std::optional<RunnerTrailer> trailer() const {
    const auto end = trailer_text_.find('\n');
    if (part_ != 2 || end == std::string::npos) return std::nullopt;
    RunnerTrailer t;
    char mode = 0;
    int timed_out = 0;
    unsigned long long out = 0, err = 0;
    if (std::sscanf(trailer_text_.c_str(), "%d %d %llu %llu %c", &t.status, &timed_out, &out, &err, &mode) != 5 ||
        (mode != 'i' && mode != 'f' && mode != 'c' && mode != 'd'))
      throw Error(errc::protocol_error, "agent server: corrupt runner trailer");
    t.timed_out = timed_out != 0;
    t.out_size = out;
    t.err_size = err;
    t.mode = mode;
    return t;
  }

 private:
  OutputStream stream() const { return part_ == 0 ? OutputStream::std_out : OutputStream::std_err; }

  void decode(std::string_view text) {
    decoder_.feed(text, [&](std::string_view bytes) { emit(bytes); });
  }

  void finish_part() {
    decoder_.finish([&](std::string_view bytes) { emit(bytes); });
    ++part_;
  }

  void emit(std::string_view bytes) {
    auto& offset = offsets_[static_cast<std::size_t>(part_)];
    sink_(stream(), offset, bytes);
    offset += bytes.size();
  }

  Sink sink_;
  Base64Decoder decoder_;
  int part_ = 0;  // 0 stdout, 1 stderr, 2 trailer
  std::array<std::uint64_t, 2> offsets_{};
  std::string trailer_text_;
};

// The result of one command, built from output that arrives from overlapping sources (live
// spool reads, the runner's inline copy, the final spool read): each byte is taken once, in
// order, and passed to the caller's callback as it is taken.
class ResultBuilder {
 public:
  ResultBuilder(std::string command, const std::function<void(OutputStream, std::string_view)>& on_output)
      : on_output_(on_output) {
    result_.command = std::move(command);
  }

  const std::string& command() const noexcept { return result_.command; }
  std::uint64_t taken(OutputStream s) const noexcept { return taken_[index(s)]; }

  // `bytes` at `offset` of stream `s`: what was not taken yet is appended.
  void take(OutputStream s, std::uint64_t offset, std::string_view bytes) {
    auto& have = taken_[index(s)];
    const std::uint64_t end = offset + bytes.size();
    if (end <= have) return;
    if (offset < have) bytes.remove_prefix(static_cast<std::size_t>(have - offset));
    else if (offset > have) throw Error(errc::protocol_error, "a gap in the command's output");
    (s == OutputStream::std_out ? result_.std_out : result_.std_err).append(bytes);
    have = end;
    if (on_output_) on_output_(s, bytes);
  }

  CommandResult timed_out() && {
    result_.timeout_occurred = true;
    result_.exit_code = -1;
    return std::move(result_);
  }

  // The shell reports a signal death as 128 + signal; codes in that range read as signals.
  CommandResult finish(const RunnerTrailer& trailer) && {
    if (trailer.timed_out) return std::move(*this).timed_out();
    result_.exit_code = trailer.status;
    if (trailer.status > 128 && trailer.status < 128 + 65) result_.signal = trailer.status - 128;
    return std::move(result_);
  }

 private:
  static std::size_t index(OutputStream s) noexcept { return s == OutputStream::std_out ? 0 : 1; }

  const std::function<void(OutputStream, std::string_view)>& on_output_;
  CommandResult result_;
  std::array<std::uint64_t, 2> taken_{};
};

}  // namespace agent::detail
WORKSPACE_NAMESPACE_END
