// Docker's multiplexed exec/attach stream (Tty false): frames of an 8-byte header
// [type, 0, 0, 0, size as uint32 big-endian] followed by `size` bytes. Type 0 is stdin echoed to
// stdout, 1 stdout, 2 stderr, 3 an error from the daemon. Frames split anywhere across reads.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/version.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace docker::detail {

class Demultiplexer {
 public:
  enum class Stream { std_out, std_err, system_error };

  // Feeds received bytes; calls on_data(Stream, std::string_view) for each piece of payload.
  template <class OnData>
  void feed(std::string_view data, OnData&& on_data) {
    while (!data.empty()) {
      if (remaining_ == 0) {
        const std::size_t take = std::min(data.size(), sizeof header_ - header_size_);
        for (std::size_t i = 0; i < take; ++i) header_[header_size_ + i] = static_cast<unsigned char>(data[i]);
        header_size_ += take;
        data.remove_prefix(take);
        if (header_size_ < sizeof header_) return;
        header_size_ = 0;
        if (header_[0] > 3 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0)
          throw Error(errc::protocol_error, "docker: malformed frame header in the exec stream");
        type_ = header_[0] == 2 ? Stream::std_err : header_[0] == 3 ? Stream::system_error : Stream::std_out;
        remaining_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                     (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
        continue;
      }
      const std::size_t take = std::min<std::size_t>(data.size(), remaining_);
      remaining_ -= static_cast<std::uint32_t>(take);
      on_data(type_, data.substr(0, take));
      data.remove_prefix(take);
    }
  }

  // True when the stream ended on a frame boundary.
  bool at_boundary() const noexcept { return remaining_ == 0 && header_size_ == 0; }

 private:
  unsigned char header_[8]{};
  std::size_t header_size_ = 0;
  std::uint32_t remaining_ = 0;
  Stream type_ = Stream::std_out;
};

}  // namespace docker::detail
WORKSPACE_NAMESPACE_END
