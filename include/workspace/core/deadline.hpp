// Deadline: when a piece of work must be over, made once and handed down to every wait it
// involves (a command's timeout bounds each HTTP call the command makes), and no_timeout, the one
// spelling of "none" for every duration the library takes.
#pragma once

#include <workspace/version.hpp>

#include <algorithm>
#include <chrono>

WORKSPACE_NAMESPACE_BEGIN

// A duration meaning "never": no deadline is armed.
inline constexpr std::chrono::milliseconds no_timeout = std::chrono::milliseconds::max();

class Deadline {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  // None: never passes.
  constexpr Deadline() noexcept = default;
  static constexpr Deadline none() noexcept { return {}; }
  static constexpr Deadline at(time_point when) noexcept { return Deadline(when); }
  // `duration` from now; no_timeout (or anything that would overflow the clock) is none.
  static Deadline after(std::chrono::milliseconds duration) noexcept {
    if (duration == no_timeout) return none();
    const auto now = clock::now();
    if (duration >= std::chrono::duration_cast<std::chrono::milliseconds>(time_point::max() - now)) return none();
    return Deadline(now + duration);
  }

  constexpr bool is_none() const noexcept { return when_ == time_point::max(); }
  // The instant; time_point::max() for none.
  constexpr time_point when() const noexcept { return when_; }
  bool passed() const noexcept { return !is_none() && clock::now() >= when_; }
  // What is left, never negative; no_timeout for none.
  std::chrono::milliseconds remaining() const noexcept {
    if (is_none()) return no_timeout;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(when_ - clock::now());
    return std::max(left, std::chrono::milliseconds(0));
  }
  // The sooner of the two.
  constexpr Deadline min(Deadline other) const noexcept { return when_ <= other.when_ ? *this : other; }
  // This deadline moved later by `extra` (none stays none).
  constexpr Deadline plus(std::chrono::milliseconds extra) const noexcept {
    if (is_none() || extra == no_timeout || when_ >= time_point::max() - extra) return none();
    return Deadline(when_ + extra);
  }

  friend constexpr bool operator==(const Deadline&, const Deadline&) = default;

 private:
  constexpr explicit Deadline(time_point when) noexcept : when_(when) {}
  time_point when_ = time_point::max();
};

WORKSPACE_NAMESPACE_END
