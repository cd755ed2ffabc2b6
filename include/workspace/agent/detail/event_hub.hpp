// One event socket per workspace and execution context, shared by every command running there.
// The server pushes every event to every subscribed socket, so N commands with a socket each
// cost it N x N pushes (64 at once: 4096 pushes of each event kind); through one socket, N.
//
// A command subscribes (its text, which holds its token, names its BashCommand event; the
// event's id then names its BashOutput events), sends its command frame, and waits on its own
// wake timer. One reader coroutine per hub, started while anyone is subscribed, receives the
// events and hands each to its command. A hub is used from one thread at a time (its context's,
// or a strand's), as the workspace is.
#pragma once

#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/version.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/execution_context.hpp>
#include <asio/query.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

WORKSPACE_NAMESPACE_BEGIN
WORKSPACE_COROUTINES_BEGIN
namespace agent::detail {

// What one command hears through the hub.
struct Subscription {
  Subscription(asio::any_io_executor executor, std::string command_line)
      : line(std::move(command_line)), wake(std::move(executor)) {}
  std::string line;                    // the command as sent: its BashCommand carries it
  std::string command_id;              // from its BashCommand event
  std::deque<nlohmann::json> events;   // its BashOutput events, as they came
  std::string refused;                 // a BashError's detail
  bool lost = false;                   // the socket broke or closed: follow by REST instead
  std::optional<std::uint16_t> close_code;
  bool notified = false;               // news since the command last looked
  asio::steady_timer wake;             // cancelled on news

  void notify() {
    notified = true;
    wake.cancel();
  }
};

template <class Socket>
class EventHub : public std::enable_shared_from_this<EventHub<Socket>> {
 public:
  static constexpr std::chrono::seconds max_idle{20};

  explicit EventHub(asio::any_io_executor executor) : executor_(std::move(executor)), ready_(executor_) {}

  // Whether a socket is open (a first command connects it, the others wait for that).
  bool has_socket() const noexcept { return socket_.has_value(); }
  bool connecting() const noexcept { return connecting_; }

  // The socket the caller connected and authenticated (or none, when it could not).
  void connected(std::optional<Socket> socket) {
    connecting_ = false;
    socket_ = std::move(socket);
    since_ = std::chrono::steady_clock::now();
    ready_.cancel();
  }
  void begin_connecting() {
    connecting_ = true;
    ready_.expires_at(asio::steady_timer::time_point::max());
  }
  // Waits while another command connects.
  Task<void> wait_connected() {
    while (connecting_) {
      // (Values named before they are tested: GCC 12 miscompiles a co_await inside an if.)
      auto [ec] = co_await ready_.async_wait(compat::as_tuple(asio::use_awaitable));
      const auto state = co_await asio::this_coro::cancellation_state;
      if (workspace::detail::cancelled(state)) throw Error(asio::error::operation_aborted, "agent server: cancelled");
      (void)ec;  // cancelled by connected(), or by the caller's slot (checked above)
    }
  }

  // An idle socket is drained first (the server pushed to it meanwhile), and dropped when it
  // closed or idled past max_idle.
  Task<void> refresh() {
    if (!socket_ || reading_) co_return;
    bool closed = std::chrono::steady_clock::now() - since_ >= max_idle;
    try {
      while (!closed && co_await socket_->co_receive(std::chrono::steady_clock::now())) {
      }
    } catch (const Error&) {
      closed = true;
    }
    if (closed) socket_.reset();
  }

  // Subscribes `sub` and sends its command frame; false when the socket failed before the frame
  // went out (the command then starts by REST).
  Task<bool> send(std::shared_ptr<Subscription> sub, std::string frame, Deadline::time_point deadline) {
    if (!socket_) co_return false;
    subscriptions_.push_back(sub);
    bool sent = false;
    try {
      co_await socket_->co_send_text(frame, deadline);
      sent = true;
    } catch (const Error&) {
    }
    if (!sent) {
      unsubscribe(sub.get());
      socket_.reset();
      co_return false;
    }
    since_ = std::chrono::steady_clock::now();
    if (!reading_) start_reader();
    co_return true;
  }

  // The last one out stops the reader at once (so that the context's run() returns), while it
  // waits for the socket to be readable, which consumes nothing.
  void unsubscribe(const Subscription* sub) noexcept {
    std::erase_if(subscriptions_, [&](const auto& s) { return s.get() == sub; });
    if (subscriptions_.empty() && waiting_) stop_.emit(asio::cancellation_type::terminal);
  }

 private:
  void start_reader() {
    reading_ = true;
    asio::co_spawn(executor_, read_loop(this->shared_from_this()), asio::bind_cancellation_slot(stop_.slot(), asio::detached));
  }

  static Task<void> read_loop(std::shared_ptr<EventHub> self) {
    while (!self->subscriptions_.empty() && self->socket_) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      bool readable = false;
      bool broke = false;
      self->waiting_ = true;
      try {
        readable = co_await self->socket_->co_wait_readable(until);
      } catch (const std::exception&) {
        broke = true;
      }
      self->waiting_ = false;
      const auto state = co_await asio::this_coro::cancellation_state;
      if (workspace::detail::cancelled(state)) break;  // stopped: the socket stays
      std::optional<std::string> message;
      if (readable && !broke) {
        try {
          message = co_await self->socket_->co_receive(until);
        } catch (const std::exception&) {
          broke = true;
        }
      }
      if (broke) {
        self->lose_all();
        break;
      }
      if (message) self->dispatch(*message);
    }
    self->since_ = std::chrono::steady_clock::now();
    self->reading_ = false;
    // Someone subscribed while it stopped: a fresh reader (this one's state is cancelled).
    if (!self->subscriptions_.empty() && self->socket_) self->start_reader();
  }

  void lose_all() {
    const auto code = socket_ ? socket_->close_code() : std::nullopt;
    socket_.reset();
    for (const auto& s : subscriptions_) {
      s->lost = true;
      s->close_code = code;
      s->notify();
    }
    subscriptions_.clear();
    early_.clear();
  }

  void dispatch(const std::string& message) {
    auto event = http::detail::parse_json(message);
    if (!event.is_object()) return;
    const std::string kind = event.value("kind", std::string());
    if (kind == "BashCommand") {
      const std::string command = event.value("command", std::string());
      for (const auto& s : subscriptions_)
        if (s->command_id.empty() && s->line == command) {
          s->command_id = event.value("id", std::string());
          // Its output may have come first.
          for (auto it = early_.begin(); it != early_.end();)
            if (it->value("command_id", std::string()) == s->command_id) {
              s->events.push_back(std::move(*it));
              it = early_.erase(it);
            } else {
              ++it;
            }
          s->notify();
          return;
        }
    } else if (kind == "BashOutput") {
      const std::string id = event.value("command_id", std::string());
      for (const auto& s : subscriptions_)
        if (!s->command_id.empty() && s->command_id == id) {
          s->events.push_back(std::move(event));
          s->notify();
          return;
        }
      // Ours before its BashCommand, or another client's: kept a while.
      early_.push_back(std::move(event));
      if (early_.size() > 256) early_.pop_front();
    } else if (kind == "BashError") {
      // Not tied to a command: those still waiting for their BashCommand hear it.
      for (const auto& s : subscriptions_)
        if (s->command_id.empty()) {
          s->refused = event.value("detail", std::string());
          s->notify();
        }
    }
  }

  asio::any_io_executor executor_;
  std::optional<Socket> socket_;
  std::chrono::steady_clock::time_point since_{};
  bool connecting_ = false;
  bool reading_ = false;
  bool waiting_ = false;  // the reader waits for the socket to be readable
  asio::cancellation_signal stop_;
  asio::steady_timer ready_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  std::deque<nlohmann::json> early_;
};

template <class Socket>
class EventHubs;

// Which workspaces hold a hub in one execution context: when the context goes away first, its
// hubs go with it (their sockets belong to it).
template <class Socket>
class HubCache final : public asio::execution_context::service {
 public:
  inline static asio::execution_context::id id;

  explicit HubCache(asio::execution_context& context) : asio::execution_context::service(context) {}

  void remember(const std::shared_ptr<EventHubs<Socket>>& hubs) {
    std::lock_guard lock(mutex_);
    std::erase_if(owners_, [](const auto& h) { return h.expired(); });
    for (const auto& h : owners_)
      if (h.lock() == hubs) return;
    owners_.push_back(hubs);
  }

 private:
  void shutdown() override {
    std::vector<std::weak_ptr<EventHubs<Socket>>> owners;
    {
      std::lock_guard lock(mutex_);
      owners.swap(owners_);
    }
    for (const auto& h : owners)
      if (const auto hubs = h.lock()) hubs->drop(&context());
  }
  std::mutex mutex_;
  std::vector<std::weak_ptr<EventHubs<Socket>>> owners_;
};

// One workspace's hubs, one per execution context it runs commands on. clear() retires them all
// (their sockets carry an old session key).
template <class Socket>
class EventHubs : public std::enable_shared_from_this<EventHubs<Socket>> {
 public:
  EventHubs() = default;
  EventHubs(const EventHubs&) = delete;
  EventHubs& operator=(const EventHubs&) = delete;

  std::shared_ptr<EventHub<Socket>> hub(const asio::any_io_executor& executor) {
    asio::execution_context& context = asio::query(executor, asio::execution::context);
    {
      std::lock_guard lock(mutex_);
      if (const auto it = hubs_.find(&context); it != hubs_.end()) return it->second;
    }
    asio::use_service<HubCache<Socket>>(context).remember(this->shared_from_this());
    std::lock_guard lock(mutex_);
    auto& hub = hubs_[&context];
    if (!hub) hub = std::make_shared<EventHub<Socket>>(executor);
    return hub;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    hubs_.clear();
  }
  void drop(asio::execution_context* context) {
    std::shared_ptr<EventHub<Socket>> gone;
    std::lock_guard lock(mutex_);
    if (const auto it = hubs_.find(context); it != hubs_.end()) {
      gone = std::move(it->second);
      hubs_.erase(it);
    }
  }

 private:
  std::mutex mutex_;
  std::map<asio::execution_context*, std::shared_ptr<EventHub<Socket>>> hubs_;
};

}  // namespace agent::detail
WORKSPACE_COROUTINES_END
WORKSPACE_NAMESPACE_END
