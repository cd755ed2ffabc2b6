// http policies (authentication headers, Retry) against a fake `next`, and check_status / the
// errors it throws (no network, no sleeping).
#define _GLIBCXX_ASSERTIONS 1  // out-of-range string_view/vector access aborts instead of reading junk

#include <workspace/http/error.hpp>
#include <workspace/http/policies.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>
#include <atomic>
#include <thread>
#include <tuple>

#include <workspace/http/client.hpp>
#include <workspace/http/transport.hpp>

namespace {

using namespace workspace;
using namespace std::chrono_literals;
using namespace std::string_literals;
using ms = std::chrono::milliseconds;
using Progress = http::TransportError::Progress;

// ---------------------------------------------------------------------------------------------
// Authentication headers

// What `policy` makes of a request before it goes out; it never asks for a retry.
template <class Policy>
http::Request through(Policy& policy, http::Request request) {
  policy.prepare(request);
  const http::Response answer{.status = 204};
  EXPECT_FALSE(policy.decide(request, http::Outcome{.response = &answer}).retries());
  return request;
}

// The smallest type that models http::Policy, and what does not.
struct PolicyArchetype {
  void prepare(http::Request&) {}
  http::Decision decide(const http::Request&, const http::Outcome&) { return http::Decision::done(); }
};
struct NoDecide {
  void prepare(http::Request&) {}
};
struct OldStyle {
  template <class Next>
  http::Response send(http::Request& r, const http::RequestOptions& o, Next&& next) { return next(r, o); }
};
static_assert(http::Policy<PolicyArchetype>);
static_assert(!http::Policy<NoDecide>);
static_assert(!http::Policy<OldStyle>);
static_assert(http::Policy<http::Retry> && http::Policy<http::HeaderAuth> && http::Policy<http::BearerAuth> &&
              http::Policy<http::ApiKeyAuth> && http::Policy<http::SessionApiKeyAuth>);
// A client takes any type that models it, and only those.
template <class... Ps>
concept ClientWith = requires { typename http::Client<http::Tcp, Ps...>; } &&
                     std::constructible_from<http::Client<http::Tcp, Ps...>, std::string_view, http::ClientOptions, Ps...>;
static_assert(ClientWith<PolicyArchetype>);
static_assert(ClientWith<http::Retry, http::BearerAuth, PolicyArchetype>);

TEST(HttpAuth, ACredentialChangesForEveryCopyAndThread) {
  http::SessionApiKeyAuth auth("old");
  const http::SessionApiKeyAuth copy = auth;
  std::vector<std::thread> readers;
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  for (int i = 0; i < 4; ++i)
    readers.emplace_back([&] {
      while (!stop) {
        http::Request r;
        copy.prepare(r);
        const auto value = r.headers.get("X-Session-API-Key");
        if (value != "old" && value != "new") ++bad;
      }
    });
  std::this_thread::sleep_for(20ms);
  auth.set_value("new");
  std::this_thread::sleep_for(20ms);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(through(copy, http::Request{}).headers.get("X-Session-API-Key"), "new");
}

TEST(HttpAuth, HeaderAuthSetsItsHeader) {
  http::HeaderAuth auth("X-Token", "secret");
  EXPECT_EQ(auth.name(), "X-Token");
  const auto seen = through(auth, http::Request{});
  EXPECT_EQ(seen.headers.get("X-Token"), "secret");
  EXPECT_EQ(seen.headers.size(), 1u);
}

TEST(HttpAuth, HeaderAuthLeavesAHeaderTheRequestAlreadyHas) {
  http::HeaderAuth auth("X-Token", "secret");
  http::Request request;
  request.headers.add("x-token", "mine");
  const auto seen = through(auth, request);
  EXPECT_EQ(seen.headers.size(), 1u);
  EXPECT_EQ(seen.headers.get("X-Token"), "mine");
  // Even an empty value is the caller's choice.
  http::Request empty;
  empty.headers.add("X-TOKEN", "");
  const auto seen_empty = through(auth, empty);
  EXPECT_EQ(seen_empty.headers.size(), 1u);
  EXPECT_EQ(seen_empty.headers.get("X-Token"), "");
}

TEST(HttpAuth, AnEmptyValueSetsNothing) {
  http::HeaderAuth empty("X-Token", "");
  EXPECT_FALSE(through(empty, http::Request{}).headers.contains("X-Token"));
  http::HeaderAuth defaulted;
  EXPECT_TRUE(through(defaulted, http::Request{}).headers.empty());
  http::BearerAuth bearer_empty("");
  EXPECT_FALSE(through(bearer_empty, http::Request{}).headers.contains("Authorization"));
  http::BearerAuth bearer_default;
  EXPECT_FALSE(through(bearer_default, http::Request{}).headers.contains("Authorization"));
  http::ApiKeyAuth api_default;
  EXPECT_FALSE(through(api_default, http::Request{}).headers.contains("X-API-Key"));
  http::ApiKeyAuth api_empty("");
  EXPECT_FALSE(through(api_empty, http::Request{}).headers.contains("X-API-Key"));
  http::SessionApiKeyAuth session_default;
  EXPECT_FALSE(through(session_default, http::Request{}).headers.contains("X-Session-API-Key"));
}

TEST(HttpAuth, BearerApiKeyAndSessionKey) {
  http::BearerAuth bearer("tok123");
  EXPECT_EQ(bearer.name(), "Authorization");
  EXPECT_EQ(through(bearer, http::Request{}).headers.get("authorization"), "Bearer tok123");
  http::ApiKeyAuth api("key-1");
  EXPECT_EQ(api.name(), "X-API-Key");
  EXPECT_EQ(through(api, http::Request{}).headers.get("x-api-key"), "key-1");
  http::SessionApiKeyAuth session("sess-2");
  EXPECT_EQ(session.name(), "X-Session-API-Key");
  EXPECT_EQ(through(session, http::Request{}).headers.get("X-SESSION-API-KEY"), "sess-2");
}

TEST(HttpAuth, SetValueReplacesTheCredential) {
  http::BearerAuth bearer;
  bearer.set_value("Bearer later");
  EXPECT_EQ(through(bearer, http::Request{}).headers.get("Authorization"), "Bearer later");
  bearer.set_value("");
  EXPECT_FALSE(through(bearer, http::Request{}).headers.contains("Authorization"));
}

TEST(HttpAuth, OtherHeadersAreKept) {
  http::ApiKeyAuth api("k");
  http::Request request;
  request.headers.add("Accept", "application/json");
  request.headers.add("Authorization", "Bearer other");
  const auto seen = through(api, request);
  EXPECT_EQ(seen.headers.size(), 3u);
  EXPECT_EQ(seen.headers.get("Authorization"), "Bearer other");
  EXPECT_EQ(seen.headers.get("X-API-Key"), "k");
}

TEST(HttpAuth, NeverAsksForARetry) {
  http::ApiKeyAuth api("k");
  const http::TransportError failure(errc::connection_failed, "down", {});
  EXPECT_FALSE(api.decide(http::Request{}, http::Outcome{.error = &failure}).retries());
  const http::Response refused{.status = 401};
  EXPECT_FALSE(api.decide(http::Request{}, http::Outcome{.response = &refused}).retries());
}

TEST(HttpAuth, CredentialHeadersAreSecret) {
  for (const char* name : {"Authorization", "proxy-authorization", "X-API-Key", "x-session-api-key", "Cookie",
                           "Set-Cookie", "X-Daytona-Token"})
    EXPECT_TRUE(http::is_secret_header(name)) << name;
  for (const char* name : {"Accept", "Content-Type", "X-Api", "Authorization2"})
    EXPECT_FALSE(http::is_secret_header(name)) << name;
}

// ---------------------------------------------------------------------------------------------
// Retry

// One scripted outcome of `next`: a response, or a TransportError to throw.
struct Fail {
  errc code = errc::connection_failed;
  Progress progress{};
};
using Step = std::variant<http::Response, Fail, Error>;

http::Response status(int code, std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::Response r{.status = code};
  for (auto& [name, value] : headers) r.headers.add(name, value);
  return r;
}

// run_policies is a coroutine; these tests script it with plain functions.
template <class Ps, class Attempt, class Wait>
http::Response drive(Ps& policies, http::Request& request, Attempt attempt, Wait wait) {
  return workspace::detail::run_blocking([&] {
    return http::detail::run_policies(
        policies, request, [&](http::Request& r) -> workspace::Task<http::Response> { co_return attempt(r); },
        [&](ms w) -> workspace::Task<bool> { co_return wait(w); });
  });
}

// Drives `retry` over a scripted `attempt`, recording the waits without sleeping.
struct Harness {
  std::tuple<http::Retry> policies;
  std::vector<Step> script;
  std::vector<ms> waits{};
  int calls = 0;

  Harness(http::RetryOptions options, std::vector<Step> steps)
      : policies(http::Retry(std::move(options))), script(std::move(steps)) {}

  http::Response run(http::Request request) {
    return drive(
        policies, request,
        [this](http::Request&) {
          const std::size_t i = static_cast<std::size_t>(calls++);
          if (i >= script.size()) {
            ADD_FAILURE() << "next called more often than scripted";
            return http::Response{.status = 999};
          }
          const Step& step = script[i];
          if (const auto* fail = std::get_if<Fail>(&step))
            throw http::TransportError(fail->code, "scripted failure", fail->progress);
          if (const auto* error = std::get_if<Error>(&step)) throw *error;
          return std::get<http::Response>(step);
        },
        [this](ms wait) {
          waits.push_back(wait);
          return true;
        });
  }
};

http::RetryOptions no_jitter() { return http::RetryOptions{.jitter = false}; }

http::Request get() { return http::Request{.method = "GET"}; }
http::Request post() { return http::Request{.method = "POST", .body = "{}"}; }

TEST(HttpRetry, DefaultOptions) {
  const http::RetryOptions o;
  EXPECT_EQ(o.max_attempts, 4);
  EXPECT_EQ(o.initial_backoff, 200ms);
  EXPECT_EQ(o.max_backoff, 10s);
  EXPECT_EQ(o.multiplier, 2.0);
  EXPECT_TRUE(o.jitter);
  EXPECT_EQ(o.retry_statuses, (std::vector<int>{429, 502, 503, 504}));
  EXPECT_EQ(o.max_retry_after, 60s);
  EXPECT_EQ(http::Retry{}.options().max_attempts, 4);
}

TEST(HttpRetry, SuccessIsNotRetried) {
  Harness h(no_jitter(), {status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  EXPECT_EQ(h.calls, 1);
  EXPECT_TRUE(h.waits.empty());
}

TEST(HttpRetry, Retries503ForGetUntilItSucceeds) {
  Harness h(no_jitter(), {status(503), status(503), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  EXPECT_EQ(h.calls, 3);
  EXPECT_EQ(h.waits, (std::vector<ms>{200ms, 400ms}));
}

TEST(HttpRetry, RetriesEveryListedStatusForIdempotentMethods) {
  for (int code : {429, 502, 503, 504}) {
    for (const char* method : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
      Harness h(no_jitter(), {status(code), status(200)});
      EXPECT_EQ(h.run(http::Request{.method = method}).status, 200) << code << " " << method;
      EXPECT_EQ(h.calls, 2) << code << " " << method;
    }
  }
}

TEST(HttpRetry, DoesNotRetry503ForPostOrPatch) {
  for (const char* method : {"POST", "PATCH", "CONNECT", "get"}) {
    for (int code : {502, 503, 504}) {
      Harness h(no_jitter(), {status(code), status(200)});
      EXPECT_EQ(h.run(http::Request{.method = method}).status, code) << method;
      EXPECT_EQ(h.calls, 1) << method;
      EXPECT_TRUE(h.waits.empty());
    }
  }
}

TEST(HttpRetry, Retries429ForPostToo) {
  Harness h(no_jitter(), {status(429), status(429), status(201)});
  EXPECT_EQ(h.run(post()).status, 201);
  EXPECT_EQ(h.calls, 3);
}

TEST(HttpRetry, IdempotentOverrideDecides) {
  http::Request marked = post();
  marked.idempotent = true;
  Harness yes(no_jitter(), {status(503), status(200)});
  EXPECT_EQ(yes.run(marked).status, 200);
  EXPECT_EQ(yes.calls, 2);

  http::Request unmarked = get();
  unmarked.idempotent = false;
  Harness no(no_jitter(), {status(503), status(200)});
  EXPECT_EQ(no.run(unmarked).status, 503);
  EXPECT_EQ(no.calls, 1);
}

TEST(HttpRetry, OtherStatusesAreReturnedAtOnce) {
  for (int code : {200, 201, 204, 301, 400, 401, 403, 404, 408, 409, 500, 501, 505}) {
    Harness h(no_jitter(), {status(code), status(200)});
    EXPECT_EQ(h.run(get()).status, code);
    EXPECT_EQ(h.calls, 1) << code;
  }
}

TEST(HttpRetry, RetryStatusesAreConfigurable) {
  Harness h(http::RetryOptions{.jitter = false, .retry_statuses = {500}}, {status(500), status(503), status(200)});
  EXPECT_EQ(h.run(get()).status, 503);  // 503 is no longer listed
  EXPECT_EQ(h.calls, 2);
  // 429 is retried for a POST only when listed.
  Harness none(http::RetryOptions{.jitter = false, .retry_statuses = {}}, {status(429), status(200)});
  EXPECT_EQ(none.run(post()).status, 429);
  EXPECT_EQ(none.calls, 1);
}

TEST(HttpRetry, GivesUpAfterMaxAttemptsWithTheLastResponse) {
  http::Response last = status(503, {{"X-Attempt", "4"}});
  last.body = "still down";
  Harness h(no_jitter(), {status(503), status(503), status(503), last, status(200)});
  const auto response = h.run(get());
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.headers.get("X-Attempt"), "4");
  EXPECT_EQ(response.body, "still down");
  EXPECT_EQ(h.calls, 4);
  EXPECT_EQ(h.waits, (std::vector<ms>{200ms, 400ms, 800ms}));
}

TEST(HttpRetry, MaxAttemptsOneOrLessMeansNoRetry) {
  for (int attempts : {1, 0, -1}) {
    Harness h(http::RetryOptions{.max_attempts = attempts, .jitter = false}, {status(503), status(200)});
    EXPECT_EQ(h.run(get()).status, 503) << attempts;
    EXPECT_EQ(h.calls, 1) << attempts;
    EXPECT_TRUE(h.waits.empty()) << attempts;
  }
}

TEST(HttpRetry, BackoffGrowsAndIsCapped) {
  std::vector<Step> script(7, status(503));
  Harness h(http::RetryOptions{.max_attempts = 7,
                               .initial_backoff = 1000ms,
                               .max_backoff = 3000ms,
                               .multiplier = 2.0,
                               .jitter = false},
            script);
  EXPECT_EQ(h.run(get()).status, 503);
  EXPECT_EQ(h.calls, 7);
  EXPECT_EQ(h.waits, (std::vector<ms>{1000ms, 2000ms, 3000ms, 3000ms, 3000ms, 3000ms}));
}

TEST(HttpRetry, FractionalMultiplier) {
  Harness h(http::RetryOptions{.initial_backoff = 100ms, .multiplier = 1.5, .jitter = false},
            {status(503), status(503), status(503), status(503)});
  h.run(get());
  EXPECT_EQ(h.waits, (std::vector<ms>{100ms, 150ms, 225ms}));
}

TEST(HttpRetry, ZeroBackoff) {
  Harness h(http::RetryOptions{.initial_backoff = 0ms}, {status(503), status(503), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  EXPECT_EQ(h.waits, (std::vector<ms>{0ms, 0ms}));
}

TEST(HttpRetry, JitterStaysWithinZeroAndTheBackoff) {
  constexpr int attempts = 40;
  std::vector<Step> script(attempts, status(503));
  Harness h(http::RetryOptions{.max_attempts = attempts,
                               .initial_backoff = 100ms,
                               .max_backoff = 1000ms,
                               .multiplier = 2.0,
                               .jitter = true},
            script);
  h.run(get());
  ASSERT_EQ(h.waits.size(), static_cast<std::size_t>(attempts - 1));
  ms backoff = 100ms;
  bool below = false;
  for (const ms wait : h.waits) {
    EXPECT_GE(wait, 0ms);
    EXPECT_LE(wait, backoff);
    if (wait < backoff) below = true;
    backoff = std::min(1000ms, backoff * 2);
  }
  EXPECT_TRUE(below) << "jitter never shortened a wait";
  // Not all the same value either.
  bool differ = false;
  for (const ms wait : h.waits) differ = differ || wait != h.waits.front();
  EXPECT_TRUE(differ);
}

TEST(HttpRetry, HonoursRetryAfterSeconds) {
  Harness h(no_jitter(), {status(503, {{"Retry-After", "3"}}), status(503), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  // The second wait is the backoff's next step: Retry-After did not reset it.
  EXPECT_EQ(h.waits, (std::vector<ms>{3000ms, 400ms}));
}

TEST(HttpRetry, RetryAfterForA429Post) {
  Harness h(no_jitter(), {status(429, {{"retry-after", " 1 "}}), status(200)});
  EXPECT_EQ(h.run(post()).status, 200);
  EXPECT_EQ(h.waits, (std::vector<ms>{1000ms}));
}

TEST(HttpRetry, RetryAfterZeroRetriesAtOnce) {
  Harness h(no_jitter(), {status(503, {{"Retry-After", "0"}}), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  EXPECT_EQ(h.waits, (std::vector<ms>{0ms}));
}

TEST(HttpRetry, RetryAfterOverridesJitter) {
  Harness h(http::RetryOptions{.jitter = true}, {status(503, {{"Retry-After", "2"}}), status(200)});
  h.run(get());
  EXPECT_EQ(h.waits, (std::vector<ms>{2000ms}));
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[64];
  const std::size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(text, n);
}

TEST(HttpRetry, HonoursRetryAfterHttpDate) {
  const std::time_t in_ten = std::time(nullptr) + 10;
  Harness h(no_jitter(), {status(503, {{"Retry-After", http_date(in_ten)}}), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  ASSERT_EQ(h.waits.size(), 1u);
  EXPECT_GT(h.waits[0], 8000ms);
  EXPECT_LE(h.waits[0], 10000ms);
}

TEST(HttpRetry, RetryAfterDateInThePastRetriesAtOnce) {
  Harness h(no_jitter(), {status(503, {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}}), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  EXPECT_EQ(h.waits, (std::vector<ms>{0ms}));
}

TEST(HttpRetry, UnparsableRetryAfterFallsBackToTheBackoff) {
  for (const char* value : {"soon", "-5", "1.5", "", "   ", "5 seconds", "0x10"}) {
    Harness h(no_jitter(), {status(503, {{"Retry-After", value}}), status(200)});
    EXPECT_EQ(h.run(get()).status, 200) << value;
    EXPECT_EQ(h.waits, (std::vector<ms>{200ms})) << value;
  }
}

TEST(HttpRetry, GivesUpWhenRetryAfterIsLongerThanTheLimit) {
  {
    Harness h(no_jitter(), {status(503, {{"Retry-After", "61"}}), status(200)});
    EXPECT_EQ(h.run(get()).status, 503);
    EXPECT_EQ(h.calls, 1);
    EXPECT_TRUE(h.waits.empty());
  }
  {
    Harness h(no_jitter(), {status(503, {{"Retry-After", "60"}}), status(200)});  // the limit itself is fine
    EXPECT_EQ(h.run(get()).status, 200);
    EXPECT_EQ(h.waits, (std::vector<ms>{60s}));
  }
  {
    Harness h(no_jitter(), {status(429, {{"Retry-After", "99999999999999999999"}}), status(200)});
    EXPECT_EQ(h.run(get()).status, 429);
    EXPECT_EQ(h.calls, 1);
  }
  {
    Harness h(no_jitter(), {status(503, {{"Retry-After", http_date(std::time(nullptr) + 3600)}}), status(200)});
    EXPECT_EQ(h.run(get()).status, 503);
    EXPECT_EQ(h.calls, 1);
  }
  {
    Harness h(http::RetryOptions{.jitter = false, .max_retry_after = 500ms},
              {status(503, {{"Retry-After", "1"}}), status(200)});
    EXPECT_EQ(h.run(get()).status, 503);
  }
}

// A date far in the future must mean "too long to wait", not overflow.
TEST(HttpRetry, RetryAfterFarFutureDateGivesUp) {
  Harness h(no_jitter(), {status(503, {{"Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"}}), status(200)});
  EXPECT_EQ(h.run(get()).status, 503);
  EXPECT_EQ(h.calls, 1);
}

TEST(HttpRetry, ParseRetryAfter) {
  using http::detail::parse_retry_after;
  EXPECT_EQ(parse_retry_after("0"), 0ms);
  EXPECT_EQ(parse_retry_after("120"), 120s);
  EXPECT_EQ(parse_retry_after("  7  "), 7s);
  EXPECT_EQ(parse_retry_after("007"), 7s);
  EXPECT_EQ(parse_retry_after("123456789"), std::chrono::seconds(123456789));
  // Absurd waits saturate (at a century), so they always exceed max_retry_after.
  EXPECT_GE(parse_retry_after("1234567890"), std::chrono::hours(24 * 365 * 39));
  EXPECT_GE(parse_retry_after("99999999999999999999999999"), std::chrono::hours(24 * 365 * 99));
  EXPECT_EQ(parse_retry_after(""), std::nullopt);
  EXPECT_EQ(parse_retry_after("   "), std::nullopt);
  EXPECT_EQ(parse_retry_after("-1"), std::nullopt);
  EXPECT_EQ(parse_retry_after("+1"), std::nullopt);
  EXPECT_EQ(parse_retry_after("1e3"), std::nullopt);
  EXPECT_EQ(parse_retry_after("tomorrow"), std::nullopt);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), 0ms);
  EXPECT_EQ(parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT"), std::nullopt);
}

// RFC 9110 §5.6.7: "A recipient that parses a timestamp value in an HTTP field MUST accept all
// three HTTP-date formats" (IMF-fixdate, RFC 850, asctime).
TEST(HttpRetry, ParseRetryAfterAcceptsObsoleteDateFormats) {
  using http::detail::parse_retry_after;
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"), 0ms);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994"), 0ms);
}

// Transport failures.

TEST(HttpRetry, FailureBeforeAnythingWasSentIsRetriedEvenForPost) {
  Harness h(no_jitter(), {Fail{errc::connection_failed, {}}, Fail{errc::timed_out, {}}, status(201)});
  EXPECT_EQ(h.run(post()).status, 201);
  EXPECT_EQ(h.calls, 3);
  EXPECT_EQ(h.waits, (std::vector<ms>{200ms, 400ms}));
}

TEST(HttpRetry, FailureAfterSendingIsRetriedOnlyForIdempotentRequests) {
  const Progress sent{.request_sent = true};
  Harness get_h(no_jitter(), {Fail{errc::connection_failed, sent}, status(200)});
  EXPECT_EQ(get_h.run(get()).status, 200);
  EXPECT_EQ(get_h.calls, 2);

  Harness post_h(no_jitter(), {Fail{errc::connection_failed, sent}, status(200)});
  EXPECT_THROW(post_h.run(post()), http::TransportError);
  EXPECT_EQ(post_h.calls, 1);
  EXPECT_TRUE(post_h.waits.empty());

  http::Request marked = post();
  marked.idempotent = true;
  Harness marked_h(no_jitter(), {Fail{errc::connection_failed, {.request_sent = true, .response_started = true}},
                                 status(200)});
  EXPECT_EQ(marked_h.run(marked).status, 200);
}

TEST(HttpRetry, TimeoutAfterSendingAGetIsRetried) {
  Harness h(no_jitter(), {Fail{errc::timed_out, {.request_sent = true}}, status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
}

TEST(HttpRetry, ConsumedOrDeliveredBodiesAreNeverRetried) {
  for (const Progress p : {Progress{.body_consumed = true}, Progress{.request_sent = true, .body_consumed = true},
                           Progress{.request_sent = true, .response_started = true, .body_delivered = true},
                           Progress{.body_delivered = true}}) {
    for (const auto& request : {get(), post()}) {
      Harness h(no_jitter(), {Fail{errc::connection_failed, p}, status(200)});
      EXPECT_THROW(h.run(request), http::TransportError) << request.method;
      EXPECT_EQ(h.calls, 1);
    }
  }
}

TEST(HttpRetry, CancelAndInvalidArgumentAreNeverRetried) {
  for (const errc code : {errc::cancelled, errc::invalid_argument}) {
    Harness h(no_jitter(), {Fail{code, {}}, status(200)});
    try {
      h.run(get());
      ADD_FAILURE() << "no error";
    } catch (const http::TransportError& e) {
      EXPECT_EQ(e.code(), code);
    }
    EXPECT_EQ(h.calls, 1);
    EXPECT_TRUE(h.waits.empty());
  }
}

TEST(HttpRetry, GivesUpAfterMaxAttemptsWithTheLastFailure) {
  Harness h(no_jitter(), {Fail{}, Fail{}, Fail{}, Fail{errc::timed_out, {.connection_reused = true}}, status(200)});
  try {
    h.run(get());
    ADD_FAILURE() << "no error";
  } catch (const http::TransportError& e) {
    EXPECT_EQ(e.code(), errc::timed_out);
    EXPECT_TRUE(e.progress().connection_reused);
  }
  EXPECT_EQ(h.calls, 4);
  EXPECT_EQ(h.waits, (std::vector<ms>{200ms, 400ms, 800ms}));
}

TEST(HttpRetry, PlainErrorsAreNotTransportFailures) {
  Harness h(no_jitter(), {Error(errc::connection_failed, "not a TransportError"), status(200)});
  EXPECT_THROW(h.run(get()), Error);
  EXPECT_EQ(h.calls, 1);
}

TEST(HttpRetry, MixedFailuresAndStatuses) {
  Harness h(no_jitter(), {Fail{}, status(502), status(429, {{"Retry-After", "1"}}), status(200)});
  EXPECT_EQ(h.run(get()).status, 200);
  EXPECT_EQ(h.waits, (std::vector<ms>{200ms, 400ms, 1000ms}));
}

// Streamed bodies (request.source) cannot be replayed once read.

http::Request streamed(const char* method) {
  http::Request r{.method = method};
  r.source = [](char*, std::size_t) -> std::size_t { return 0; };
  r.source_size = 0;
  return r;
}

TEST(HttpRetry, StreamedBodyIsNeverReplayedOnAStatus) {
  for (const char* method : {"PUT", "POST"}) {
    for (int code : {429, 502, 503, 504}) {
      Harness h(no_jitter(), {status(code), status(200)});
      EXPECT_EQ(h.run(streamed(method)).status, code) << method << " " << code;
      EXPECT_EQ(h.calls, 1) << method << " " << code;
    }
  }
  http::Request marked = streamed("POST");
  marked.idempotent = true;
  Harness h(no_jitter(), {status(503), status(200)});
  EXPECT_EQ(h.run(marked).status, 503);
}

TEST(HttpRetry, StreamedBodyIsRetriedWhenItWasNeverRead) {
  Harness h(no_jitter(), {Fail{errc::connection_failed, {}}, status(200)});
  EXPECT_EQ(h.run(streamed("POST")).status, 200);
  EXPECT_EQ(h.calls, 2);
  Harness consumed(no_jitter(), {Fail{errc::connection_failed, {.request_sent = true, .body_consumed = true}}, status(200)});
  EXPECT_THROW(consumed.run(streamed("PUT")), http::TransportError);
  EXPECT_EQ(consumed.calls, 1);
}

TEST(HttpRetry, EachAttemptSeesTheSameRequest) {
  std::tuple<http::Retry> policies(no_jitter());
  http::Request request{.method = "PUT", .target = "/x?y=1", .body = "payload"};
  request.headers.add("X-Id", "1");
  int calls = 0;
  const auto response = drive(
      policies, request,
      [&](http::Request& r) {
        EXPECT_EQ(r.method, "PUT");
        EXPECT_EQ(r.target, "/x?y=1");
        EXPECT_EQ(r.body, "payload");
        EXPECT_EQ(r.headers.get("X-Id"), "1");
        EXPECT_EQ(&r, &request);
        return status(++calls < 3 ? 503 : 200);
      },
      [](ms) { return true; });
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(calls, 3);
}

TEST(HttpRetry, AuthAndRetryTogetherSetTheHeaderOnce) {
  std::tuple<http::Retry, http::BearerAuth> policies(http::Retry(no_jitter()), http::BearerAuth("t"));
  http::Request request = get();
  int calls = 0;
  drive(
      policies, request,
      [&](http::Request& inner) {
        ++calls;
        EXPECT_EQ(inner.headers.size(), 1u);
        EXPECT_EQ(inner.headers.get("Authorization"), "Bearer t");
        return status(calls < 2 ? 503 : 200);
      },
      [](ms) { return true; });
  EXPECT_EQ(calls, 2);
}

TEST(HttpRetry, NoRetryOnceTheWaitWouldPassTheDeadline) {
  std::tuple<http::Retry> policies(no_jitter());
  http::Request request = get();
  int calls = 0;
  const auto response = drive(
      policies, request, [&](http::Request&) { return status(++calls < 3 ? 503 : 200); },
      [](ms) { return false; });  // the caller's time is up
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(calls, 1);
}

// ---------------------------------------------------------------------------------------------
// Request helpers the policies rely on

TEST(HttpRequest, Idempotency) {
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
    EXPECT_TRUE(http::Request{.method = m}.is_idempotent()) << m;
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", ""})
    EXPECT_FALSE(http::Request{.method = m}.is_idempotent()) << m;
  http::Request post_marked{.method = "POST"};
  post_marked.idempotent = true;
  EXPECT_TRUE(post_marked.is_idempotent());
  http::Request get_marked{.method = "GET"};
  get_marked.idempotent = false;
  EXPECT_FALSE(get_marked.is_idempotent());
}

TEST(HttpRequest, HasBody) {
  EXPECT_FALSE(http::Request{}.has_body());
  EXPECT_TRUE(http::Request{.body = "x"}.has_body());
  EXPECT_TRUE(streamed("PUT").has_body());
}

TEST(HttpHeaders, CaseInsensitiveAndOrdered) {
  http::Headers h{{"A", "1"}};
  h.add("Set-Cookie", "a");
  h.add("set-cookie", "b");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.get("SET-COOKIE"), "a");
  EXPECT_EQ(h.get("missing"), "");
  EXPECT_EQ(h.find("missing"), nullptr);
  h.set("SET-cookie", "c");
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.get("set-cookie"), "c");
  EXPECT_EQ(std::prev(h.end())->first, "SET-cookie");
  h.erase("a");
  EXPECT_EQ(h.size(), 1u);
  EXPECT_FALSE(h.contains("A"));
  h.clear();
  EXPECT_TRUE(h.empty());
}

// ---------------------------------------------------------------------------------------------
// check_status and the errors it throws

http::Response response(int code, std::string reason, std::string body) {
  return http::Response{.status = code, .reason = std::move(reason), .body = std::move(body)};
}

Error thrown_by(const http::Response& r, std::string_view what = "GET /x on http://h") {
  try {
    http::check_status(r, what);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "check_status did not throw for " << r.status;
  return Error(errc::io_error, "nothing thrown");
}

TEST(HttpCheckStatus, SuccessDoesNotThrow) {
  for (int code : {200, 201, 202, 204, 206, 299})
    EXPECT_NO_THROW(http::check_status(response(code, "", "{\"message\":\"x\"}"), "op")) << code;
}

TEST(HttpCheckStatus, MapsStatusesToErrorCodes) {
  const std::vector<std::pair<int, errc>> cases = {
      {401, errc::authentication_failed}, {403, errc::authentication_failed}, {407, errc::authentication_failed},
      {404, errc::not_found},             {410, errc::not_found},             {408, errc::timed_out},
      {504, errc::timed_out},             {409, errc::bad_state},             {423, errc::bad_state},
      {400, errc::http_error},            {418, errc::http_error},            {429, errc::http_error},
      {500, errc::http_error},            {502, errc::http_error},            {503, errc::http_error},
      {301, errc::http_error},            {100, errc::http_error},
  };
  for (const auto& [code, expected] : cases) {
    const Error e = thrown_by(response(code, "Reason", ""));
    EXPECT_EQ(e.code(), expected) << code;
    EXPECT_EQ(e.http_status(), code);
  }
}

TEST(HttpCheckStatus, NotFoundComparesWithTheStandardCondition) {
  const Error e = thrown_by(response(404, "Not Found", ""));
  EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
}

TEST(HttpCheckStatus, MessageNamesTheOperationStatusReasonAndServerText) {
  const Error e = thrown_by(response(404, "Not Found", R"({"message":"No such container: abc"})"),
                            "GET /containers/abc/json on unix:/var/run/docker.sock");
  EXPECT_EQ(e.server_message(), "No such container: abc");
  EXPECT_EQ(std::string(e.what()),
            "GET /containers/abc/json on unix:/var/run/docker.sock: 404 Not Found: No such container: abc: not found");
}

TEST(HttpCheckStatus, NoReasonAndNoBody) {
  const Error e = thrown_by(response(500, "", ""), "op");
  EXPECT_EQ(e.server_message(), "");
  EXPECT_EQ(std::string(e.what()), "op: 500: HTTP error");
}

TEST(HttpServerMessage, CommonJsonShapes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"message":"docker says"})", "docker says"},
      {R"({"detail":"fastapi says"})", "fastapi says"},
      {R"({"error":{"message":"nested","code":7}})", "nested"},
      {R"({"error":"flat error"})", "flat error"},
      {R"({"error_message":"runtime says"})", "runtime says"},
      {R"({"msg":"short"})", "short"},
      {R"({"detail":"second","message":"first"})", "first"},  // "message" is looked at first
      {R"({"other":1,"detail":"found"})", "found"},
      {R"({"message":"caf\u00e9 \u2713"})", "caf\xc3\xa9 \xe2\x9c\x93"},
      {R"({"message":""})", ""},
  };
  for (const auto& [body, expected] : cases) {
    EXPECT_EQ(http::detail::server_message(response(400, "", body)), expected) << body;
    EXPECT_EQ(thrown_by(response(400, "Bad Request", body)).server_message(), expected) << body;
  }
}

TEST(HttpServerMessage, NonStringValuesAreDumped) {
  EXPECT_EQ(http::detail::server_message(response(422, "", R"({"detail":[{"loc":["body"],"msg":"field required"}]})")),
            R"([{"loc":["body"],"msg":"field required"}])");
  EXPECT_EQ(http::detail::server_message(response(400, "", R"({"error":{"code":5}})")), R"({"code":5})");
  EXPECT_EQ(http::detail::server_message(response(400, "", R"({"message":42})")), "42");
}

TEST(HttpServerMessage, OtherBodiesAsText) {
  EXPECT_EQ(http::detail::server_message(response(502, "", "Bad gateway from nginx\n")), "Bad gateway from nginx\n");
  EXPECT_EQ(http::detail::server_message(response(400, "", R"({"unknown":"key"})")), R"({"unknown":"key"})");
  EXPECT_EQ(http::detail::server_message(response(400, "", R"(["message","x"])")), R"(["message","x"])");
  EXPECT_EQ(http::detail::server_message(response(400, "", R"({"message":"unterminated)")), R"({"message":"unterminated)");
  EXPECT_EQ(http::detail::server_message(response(400, "", "")), "");
  // Control characters become spaces; new lines and tabs stay.
  EXPECT_EQ(http::detail::server_message(response(400, "", "a\rb\0c\x1b[31md\ne\tf"s)),
            "a b c [31md\ne\tf");
}

TEST(HttpServerMessage, LongTextIsTruncatedAt512Bytes) {
  const std::string exact(512, 'x');
  EXPECT_EQ(http::detail::server_message(response(500, "", exact)), exact);
  const std::string longer = std::string(512, 'y') + "zzz";
  EXPECT_EQ(http::detail::server_message(response(500, "", longer)), std::string(512, 'y') + "...");
  const std::string html = "<html>" + std::string(10'000, 'h') + "</html>";
  const std::string message = http::detail::server_message(response(500, "", html));
  EXPECT_EQ(message.size(), 515u);
  EXPECT_EQ(message.substr(0, 6), "<html>");
  EXPECT_EQ(message.substr(512), "...");
  const Error e = thrown_by(response(500, "Internal Server Error", html));
  EXPECT_EQ(e.server_message(), message);
  EXPECT_LT(std::string(e.what()).size(), 700u);
}

TEST(HttpServerMessage, LongJsonMessagesAreKeptWhole) {
  const std::string text(2000, 'm');
  EXPECT_EQ(http::detail::server_message(response(400, "", R"({"message":")" + text + "\"}")), text);
}

TEST(HttpTransportError, CarriesItsProgress) {
  const http::TransportError e(errc::timed_out, "GET /x on http://h: no response",
                               {.connection_reused = true, .request_sent = true, .response_started = false});
  const Error& base = e;
  EXPECT_EQ(base.code(), errc::timed_out);
  EXPECT_EQ(base.http_status(), 0);
  EXPECT_TRUE(e.progress().connection_reused);
  EXPECT_TRUE(e.progress().request_sent);
  EXPECT_FALSE(e.progress().body_consumed);
  EXPECT_FALSE(e.progress().response_started);
  EXPECT_FALSE(e.progress().body_delivered);
  EXPECT_EQ(std::string(e.what()), "GET /x on http://h: no response: timed out");
}

}  // namespace
