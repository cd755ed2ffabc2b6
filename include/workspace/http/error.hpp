// What the client throws: TransportError when the exchange itself failed, and, through
// check_status(), a workspace::Error carrying the HTTP status and the server's own words.
#pragma once

#include <workspace/core/error.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/message.hpp>
#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

// The exchange failed: no connection, a broken one, a deadline, a malformed response, or a
// cancel. The flags tell retry logic whether trying again could repeat a side effect.
class TransportError : public Error {
 public:
  struct Progress {
    bool connection_reused = false;  // the request went out on a kept-alive connection
    bool request_sent = false;       // at least one byte of the request reached the socket
    bool body_consumed = false;      // a streamed body was (partly) read, so it cannot be replayed
    bool response_started = false;   // at least one byte of a response arrived
    bool body_delivered = false;     // response body bytes already went to the caller's sink
  };

  TransportError(errc code, const std::string& what, Progress progress)
      : Error(code, what), progress_(progress) {}
  TransportError(std::error_code code, const std::string& what, Progress progress)
      : Error(code, what), progress_(progress) {}

  const Progress& progress() const noexcept { return progress_; }

  // This error with "<prefix>: " before its message (a back end's name), progress kept.
  TransportError prefixed(std::string_view prefix) const {
    const std::string what = workspace::detail::message_of(*this);
    if (what.compare(0, prefix.size(), prefix) == 0) return *this;
    return TransportError(code(), std::string(prefix) + ": " + what, progress_);
  }

 private:
  Progress progress_;
};

namespace detail {
// The peer's own explanation: the usual JSON fields, else the start of the body.
inline std::string server_message(const Response& response) {
  const std::string& body = response.body;
  if (body.empty()) return {};
  const auto parsed = parse_json(body);
  if (parsed.is_object()) {
    for (const char* key : {"message", "detail", "error", "error_message", "msg"}) {
      const auto it = parsed.find(key);
      if (it == parsed.end()) continue;
      if (it->is_string()) {
        std::string text = it->get<std::string>();
        // FastAPI's 5xx bodies put the generic text in "detail" and the cause in "exception".
        const auto cause = parsed.find("exception");
        if (cause != parsed.end() && cause->is_string() && !cause->get_ref<const std::string&>().empty())
          text += ": " + cause->get<std::string>();
        return text;
      }
      if (it->is_object() && it->contains("message") && (*it)["message"].is_string())
        return (*it)["message"].get<std::string>();
      return it->dump();
    }
  }
  constexpr std::size_t limit = 512;
  std::size_t cut = std::min(limit, body.size());
  // Never split a UTF-8 sequence: back off over continuation bytes.
  while (cut < body.size() && cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  std::string text = body.substr(0, cut);
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') c = ' ';
  if (body.size() > limit) text += "...";
  return text;
}

inline errc status_errc(int status) noexcept {
  switch (status) {
    case 401: case 403: case 407: return errc::authentication_failed;
    case 404: case 410: return errc::not_found;
    case 408: case 504: return errc::timed_out;
    case 409: case 423: return errc::bad_state;
    default: return errc::http_error;
  }
}
}  // namespace detail

// Throws unless the response is 2xx. `what` names the operation and endpoint, e.g.
// "GET /containers/abc/json on unix:/var/run/docker.sock"; it must not hold secrets.
inline void check_status(const Response& response, std::string_view what) {
  if (response.ok()) return;
  std::string message = detail::server_message(response);
  std::string text = std::string(what) + ": " + std::to_string(response.status);
  if (!response.reason.empty()) text += ' ' + response.reason;
  if (!message.empty()) text += ": " + message;
  throw Error(detail::status_errc(response.status), text, response.status, std::move(message));
}

}  // namespace http
WORKSPACE_NAMESPACE_END
