// The shell::Channel of RemoteWorkspace: a command starts on the server's event websocket (kept
// open between commands) and its events are pushed; where a proxy refuses websockets or the
// socket breaks, it starts and is followed by REST, polling from at once and backing off. Its
// calls are coroutines on the executor of the command's operation.
#pragma once

#include <workspace/agent/api.hpp>
#include <workspace/core/async.hpp>
#include <workspace/core/deadline.hpp>
#include <workspace/core/error.hpp>
#include <workspace/http/detail/json.hpp>
#include <workspace/http/url.hpp>
#include <workspace/shell/command.hpp>
#include <workspace/version.hpp>

#include <asio/execution_context.hpp>
#include <asio/query.hpp>
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

template <class Socket>
class SocketPool;

// Which socket pools hold idle sockets of one execution context (an io_context: the user's, or
// the thread's that runs the blocking calls): when the context goes away first, its sockets go
// with it.
template <class Socket>
class SocketCache final : public asio::execution_context::service {
 public:
  inline static asio::execution_context::id id;

  explicit SocketCache(asio::execution_context& context) : asio::execution_context::service(context) {}

  void remember(const std::shared_ptr<SocketPool<Socket>>& pool) {
    std::lock_guard lock(mutex_);
    std::erase_if(pools_, [](const auto& p) { return p.expired(); });
    for (const auto& p : pools_)
      if (p.lock() == pool) return;
    pools_.push_back(pool);
  }

 private:
  void shutdown() override {
    std::vector<std::weak_ptr<SocketPool<Socket>>> pools;
    {
      std::lock_guard lock(mutex_);
      pools.swap(pools_);
    }
    for (const auto& p : pools)
      if (const auto pool = p.lock()) pool->drop(&context());
  }
  std::mutex mutex_;
  std::vector<std::weak_ptr<SocketPool<Socket>>> pools_;
};

// One workspace's authenticated event sockets kept between commands: opening one costs a
// connection, an upgrade and the auth frame. A socket belongs to the execution context it was
// made on, so only an operation on the same context reuses one. The server pushes every event
// to each socket, and one that nobody reads can hold up its pushes to everyone (a full buffer):
// so idle sockets are few, drained before reuse, dropped after a while, and closed when the
// workspace goes away. Concurrent commands each hold one. clear() closes them all (they carry
// an old session key).
template <class Socket>
class SocketPool : public std::enable_shared_from_this<SocketPool<Socket>> {
 public:
  static constexpr std::chrono::seconds max_idle{20};
  static constexpr std::size_t max_idle_sockets = 8;

  SocketPool() = default;
  SocketPool(const SocketPool&) = delete;
  SocketPool& operator=(const SocketPool&) = delete;

  Task<std::optional<Socket>> take(asio::any_io_executor executor) {
    asio::execution_context* const context = &asio::query(executor, asio::execution::context);
    std::optional<Socket> out;
    {
      std::lock_guard lock(mutex_);
      const auto now = std::chrono::steady_clock::now();
      std::erase_if(idle_, [&](const Idle& i) { return now - i.since >= max_idle; });
      for (auto it = idle_.begin(); it != idle_.end(); ++it)
        if (it->context == context) {
          out = std::move(it->socket);
          idle_.erase(it);
          break;
        }
    }
    if (!out) co_return out;
    bool closed = false;
    try {
      while (co_await out->co_receive(std::chrono::steady_clock::now())) {
      }
    } catch (const Error&) {
      closed = true;  // closed meanwhile
    }
    if (closed) out.reset();
    co_return out;
  }
  void give_back(Socket socket, const asio::any_io_executor& executor) {
    asio::execution_context& context = asio::query(executor, asio::execution::context);
    asio::use_service<SocketCache<Socket>>(context).remember(this->shared_from_this());
    std::lock_guard lock(mutex_);
    if (idle_.size() >= max_idle_sockets) return;  // this one closes
    idle_.push_back(Idle{std::move(socket), &context, std::chrono::steady_clock::now()});
  }
  void clear() {
    std::lock_guard lock(mutex_);
    idle_.clear();
  }
  // The context is going away: its sockets first.
  void drop(asio::execution_context* context) {
    std::lock_guard lock(mutex_);
    std::erase_if(idle_, [&](const Idle& i) { return i.context == context; });
  }

 private:
  struct Idle {
    Socket socket;
    asio::execution_context* context;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex mutex_;
  std::vector<Idle> idle_;
};

struct ChannelSettings {
  bool use_websocket = true;
  std::chrono::milliseconds max_poll_interval{50};
};

template <class Api>
class Channel {
 public:
  using Socket = typename Api::socket_type;

  Channel(Api& api, SocketPool<Socket>& sockets, std::atomic<bool>& websocket_refused, ChannelSettings settings)
      : api_(api), sockets_(sockets), websocket_refused_(websocket_refused), settings_(settings) {}

  Task<void> start(const std::string& line, shell::RunnerSink sink, Deadline deadline) {
    line_ = line;
    sink_ = std::move(sink);
    executor_ = co_await asio::this_coro::executor;
    // The server counts whole seconds; at the command's own deadline (past the runner's watchdog)
    // it is only a backstop.
    server_timeout_ = deadline.is_none() ? 10LL * 365 * 24 * 3600 : (deadline.remaining().count() + 999) / 1000;
    const auto now = Deadline::clock::now();
    next_check_ = now + std::chrono::seconds(1);
    if (settings_.use_websocket && !websocket_refused_.load()) co_await start_on_socket(now);
    if (!socket_) co_await start_by_rest(deadline);
  }

  Task<bool> follow(Deadline::time_point until, Deadline deadline) {
    if (exit_code_) co_return true;
    if (socket_) {
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
    if (socket_ && exit_code_ && socket_->is_open()) sockets_.give_back(std::move(*socket_), executor_);
    socket_.reset();
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

  // Subscribes, authenticates in the first frame and sends the command in the second: the
  // server reads them in order, so the subscription exists before the command starts. The
  // command is recognised in the BashCommand event by its text, which holds our token. Any
  // failure before the command can have started leaves socket_ empty for start_by_rest().
  Task<void> start_on_socket(Deadline::time_point now) {
    const auto connect_deadline = now + std::chrono::seconds(10);
    const std::string frame = command_frame();
    if ((socket_ = co_await sockets_.take(executor_))) {
      bool sent = false;
      try {
        co_await socket_->co_send_text(frame, connect_deadline);
        sent = true;
      } catch (const Error&) {
      }
      if (sent) {
        sent_on_socket_ = true;
        co_return;
      }
      socket_.reset();  // a fresh one below
    }
    std::exception_ptr refused_upgrade;
    try {
      socket_.emplace(co_await api_.co_connect_events_socket(connect_deadline));
    } catch (const Error& e) {
      // The key travels in the upgrade's header too: a server that refuses it says so there.
      if (e.code() == errc::authentication_failed) throw;
      // A refused upgrade (a proxy without websockets, an older server) is remembered; a
      // connection failure is left to the REST call to report.
      if (e.code() != errc::connection_failed && e.code() != errc::timed_out) websocket_refused_.store(true);
      socket_.reset();
      co_return;
    }
    bool failed = false;
    try {
      co_await api_.co_authenticate(*socket_, connect_deadline);
      co_await socket_->co_send_text(frame, connect_deadline);
      sent_on_socket_ = true;
    } catch (const Error&) {
      failed = true;
    }
    if (!failed) co_return;
    // The server may have refused the key and closed already: its close frame says so.
    try {
      while (co_await socket_->co_receive(std::min(connect_deadline, Deadline::clock::now() + std::chrono::seconds(1)))) {
      }
    } catch (const Error&) {
    }
    const bool refused = socket_->close_code() == std::optional<std::uint16_t>(4001);
    socket_.reset();
    if (refused) throw key_refused();
  }

  Error key_refused() const {
    return Error(errc::authentication_failed,
                 "agent server: the session key was refused (" + api_.endpoint() + " closed the event socket with 4001)",
                 401, "invalid session key");
  }

  // Reads socket events until `until` or our command's end.
  Task<void> listen(Deadline::time_point until) {
    while (!exit_code_) {
      std::optional<std::string> message;
      std::exception_ptr lost;
      try {
        message = co_await socket_->co_receive(until);
      } catch (const Error&) {
        lost = std::current_exception();
      }
      if (lost) {
        co_await lost_socket(lost);
        co_return;
      }
      if (!message) co_return;
      const auto event = http::detail::parse_json(*message);
      if (!event.is_object()) continue;
      const std::string kind = event.value("kind", std::string());
      if (kind == "BashCommand") {
        if (command_id_.empty() && event.value("command", std::string()) == line_)
          command_id_ = event.value("id", std::string());
        for (const auto& early : early_) take_event(early);
        early_.clear();
      } else if (kind == "BashOutput") {
        if (command_id_.empty()) {
          if (early_.size() < 64) early_.push_back(event);  // may be ours; its BashCommand is on the way
        } else {
          take_event(event);
        }
      } else if (kind == "BashError") {
        throw Error(errc::protocol_error, "agent server refused the command: " + event.value("detail", std::string()));
      }
    }
  }

  void take_event(const nlohmann::json& event) {
    if (event.value("command_id", std::string()) != command_id_) return;
    accept(event);
    apply();
  }

  // The socket closed or broke. If the server refused our key (close 4001) it never read the
  // command: that is the HTTP API's 401, said without another request (which a server that
  // answers before reading the body may cut short). Otherwise continue by polling, first finding
  // the command if its BashCommand event never came.
  Task<void> lost_socket(std::exception_ptr e) {
    const bool refused_key = socket_->close_code() == std::optional<std::uint16_t>(4001);
    socket_.reset();
    if (refused_key) throw key_refused();
    if (command_id_.empty()) {
      co_await find_command_id();
      if (command_id_.empty()) {
        if (!sent_on_socket_) std::rethrow_exception(e);
        co_await start_by_rest({});  // the frame never reached the server's command service
      }
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
  SocketPool<Socket>& sockets_;
  std::atomic<bool>& websocket_refused_;
  ChannelSettings settings_;
  std::string line_;
  shell::RunnerSink sink_;
  long long server_timeout_ = 0;
  asio::any_io_executor executor_;
  std::optional<Socket> socket_;
  bool sent_on_socket_ = false;
  std::vector<nlohmann::json> early_;
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
