// Decoding what the runner (shell/runner.hpp) prints, and building the command's result from
// output that arrives from overlapping sources.
#pragma once

#include <workspace/core/detail/base64.hpp>
#include <workspace/core/error.hpp>
#include <workspace/core/options.hpp>
#include <workspace/core/results.hpp>
#include <workspace/version.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace shell {

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
        if (trailer_text_.size() > 256) throw Error(errc::protocol_error, "corrupt runner trailer");
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
      throw Error(errc::protocol_error, "corrupt runner trailer");
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
  workspace::detail::Base64Decoder decoder_;
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
    workspace::detail::set_shell_status(result_, trailer.status);
    return std::move(result_);
  }

 private:
  static std::size_t index(OutputStream s) noexcept { return s == OutputStream::std_out ? 0 : 1; }

  const std::function<void(OutputStream, std::string_view)>& on_output_;
  CommandResult result_;
  std::array<std::uint64_t, 2> taken_{};
};

}  // namespace shell
WORKSPACE_NAMESPACE_END
