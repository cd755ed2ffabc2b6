// The exit status a command's wrapper shell writes to stderr when the command ends, taken out of
// the stream: the frame is "<prefix><decimal status>\x01", with a prefix random per command, so
// the daemon need not be asked for the exit code, and the end is known even while a background
// job still holds the output open. Bytes that might begin the frame are held back until they
// prove not to be it, so no part of it reaches the caller's stderr or on_output.
#pragma once

#include <workspace/version.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN
namespace docker::detail {

class ExitMarker {
 public:
  explicit ExitMarker(std::string prefix) : prefix_(std::move(prefix)) {}

  const std::string& prefix() const noexcept { return prefix_; }
  // The status, once the frame has passed.
  const std::optional<int>& status() const noexcept { return status_; }

  // Passes stderr bytes on to `out(std::string_view)`, without the frame.
  template <class Out>
  void feed(std::string_view data, Out&& out) {
    if (status_) {
      out(data);
      return;
    }
    held_.append(data);
    for (;;) {
      const std::size_t at = held_.find(prefix_);
      if (at == std::string::npos) break;
      std::size_t end = at + prefix_.size();
      while (end < held_.size() && end - at - prefix_.size() < 4 && held_[end] >= '0' && held_[end] <= '9') ++end;
      if (end == held_.size()) {  // the frame may still be arriving
        pass(at, out);
        return;
      }
      const std::size_t digits = end - at - prefix_.size();
      if (held_[end] == '\x01' && digits > 0 && digits <= 3) {
        status_ = std::stoi(held_.substr(at + prefix_.size(), digits));
        if (at > 0) out(std::string_view(held_).substr(0, at));
        if (end + 1 < held_.size()) out(std::string_view(held_).substr(end + 1));
        held_.clear();
        return;
      }
      pass(at + 1, out);  // looked like the frame, was not
    }
    // Keep the longest tail that could begin the frame.
    std::size_t keep = std::min(held_.size(), prefix_.size() - 1);
    while (keep > 0 && std::string_view(held_).substr(held_.size() - keep) != std::string_view(prefix_).substr(0, keep))
      --keep;
    pass(held_.size() - keep, out);
  }

  // The stream ended: whatever was held back was the command's own.
  template <class Out>
  void finish(Out&& out) {
    if (!held_.empty()) out(std::string_view(held_));
    held_.clear();
  }

 private:
  template <class Out>
  void pass(std::size_t n, Out& out) {
    if (n == 0) return;
    out(std::string_view(held_).substr(0, n));
    held_.erase(0, n);
  }

  std::string prefix_;
  std::string held_;
  std::optional<int> status_;
};

}  // namespace docker::detail
WORKSPACE_NAMESPACE_END
