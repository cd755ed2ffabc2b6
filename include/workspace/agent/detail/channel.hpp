// The shell::Channel of RemoteWorkspace: a command starts on the server's event websocket (one
// per workspace and execution context, kept open between commands and shared by the commands
// running at once: agent/detail/event_hub.hpp) and its events are pushed; where a proxy refuses
// websockets or the socket breaks, it starts and is followed by REST, polling from at once and
// backing off. Its calls are coroutines on the executor of the command's operation.
#pragma once

#include <workspace/agent/api.hpp>
#include <workspace/agent/detail/event_hub.hpp>
#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/url.hpp>
#include <workspace/shell/command.hpp>
#include <workspace/version.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace agent::detail {

struct ChannelSettings {
  bool use_websocket = true;
  std::chrono::milliseconds max_poll_interval{50};
};

template <class Api>
class Channel {
 public:
  using Socket = typename Api::socket_type;

  Channel(Api& api, EventHubs<Socket>& hubs, std::atomic<bool>& websocket_refused, ChannelSettings settings)
      : api_(api), hubs_(hubs), websocket_refused_(websocket_refused), settings_(settings) {}

  Task<void> start(const std::string& line, shell::RunnerSink sink, Deadline deadline) {
    line_ = line;
    sink_ = std::move(sink);
    executor_ = co_await asio::this_coro::executor;
    // The server counts whole seconds; at the command's own deadline (past the runner's watchdog)
    // it is only a backstop.
    server_timeout_ = deadline.is_none() ? 10LL * 365 * 24 * 3600 : (deadline.remaining().count() + 999) / 1000;
    const auto now = Deadline::clock::now();
    next_check_ = now + std::chrono::seconds(1);
    if (settings_.use_websocket && !websocket_refused_.load()) co_await start_on_hub(now);
    if (!sub_) co_await start_by_rest(deadline);
  }

  Task<bool> follow(Deadline::time_point until, Deadline deadline) {
    if (exit_code_) co_return true;
    if (sub_) {
      // Events arrive by themselves; a search now and then covers any the socket missed.
      co_await listen(std::min(until, next_check_));
      if (exit_code_) co_return true;
      if (Deadline::clock::now() >= next_check_) {
        if (command_id_.empty()) co_await find_command_id();
        if (!command_id_.empty()) co_await poll(deadline);
        next_check_ = Deadline::clock::now() + std::chrono::seconds(1);
      }
    } else {
      co_await poll(deadline);
      if (exit_code_) co_return true;
      const auto left = until - Deadline::clock::now();
      asio::steady_timer timer(co_await asio::this_coro::executor);
      timer.expires_after(std::min<Deadline::clock::duration>(wait_, std::max<Deadline::clock::duration>(left, {})));
      co_await timer.async_wait(asio::use_awaitable);
      wait_ = wait_.count() == 0 ? std::chrono::milliseconds(1) : std::min(wait_ * 2, settings_.max_poll_interval);
    }
    co_return exit_code_.has_value();
  }

  Task<void> read(const std::string& path, std::uint64_t from, const shell::FileSink& sink, bool live, Deadline deadline) {
    std::uint64_t offset = from;
    http::RequestOptions o;
    o.deadline = deadline;
    if (live) o.idle_timeout = std::chrono::seconds(5);  // a live read is only a preview
    o.on_body = [&](std::string_view data) {
      sink(offset, data);
      offset += data.size();
      return true;
    };
    const std::optional<std::uint64_t> range = from;
    co_await api_.co_download(path, std::move(o), range);
  }

  // The line runs on the server after we stop waiting: only its start is awaited.
  Task<void> spawn(const std::string& line) {
    try {
      co_await api_.co_start_bash_command(line, 60, Deadline::after(std::chrono::seconds(10)));
    } catch (...) {
      // The server is gone or refuses; nothing is left that we could still reach.
    }
  }

  Task<void> finish() {
    if (hub_ && sub_) hub_->unsubscribe(sub_.get());
    sub_.reset();
    hub_.reset();
    co_return;
  }

  std::string failure() const {
    return runner_errors_.rfind("Error executing command", 0) == 0 ? runner_errors_ : std::string();
  }
  std::string where() const { return "on " + api_.endpoint(); }
  std::string_view name() const noexcept { return "agent server"; }

 private:
  Task<void> start_by_rest(Deadline deadline) { command_id_ = co_await api_.co_start_bash_command(line_, server_timeout_, deadline); }

  std::string command_frame() const { return nlohmann::json{{"command", line_}, {"timeout", server_timeout_}}.dump(); }

  // The command goes out on the hub's socket, which the first command to need one connects:
  // it subscribes, authenticates in the first frame, and each command then sends its own frame
  // (the server reads them in order, so the subscription exists before the command starts).
  // The command is recognised in the BashCommand event by its text, which holds our token. Any
  // failure before the command can have started leaves sub_ empty for start_by_rest().
  Task<void> start_on_hub(Deadline::time_point now) {
    const auto connect_deadline = now + std::chrono::seconds(10);
    auto hub = hubs_.hub(executor_);
    co_await hub->wait_connected();
    co_await hub->refresh();
    if (!hub->has_socket()) {
      hub->begin_connecting();
      std::optional<Socket> socket;
      std::exception_ptr failure;
      try {
        socket = co_await connect_socket(connect_deadline);
      } catch (...) {
        failure = std::current_exception();
      }
      hub->connected(std::move(socket));
      if (failure) std::rethrow_exception(failure);
      if (!hub->has_socket()) co_return;
    }
    auto sub = std::make_shared<Subscription>(executor_, line_);
    const bool sent = co_await hub->send(sub, command_frame(), connect_deadline);
    if (!sent) co_return;
    hub_ = std::move(hub);
    sub_ = std::move(sub);
  }

  // A new authenticated socket, or none when the server or a proxy refused the upgrade (which
  // is remembered) or the connection failed (left to the REST call to report).
  Task<std::optional<Socket>> connect_socket(Deadline::time_point deadline) {
    std::optional<Socket> socket;
    try {
      socket.emplace(co_await api_.co_connect_events_socket(deadline));
    } catch (const Error& e) {
      // The key travels in the upgrade's header too: a server that refuses it says so there.
      if (e.code() == errc::authentication_failed) throw;
      if (e.code() != errc::connection_failed && e.code() != errc::timed_out) websocket_refused_.store(true);
      socket.reset();
    }
    if (!socket) co_return socket;
    bool failed = false;
    try {
      co_await api_.co_authenticate(*socket, deadline);
    } catch (const Error&) {
      failed = true;
    }
    if (!failed) co_return socket;
    // The server may have refused the key and closed already: its close frame says so.
    try {
      while (co_await socket->co_receive(std::min(deadline, Deadline::clock::now() + std::chrono::seconds(1)))) {
      }
    } catch (const Error&) {
    }
    if (socket->close_code() == std::optional<std::uint16_t>(4001)) throw key_refused();
    socket.reset();
    co_return socket;
  }

  Error key_refused() const {
    return Error(errc::authentication_failed,
                 "agent server: the session key was refused (" + api_.endpoint() + " closed the event socket with 4001)",
                 401, "invalid session key");
  }

  // Takes the events the hub handed over, waiting for more until `until` or our command's end.
  Task<void> listen(Deadline::time_point until) {
    while (!exit_code_) {
      if (command_id_.empty()) command_id_ = sub_->command_id;
      while (!sub_->events.empty()) {
        accept(sub_->events.front());
        sub_->events.pop_front();
      }
      apply();
      if (exit_code_) co_return;
      if (!sub_->refused.empty())
        throw Error(errc::protocol_error, "agent server refused the command: " + sub_->refused);
      if (sub_->lost) {
        co_await lost_socket();
        co_return;
      }
      if (Deadline::clock::now() >= until) co_return;
      if (!sub_->notified) {
        sub_->wake.expires_at(until);
        auto [ec] = co_await sub_->wake.async_wait(compat::as_tuple(asio::use_awaitable));
        const auto state = co_await asio::this_coro::cancellation_state;
        if (workspace::detail::cancelled(state)) throw Error(asio::error::operation_aborted, "agent server: cancelled");
        (void)ec;  // news (the hub cancels the wait), the time, or the caller's slot (checked above)
      }
      sub_->notified = false;
    }
  }

  // The socket closed or broke. If the server refused our key (close 4001) it never read the
  // command: that is the HTTP API's 401, said without another request (which a server that
  // answers before reading the body may cut short). Otherwise continue by polling, first finding
  // the command if its BashCommand event never came.
  Task<void> lost_socket() {
    const bool refused_key = sub_->close_code == std::optional<std::uint16_t>(4001);
    if (command_id_.empty()) command_id_ = sub_->command_id;
    sub_.reset();
    hub_.reset();
    if (refused_key) throw key_refused();
    if (command_id_.empty()) {
      co_await find_command_id();
      const Deadline none;
      if (command_id_.empty()) co_await start_by_rest(none);  // the frame never reached the command service
    }
  }

  // Our BashCommand among the newest ones, matched by its text (which holds our token).
  Task<void> find_command_id() {
    http::QueryParams q{{"kind__eq", "BashCommand"}, {"sort_order", "TIMESTAMP_DESC"}, {"limit", "100"}};
    const auto page = co_await api_.co_search_bash_events(std::move(q));
    if (!page.contains("items") || !page["items"].is_array()) co_return;
    for (const auto& item : page["items"])
      if (item.is_object() && item.value("command", std::string()) == line_) {
        command_id_ = item.value("id", std::string());
        co_return;
      }
  }

  // One search round: every new BashOutput event, applied in order.
  Task<void> poll(Deadline deadline) {
    std::optional<std::string> page;
    for (int pages = 0; pages < 1000; ++pages) {
      http::QueryParams q{{"command_id__eq", command_id_}, {"kind__eq", "BashOutput"},
                          {"sort_order", "TIMESTAMP"}, {"limit", "100"}};
      if (next_order_ > 0) q.emplace_back("order__gt", std::to_string(next_order_ - 1));
      if (page) q.emplace_back("page_id", *page);
      http::RequestOptions o;
      o.timeout = std::clamp(deadline.remaining(), std::chrono::milliseconds(1000), std::chrono::milliseconds(30'000));
      const auto events = co_await api_.co_search_bash_events(std::move(q), std::move(o));
      if (!events.contains("items") || !events["items"].is_array())
        throw Error(errc::protocol_error, "agent server: bash_events/search answered no items");
      for (const auto& event : events["items"]) accept(event);
      apply();
      const auto& next = events.contains("next_page_id") ? events["next_page_id"] : nlohmann::json();
      if (!next.is_string() || (page && *page == next.template get<std::string>())) co_return;
      page = next.template get<std::string>();
    }
  }
  void accept(const nlohmann::json& event) {
    if (!event.is_object() || event.value("kind", std::string()) != "BashOutput") return;
    const std::string id = event.value("id", std::string());
    if (id.empty() || !seen_.insert(id).second) return;  // the same event on two pages
    if (!event.contains("order") || !event["order"].is_number_integer())
      throw Error(errc::protocol_error, "agent server: a BashOutput event without an order");
    const int order = event["order"].template get<int>();
    if (order >= next_order_) waiting_.emplace(order, event);
  }

  // Events in order, without gaps (a page may hold later events before earlier ones land).
  void apply() {
    for (auto it = waiting_.find(next_order_); it != waiting_.end(); it = waiting_.find(next_order_)) {
      const auto& event = it->second;
      if (event.contains("stdout") && event["stdout"].is_string())
        sink_(event["stdout"].template get_ref<const std::string&>());
      if (event.contains("stderr") && event["stderr"].is_string())
        runner_errors_ += event["stderr"].template get_ref<const std::string&>();
      if (event.contains("exit_code") && event["exit_code"].is_number_integer())
        exit_code_ = event["exit_code"].template get<int>();
      waiting_.erase(it);
      ++next_order_;
    }
  }

  Api& api_;
  EventHubs<Socket>& hubs_;
  std::atomic<bool>& websocket_refused_;
  ChannelSettings settings_;
  std::string line_;
  shell::RunnerSink sink_;
  long long server_timeout_ = 0;
  asio::any_io_executor executor_;
  std::shared_ptr<EventHub<Socket>> hub_;
  std::shared_ptr<Subscription> sub_;
  std::string command_id_;
  std::set<std::string> seen_;
  std::map<int, nlohmann::json> waiting_;
  int next_order_ = 0;
  std::optional<int> exit_code_;
  std::string runner_errors_;
  Deadline::time_point next_check_{};
  std::chrono::milliseconds wait_{0};
};

}  // namespace agent::detail
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
