// Policies for http::Client<Transport, Policies...>: authentication, retries, and a back end's
// own waiting (Daytona's state transitions). A policy sees each attempt before it goes out and
// its outcome after, and never performs I/O itself, so the same policy serves every way the
// client is driven:
//
//   void prepare(Request& request);                          // before each attempt
//   Decision decide(const Request& request, const Outcome&); // after it: done, or retry after a wait
//
// The client asks the policies in the order they are listed; the first that asks for a retry
// has it. Tests inject faults the same way (a policy whose prepare() throws TransportError).
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/detail/random.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/version.hpp>

#include <asio/error.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <exception>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
namespace http {

// What an attempt came to: a response (any status), or the failure of the exchange.
struct Outcome {
  const Response* response = nullptr;
  const TransportError* error = nullptr;
  int attempt = 1;  // 1 for the first
  std::chrono::steady_clock::time_point first_attempt{};
};

// A policy's verdict on an outcome.
struct Decision {
  std::optional<std::chrono::milliseconds> retry_after{};  // none: done

  static Decision done() noexcept { return {}; }
  static Decision retry(std::chrono::milliseconds wait) noexcept { return {wait}; }
  bool retries() const noexcept { return retry_after.has_value(); }
};

template <class P>
concept Policy = std::move_constructible<P> &&
                 requires(P& policy, Request& request, const Request& sent, const Outcome& outcome) {
                   { policy.prepare(request) } -> std::same_as<void>;
                   { policy.decide(sent, outcome) } -> std::same_as<Decision>;
                 };

// A credential shared by every copy of the policy that holds it, and replaceable while requests
// run on other threads (a runtime's session key changes when it resumes).
class Credential {
 public:
  Credential() = default;
  explicit Credential(std::string value) : state_(std::make_shared<State>(std::move(value))) {}

  std::string get() const {
    std::lock_guard lock(state_->mutex);
    return state_->value;
  }
  void set(std::string value) {
    std::lock_guard lock(state_->mutex);
    state_->value = std::move(value);
  }

 private:
  struct State {
    State() = default;
    explicit State(std::string v) : value(std::move(v)) {}
    mutable std::mutex mutex;
    std::string value;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// Sets one header on every request that does not set it already. The value is a credential
// and is never part of an error message; set_value() replaces it for every copy of the policy,
// from any thread.
class HeaderAuth {
 public:
  HeaderAuth() = default;
  HeaderAuth(std::string name, std::string value) : name_(std::move(name)), value_(std::move(value)) {}

  void prepare(Request& request) const {
    std::string value = value_.get();
    if (!value.empty() && !request.headers.contains(name_)) request.headers.set(name_, std::move(value));
  }
  Decision decide(const Request&, const Outcome&) const noexcept { return Decision::done(); }

  void set_value(std::string value) { value_.set(std::move(value)); }
  std::string value() const { return value_.get(); }
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  Credential value_;
};

// Authorization: Bearer <token> (Daytona, the runtime API's newer deployments).
struct BearerAuth : HeaderAuth {
  BearerAuth() : HeaderAuth("Authorization", {}) {}
  explicit BearerAuth(const std::string& token)
      : HeaderAuth("Authorization", token.empty() ? std::string() : "Bearer " + token) {}
  void set_token(const std::string& token) { set_value(token.empty() ? std::string() : "Bearer " + token); }
};

// X-API-Key: <key> (the OpenHands runtime API).
struct ApiKeyAuth : HeaderAuth {
  ApiKeyAuth() : HeaderAuth("X-API-Key", {}) {}
  explicit ApiKeyAuth(std::string key) : HeaderAuth("X-API-Key", std::move(key)) {}
};

// X-Session-API-Key: <key> (the OpenHands agent server).
struct SessionApiKeyAuth : HeaderAuth {
  SessionApiKeyAuth() : HeaderAuth("X-Session-API-Key", {}) {}
  explicit SessionApiKeyAuth(std::string key) : HeaderAuth("X-Session-API-Key", std::move(key)) {}
};

struct RetryOptions {
  int max_attempts = 4;                            // the first try included
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{10'000};
  double multiplier = 2.0;
  bool jitter = true;                              // "full jitter": uniform in [0, backoff]
  std::vector<int> retry_statuses{429, 502, 503, 504};
  std::chrono::milliseconds max_retry_after{60'000};  // longer Retry-After values give up instead
};

namespace detail {
// An HTTP-date in any of the three forms RFC 9110 §5.6.7 requires recipients to accept:
//   Sun, 06 Nov 1994 08:49:37 GMT   (IMF-fixdate)
//   Sunday, 06-Nov-94 08:49:37 GMT  (RFC 850)
//   Sun Nov  6 08:49:37 1994        (asctime)
// as seconds since the epoch. Parsed by hand: strptime's names follow the process's locale.
inline std::optional<std::int64_t> parse_http_date(std::string_view text) {
  std::vector<std::string_view> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '-')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != ',' && text[i] != '-') ++i;
    if (i > start) tokens.push_back(text.substr(start, i - start));
  }
  static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto month_of = [&](std::string_view m) -> int {
    for (int k = 0; k < 12; ++k)
      if (m == months[k]) return k + 1;
    return 0;
  };
  const auto number = [](std::string_view d, std::int64_t& out) {
    if (d.empty() || d.size() > 4) return false;
    out = 0;
    for (char c : d) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    return true;
  };
  if (tokens.size() < 5) return std::nullopt;
  std::int64_t day = 0, year = 0, hh = 0, mm = 0, ss = 0;
  int month = 0;
  std::string_view clock;
  if ((month = month_of(tokens[1])) != 0) {  // asctime: weekday month day time year
    if (!number(tokens[2], day) || !number(tokens[4], year)) return std::nullopt;
    clock = tokens[3];
  } else {  // weekday day month year time GMT
    if (tokens.size() < 6 || tokens[5] != "GMT") return std::nullopt;
    if (!number(tokens[1], day) || (month = month_of(tokens[2])) == 0 || !number(tokens[3], year))
      return std::nullopt;
    if (tokens[3].size() == 2) year += year < 70 ? 2000 : 1900;
    clock = tokens[4];
  }
  if (clock.size() != 8 || clock[2] != ':' || clock[5] != ':' || !number(clock.substr(0, 2), hh) ||
      !number(clock.substr(3, 2), mm) || !number(clock.substr(6, 2), ss))
    return std::nullopt;
  if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  // Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
  const std::int64_t y = year - (month <= 2 ? 1 : 0);
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t mp = (month + 9) % 12;
  const std::int64_t doy = (153 * mp + 2) / 5 + day - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = era * 146097 + doe - 719468;
  return days * 86400 + hh * 3600 + mm * 60 + ss;
}

// Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). Very long waits saturate.
inline std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  constexpr std::int64_t max_seconds = 100LL * 365 * 86400;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 10) return std::chrono::seconds(max_seconds);
    return std::chrono::seconds(std::min<std::int64_t>(std::stoll(std::string(value)), max_seconds));
  }
  const auto when = parse_http_date(value);
  if (!when) return std::nullopt;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (*when <= now) return std::chrono::milliseconds(0);
  return std::chrono::seconds(std::min(*when - now, max_seconds));
}
}  // namespace detail

// Retries transient failures with exponential backoff and jitter:
//  - a failed exchange, when repeating it cannot repeat a side effect: the request is idempotent
//    (or marked so) and its body can be sent again, or nothing at all was sent;
//  - a 429 always (the server did not act on it), and 502/503/504 for idempotent requests,
//    waiting what Retry-After asks when it says.
// A cancel is never retried. Each attempt has the request's own timeout.
class Retry {
 public:
  Retry() = default;
  explicit Retry(RetryOptions options) : options_(std::move(options)) {}

  void prepare(Request&) const noexcept {}

  // Stateless (the backoff follows from the attempt's number), so one client's requests on
  // several threads may share it.
  Decision decide(const Request& request, const Outcome& outcome) const {
    if (outcome.attempt >= options_.max_attempts) return Decision::done();
    const auto backoff = backoff_for(outcome.attempt);
    std::chrono::milliseconds wait{};
    if (outcome.response) {
      if (!retryable_status(request, outcome.response->status)) return Decision::done();
      wait = jittered(backoff);
      if (const auto* header = outcome.response->headers.find("Retry-After")) {
        const auto asked = detail::parse_retry_after(*header);
        if (asked && *asked > options_.max_retry_after) return Decision::done();
        if (asked) wait = *asked;
      }
    } else if (outcome.error) {
      if (!retryable_failure(request, *outcome.error)) return Decision::done();
      wait = jittered(backoff);
    } else {
      return Decision::done();
    }
    return Decision::retry(wait);
  }

  const RetryOptions& options() const noexcept { return options_; }

 private:
  bool retryable_status(const Request& request, int status) const {
    if (std::find(options_.retry_statuses.begin(), options_.retry_statuses.end(), status) ==
        options_.retry_statuses.end())
      return false;
    return (status == 429 || request.is_idempotent()) && replayable(request);
  }

  static bool replayable(const Request& request) { return !request.source; }

  static bool retryable_failure(const Request& request, const TransportError& e) {
    const auto& p = e.progress();
    // Cancelled by the caller (a progress callback, or the operation's cancellation slot): never
    // tried again.
    if (e.code() == make_error_code(errc::cancelled) || e.code() == make_error_code(errc::invalid_argument) ||
        e.code() == asio::error::operation_aborted)
      return false;
    if (p.body_consumed || p.body_delivered) return false;
    if (!p.request_sent) return true;
    return request.is_idempotent();
  }

  // initial_backoff, times the multiplier for each attempt after the first, at most max_backoff.
  std::chrono::milliseconds backoff_for(int attempt) const {
    double wait = static_cast<double>(options_.initial_backoff.count());
    for (int i = 1; i < attempt && wait < static_cast<double>(options_.max_backoff.count()); ++i)
      wait *= options_.multiplier;
    return std::min(options_.max_backoff, std::chrono::milliseconds(static_cast<std::int64_t>(wait)));
  }

  std::chrono::milliseconds jittered(std::chrono::milliseconds backoff) const {
    if (!options_.jitter || backoff.count() <= 0) return backoff;
    const auto span = static_cast<std::uint64_t>(backoff.count()) + 1;
    return std::chrono::milliseconds(static_cast<std::int64_t>(workspace::detail::random_u64() % span));
  }

  RetryOptions options_{};
};

namespace detail {

// The first policy that asks for a retry has it.
template <class... Ps>
Decision decide_all(std::tuple<Ps...>& policies, const Request& request, const Outcome& outcome) {
  Decision decision;
  std::apply([&](auto&... p) { ((decision.retries() ? void() : void(decision = p.decide(request, outcome))), ...); },
             policies);
  return decision;
}


// Drives one request through `policies`: `attempt(request)` performs one exchange (a coroutine
// giving the response or throwing TransportError), `wait(duration)` waits between attempts and
// gives false when the request's time is up. Gives the last response, or throws the last failure.
template <class Attempt, class Wait, class... Ps>
Task<Response> run_policies(std::tuple<Ps...>& policies, Request& request, Attempt attempt, Wait wait) {
  const auto first = std::chrono::steady_clock::now();
  for (int number = 1;; ++number) {
    std::apply([&](auto&... p) { (p.prepare(request), ...); }, policies);
    std::optional<Response> response;
    std::exception_ptr failure;
    Outcome outcome{.attempt = number, .first_attempt = first};
    Decision decision;
    try {
      response.emplace(co_await attempt(request));
    } catch (const TransportError& e) {
      failure = std::current_exception();
      outcome.error = &e;
      decision = decide_all(policies, request, outcome);  // while e lives
    }
    if (!failure) {
      outcome.response = &*response;
      decision = decide_all(policies, request, outcome);
    }
    if (!decision.retries() || !co_await wait(*decision.retry_after)) {
      if (failure) std::rethrow_exception(failure);
      co_return std::move(*response);
    }
  }
}

}  // namespace detail

}  // namespace http
WORKSPACE_NAMESPACE_END
