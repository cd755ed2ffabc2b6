// Requests, responses and their headers.
#pragma once

#include <workspace/core/deadline.hpp>
#include <workspace/http/url.hpp>
#include <workspace/version.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

// Header fields in the order they were added; names compare case-insensitively.
class Headers {
 public:
  using Field = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Field> fields) : fields_(fields) {}

  // Adds a field even if one of that name exists (Set-Cookie may repeat).
  void add(std::string name, std::string value) {
    fields_.emplace_back(std::move(name), std::move(value));
  }

  // Replaces every field of that name with one.
  void set(std::string_view name, std::string value) {
    erase(name);
    fields_.emplace_back(std::string(name), std::move(value));
  }

  void erase(std::string_view name) {
    std::erase_if(fields_, [&](const Field& f) { return detail::iequals(f.first, name); });
  }

  const std::string* find(std::string_view name) const noexcept {
    for (const auto& f : fields_)
      if (detail::iequals(f.first, name)) return &f.second;
    return nullptr;
  }

  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

  // The value, or an empty string when absent.
  std::string get(std::string_view name) const {
    const auto* v = find(name);
    return v ? *v : std::string();
  }

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  auto begin() const noexcept { return fields_.begin(); }
  auto end() const noexcept { return fields_.end(); }
  void clear() noexcept { fields_.clear(); }

 private:
  std::vector<Field> fields_;
};

// Header names whose values are credentials: never printed in an error or a log line.
inline bool is_secret_header(std::string_view name) noexcept {
  for (std::string_view secret : {"authorization", "proxy-authorization", "x-api-key",
                                  "x-session-api-key", "cookie", "set-cookie", "x-daytona-token"})
    if (detail::iequals(name, secret)) return true;
  return false;
}

// Writes up to `capacity` bytes of a streamed request body into `buffer` and returns how many;
// 0 means the body is complete. Throwing aborts the request.
using BodySource = std::function<std::size_t(char* buffer, std::size_t capacity)>;

// Receives response body bytes as they arrive; returning false cancels the request.
using BodySink = std::function<bool(std::string_view)>;

// Bytes done so far and the total when known; returning false cancels the request.
using Progress = std::function<bool(std::uint64_t done, std::optional<std::uint64_t> total)>;

struct Request {
  std::string method = "GET";
  std::string target = "/";  // origin form, already encoded: see make_target()
  Headers headers{};
  std::string body{};        // a body held in memory (used when `source` is empty)
  BodySource source{};       // a streamed body
  // With `source`: the exact length (sent as Content-Length), or none for chunked encoding.
  std::optional<std::uint64_t> source_size{};
  // Overrides the method's idempotency (RFC 9110 §9.2.2) for the retry decisions, e.g. a POST
  // that carries an idempotency key.
  std::optional<bool> idempotent{};

  bool is_idempotent() const noexcept {
    if (idempotent) return *idempotent;
    for (std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
      if (method == m) return true;
    return false;
  }

  // A body in memory can be sent again; a streamed one only before its first byte was taken.
  bool has_body() const noexcept { return source ? true : !body.empty(); }
};

// A response's status line and header block, as the parser reads them.
struct ResponseHead {
  int version_minor = 1;
  int status = 0;
  std::string reason{};
  Headers headers{};
};

struct Response {
  int status = 0;
  std::string reason{};
  Headers headers{};
  std::string body{};  // empty when the body went to a BodySink

  bool ok() const noexcept { return status >= 200 && status < 300; }
};

// Per-request settings; unset durations fall back to the client's.
struct RequestOptions {
  // Streams a 2xx response body instead of keeping it (other statuses keep theirs in
  // Response::body, for check_status() to quote).
  BodySink on_body{};
  Progress on_upload{};              // request body progress
  Progress on_download{};            // response body progress
  std::optional<std::chrono::milliseconds> timeout{};       // whole request (no_timeout: none)
  std::optional<std::chrono::milliseconds> idle_timeout{};  // longest wait for any one read/write
  // A deadline of the caller's (a command's timeout, made once for every call it makes): the
  // exchange ends by it too, whichever of it and `timeout` comes first.
  Deadline deadline{};
};

}  // namespace http
WORKSPACE_NAMESPACE_END
