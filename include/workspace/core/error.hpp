// workspace::Error: what a workspace throws when it cannot do what was asked.
//
// A command that ran and failed is a CommandResult, and a file that could not be moved is a
// FileOperationResult with success == false; Error is for everything else (bad arguments, a
// daemon that cannot be reached, a protocol violation). It is a std::system_error, so callers can
// catch the standard type, and its code compares equal to the matching std::errc where one
// exists (errc::not_found == std::errc::no_such_file_or_directory).
#pragma once

#include <workspace/version.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

WORKSPACE_NAMESPACE_BEGIN

enum class errc {
  invalid_argument = 1,   // the caller passed something no workspace could accept
  not_found,              // a path, container, sandbox or session that does not exist
  spawn_failed,           // a process could not be started
  io_error,               // reading or writing failed
  cancelled,              // a progress callback asked to stop
  timed_out,              // an infrastructure deadline (connect, request, start-up) passed
  connection_failed,      // the peer could not be reached, or the connection broke
  protocol_error,         // the peer answered something the protocol does not allow
  authentication_failed,  // the peer refused our credentials
  http_error,             // the peer answered with an HTTP error status
  unsupported,            // this workspace type cannot do that
  bad_state,              // the workspace is in a state that cannot serve the request
};

namespace detail {
class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "workspace"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_argument: return "invalid argument";
      case errc::not_found: return "not found";
      case errc::spawn_failed: return "process could not be started";
      case errc::io_error: return "input/output error";
      case errc::cancelled: return "cancelled";
      case errc::timed_out: return "timed out";
      case errc::connection_failed: return "connection failed";
      case errc::protocol_error: return "protocol error";
      case errc::authentication_failed: return "authentication failed";
      case errc::http_error: return "HTTP error";
      case errc::unsupported: return "not supported by this workspace";
      case errc::bad_state: return "workspace is in a state that cannot serve the request";
    }
    return "unknown workspace error";
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_argument: return std::errc::invalid_argument;
      case errc::not_found: return std::errc::no_such_file_or_directory;
      case errc::io_error: return std::errc::io_error;
      case errc::cancelled: return std::errc::operation_canceled;
      case errc::timed_out: return std::errc::timed_out;
      case errc::unsupported: return std::errc::not_supported;
      default: return {value, *this};
    }
  }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::ErrorCategory category;
  return category;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

inline std::error_condition make_error_condition(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// The message should name the operation and what it acted on (a path, an endpoint), never a
// secret; std::system_error appends the code's message.
class Error : public std::system_error {
 public:
  Error(std::error_code code, const std::string& what) : std::system_error(code, what) {}
  Error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
  // An error the peer reported over HTTP keeps its status and its own words (Docker's
  // {"message": ...}, Daytona's {"message": ...}) for callers that branch on them.
  Error(errc code, const std::string& what, int http_status, std::string server_message)
      : Error(make_error_code(code), what, http_status, std::move(server_message)) {}
  Error(std::error_code code, const std::string& what, int http_status, std::string server_message)
      : std::system_error(code, what), http_status_(http_status), server_message_(std::move(server_message)) {}

  // The HTTP status the peer answered with, or 0 when the error did not come from a response.
  int http_status() const noexcept { return http_status_; }
  // The peer's own error text, empty when there was none.
  const std::string& server_message() const noexcept { return server_message_; }

 private:
  int http_status_ = 0;
  std::string server_message_;
};

namespace detail {
// What an Error was constructed with, without the code's message that std::system_error appends:
// for wrapping one error's text in another without saying "connection failed" twice.
inline std::string message_of(const std::system_error& e) {
  std::string what = e.what();
  const std::string suffix = ": " + e.code().message();
  if (what.size() >= suffix.size() && what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0)
    what.resize(what.size() - suffix.size());
  return what;
}

// `e` with "<prefix>: " before its message (the back end's name), unless it has it already.
inline Error prefixed(const Error& e, std::string_view prefix) {
  const std::string what = message_of(e);
  if (what.compare(0, prefix.size(), prefix) == 0) return e;
  return Error(e.code(), std::string(prefix) + ": " + what, e.http_status(), e.server_message());
}
}  // namespace detail

WORKSPACE_NAMESPACE_END

template <>
struct std::is_error_code_enum<workspace::errc> : std::true_type {};
