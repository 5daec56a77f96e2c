#include "bus/redis/redis_bus.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "bus/codec.hpp"
#include "bus/gate.hpp"
#include "bus/redis/redis_scripts.hpp"
#include "bus/redis/resp_connection.hpp"
#include "common/clock.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"

namespace parley::bus {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using ReplyHandler = RespConnection::ReplyHandler;

namespace {

using namespace redis_scripts;  // NOLINT: the scripts, by name

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }

}  // namespace

namespace {

class RedisBus final : public Bus {
 public:
  RedisBus(RedisOptions options, Executor executor, BusMetrics* metrics)
      : o_(std::move(options)),
        instance_(NewInstanceId()),
        gate_(std::move(executor)),
        metrics_(metrics),
        work_(asio::make_work_guard(io_)),
        heartbeat_timer_(io_),
        refresh_timer_(io_),
        probe_timer_(io_),
        cmd_retry_(io_),
        sub_retry_(io_),
        claim_deadline_(io_),
        claim_retry_(io_),
        stop_timer_(io_),
        ping_channel_(PingChannel(instance_)),
        started_ms_(NowMs()) {}

  ~RedisBus() override { Stop(); }

  void Start(Handlers handlers) override {
    handlers_ = std::move(handlers);
    started_ = true;
    thread_ = std::thread([this] { io_.run(); });
    asio::post(io_, [this] {
      ConnectCommands();
      ConnectSubscriber();
      Heartbeat();
      RefreshRegistrations();
    });
  }

  void Stop() override {
    if (!started_ || stopped_.exchange(true)) return;
    asio::post(io_, [this] { Shutdown(); });
    thread_.join();
    gate_.Close();
    if (metrics_ != nullptr) metrics_->connected.Set(0);
  }

  const std::string& node_id() const override { return o_.node_id; }
  const std::string& instance() const override { return instance_; }
  bool connected() const override { return connected_.load(); }

  void ClaimNode(std::uint32_t timeout_ms, std::function<void(Status)> done) override {
    asio::post(io_, [this, timeout_ms, done = std::move(done)]() mutable {
      claim_wanted_ = true;
      claim_done_ = std::move(done);
      dead_checks_ = 0;
      claim_deadline_.expires_after(std::chrono::milliseconds(timeout_ms));
      claim_deadline_.async_wait([this](boost::system::error_code ec) {
        if (ec || !claim_done_) return;
        FinishClaim(Fail(Errc::kUnavailable,
                         dead_checks_ > 0
                             ? "node id " + o_.node_id + " is held by an instance that looks dead"
                             : "the bus is not reachable; the node id is claimed once it is"));
      });
      if (cmd_up_) TryClaim();
    });
  }

  void PublishWake(const Wake& wake) override {
    Wake m = wake;
    m.origin = instance_;
    m.sent_us = NowUs();
    Publish(UserChannel(m.user), Encode(m));
  }
  void PublishPresence(const PresenceChange& change) override {
    PresenceChange m = change;
    m.origin = instance_;
    Publish(std::string(kPresenceChannel), Encode(m));
  }
  void PublishTyping(const Typing& typing) override {
    Typing m = typing;
    m.origin = instance_;
    Publish(UserChannel(m.to), Encode(m));
  }
  void PublishControl(const Control& control) override {
    Control m = control;
    m.origin = instance_;
    Publish(UserChannel(m.user), Encode(m));
  }

  void Subscribe(UserId user, std::function<void(bool)> done) override {
    asio::post(io_, [this, user, done = std::move(done)]() mutable {
      auto& s = subs_[user];
      if (++s.count == 1) {
        s.confirmed = false;
        if (sub_up_) SendSubscribe(user);
      }
      if (!done) return;
      if (s.confirmed) {
        gate_.Post([done = std::move(done)] { done(true); });
      } else if (sub_up_) {
        s.waiters.push_back(std::move(done));
      } else {
        gate_.Post([done = std::move(done)] { done(false); });
      }
    });
  }

  void Unsubscribe(UserId user) override {
    asio::post(io_, [this, user] {
      auto it = subs_.find(user);
      if (it == subs_.end() || --it->second.count > 0) return;
      for (auto& w : it->second.waiters) gate_.Post([w = std::move(w)] { w(false); });
      subs_.erase(it);
      if (sub_up_) sub_->Command({"UNSUBSCRIBE", UserChannel(user)}, nullptr);
    });
  }

  void Register(UserId user, DeviceId device, std::function<void(Result<bool>)> done) override {
    asio::post(io_, [this, user, device, done = std::move(done)]() mutable {
      registrations_.insert({user, device});
      if (!cmd_up_) return Answer(std::move(done), Fail(Errc::kUnavailable, "bus down"));
      EvalRegister(user, device, NowMs(),
                   [this, done = std::move(done)](Result<ReplyPtr> r) mutable {
                     Answer(std::move(done), IntegerResult(r));
                   });
    });
  }

  void Unregister(UserId user, DeviceId device, std::function<void(Result<bool>)> done) override {
    asio::post(io_, [this, user, device, done = std::move(done)]() mutable {
      registrations_.erase({user, device});
      if (!cmd_up_) return Answer(std::move(done), Fail(Errc::kUnavailable, "bus down"));
      Eval(kUnregister, {PresenceKey(user), NodeSetKey()},
           {Member(device), std::to_string(NowMs()), NodeSetMember(user, device)},
           [this, done = std::move(done)](Result<ReplyPtr> r) mutable {
             Answer(std::move(done), IntegerResult(r));
           });
    });
  }

  void Locate(UserId user, std::function<void(Result<std::vector<DeviceLocation>>)> done) override {
    asio::post(io_, [this, user, done = std::move(done)]() mutable {
      if (!cmd_up_) return Answer(std::move(done), Fail(Errc::kUnavailable, "bus down"));
      cmd_->Command(
          {"ZRANGEBYSCORE", PresenceKey(user), std::to_string(NowMs()), "+inf"},
          [this, done = std::move(done)](Result<ReplyPtr> r) mutable {
            if (!r) return Answer(std::move(done), std::unexpected(r.error()));
            if ((*r)->type != REDIS_REPLY_ARRAY) {
              return Answer(std::move(done),
                            Fail(Errc::kInternal, "redis: " + std::string(ReplyText(r->get()))));
            }
            std::vector<DeviceLocation> where;
            for (std::size_t i = 0; i < (*r)->elements; ++i) {
              auto loc = ParseRegistryMember(ReplyText((*r)->element[i]));
              if (loc) {
                where.push_back(std::move(*loc));
              } else if (metrics_ != nullptr) {
                metrics_->dropped.Inc();
              }
            }
            Answer(std::move(done), Result<std::vector<DeviceLocation>>(std::move(where)));
          });
    });
  }

  void TakeWindows(std::vector<WindowLimit> limits,
                   std::function<void(Result<std::int64_t>)> done) override {
    asio::post(io_, [this, limits = std::move(limits), done = std::move(done)]() mutable {
      if (!cmd_up_) return Answer(std::move(done), Fail(Errc::kUnavailable, "bus down"));
      if (limits.empty()) return Answer(std::move(done), Result<std::int64_t>(0));
      std::vector<std::string> keys;
      std::vector<std::string> args{instance_ + ":" + std::to_string(++window_events_)};
      for (const auto& l : limits) {
        keys.push_back("lim:" + l.key);
        args.push_back(std::to_string(l.limit));
        args.push_back(std::to_string(std::max<std::int64_t>(1, l.window_ms)));
      }
      Eval(kTakeWindows, std::move(keys), std::move(args),
           [this, done = std::move(done)](Result<ReplyPtr> r) mutable {
             if (!r) return Answer(std::move(done), std::unexpected(r.error()));
             if ((*r)->type != REDIS_REPLY_INTEGER) {
               return Answer(std::move(done),
                             Fail(Errc::kInternal, "redis: " + std::string(ReplyText(r->get()))));
             }
             Answer(std::move(done), Result<std::int64_t>((*r)->integer));
           });
    });
  }

 private:
  struct Subscription {
    std::uint32_t count = 0;
    bool confirmed = false;
    std::vector<std::function<void(bool)>> waiters;
  };

  template <class T>
  void Answer(std::function<void(Result<T>)> done, std::type_identity_t<Result<T>> r) {
    if (done) gate_.Post([done = std::move(done), r = std::move(r)] { done(r); });
  }

  static Result<bool> IntegerResult(const Result<ReplyPtr>& r) {
    if (!r) return std::unexpected(r.error());
    if ((*r)->type != REDIS_REPLY_INTEGER) {
      return Fail(Errc::kInternal, "redis: " + std::string(ReplyText(r->get())));
    }
    return (*r)->integer == 1;
  }

  // ---- keys -------------------------------------------------------------
  std::string PresenceKey(UserId user) const { return "pr:" + std::to_string(user); }
  std::string NodeSetKey() const { return "nd:" + instance_; }
  std::string NodeKey() const { return "node:" + instance_; }
  std::string ClaimKey() const { return "nid:" + o_.node_id; }
  std::string Member(DeviceId device) const {
    return std::to_string(device) + "/" + instance_ + "/" + o_.node_id;
  }
  std::string NodeSetMember(UserId user, DeviceId device) const {
    return std::to_string(user) + " " + Member(device);
  }

  // ---- commands -----------------------------------------------------------
  void Eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
            ReplyHandler handler) {
    if (!cmd_up_) {
      if (handler) handler(Fail(Errc::kUnavailable, "bus down"));
      return;
    }
    std::vector<std::string> cmd{"EVALSHA", script.sha, std::to_string(keys.size())};
    for (auto& k : keys) cmd.push_back(std::move(k));
    for (auto& a : args) cmd.push_back(std::move(a));
    auto conn = cmd_;
    conn->Command(
        cmd, [conn, &script, cmd, handler = std::move(handler)](Result<ReplyPtr> r) mutable {
          // The script cache is empty after a Redis restart (or SCRIPT FLUSH).
          if (r && (*r)->type == REDIS_REPLY_ERROR && ReplyText(r->get()).starts_with("NOSCRIPT")) {
            cmd[0] = "EVAL";
            cmd[1] = script.text;
            return conn->Command(cmd, std::move(handler));
          }
          if (handler) handler(std::move(r));
        });
  }

  void Publish(std::string channel, std::string payload) {
    asio::post(io_, [this, channel = std::move(channel), payload = std::move(payload)] {
      if (!cmd_up_ || cmd_->pending() >= o_.max_pending) {
        if (metrics_ != nullptr) metrics_->publish_lost.Inc();
        return;
      }
      // Counted before the command goes out (as the local bus counts before
      // it delivers): the write may reach Redis, and a subscriber, before
      // Command() returns.
      if (metrics_ != nullptr) metrics_->published.Inc();
      cmd_->Command({"PUBLISH", channel, payload}, nullptr);
    });
  }

  // ---- the command connection -------------------------------------------
  void ConnectCommands() {
    if (stopping_) return;
    auto conn = std::make_shared<RespConnection>(io_, o_.command_timeout);
    cmd_ = conn;
    conn->SetCloseHandler([this, conn](const Error& e) {
      if (conn == cmd_) CommandsLost(e);
    });
    conn->Connect(o_.host, o_.port, [this, conn](Status s) {
      if (conn != cmd_) return;
      if (!s) return CommandsLost(s.error());
      CommandsUp();
    });
  }

  void CommandsUp() {
    cmd_up_ = true;
    cmd_backoff_ = o_.reconnect_min;
    if (cmd_was_up_ && metrics_ != nullptr) metrics_->reconnects.Inc();
    if (cmd_was_up_ || cmd_failures_ > 0)
      PLOG_INFO("bus reconnected", "what=commands node={}", o_.node_id);
    cmd_was_up_ = true;
    cmd_failures_ = 0;
    // On a new connection (Redis may have restarted, empty) the first
    // heartbeat's entry in `nodes` is new by rights; the registrations are
    // written again just below.
    listed_ = false;
    for (const Script* s : kScripts) cmd_->Command({"SCRIPT", "LOAD", s->text}, nullptr);
    Heartbeat();
    if (claim_wanted_ && !claimed_) TryClaim();
    // A restarted Redis has none of this node's registrations.
    RegisterChunk(std::nullopt, Chain::kRestore);
    UpdateState();
  }

  void CommandsLost(const Error& e) {
    if (cmd_) cmd_->Close();
    cmd_ = nullptr;
    if (cmd_up_ || cmd_failures_ == 0) {
      PLOG_WARN("bus unreachable", "what=commands error={}", LogQuote(e.message));
    }
    cmd_up_ = false;
    ++cmd_failures_;
    UpdateState();
    if (stopping_) return;
    cmd_retry_.expires_after(cmd_backoff_);
    cmd_backoff_ = std::min(cmd_backoff_ * 2, o_.reconnect_max);
    cmd_retry_.async_wait([this](boost::system::error_code ec) {
      if (!ec) ConnectCommands();
    });
  }

  void Heartbeat() {
    heartbeat_timer_.expires_after(o_.heartbeat);
    heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Heartbeat();
    });
    if (!cmd_up_) return;
    const auto now = NowMs();
    cmd_->Command({"HSET", NodeKey(), "node_id", o_.node_id, "started_ms",
                   std::to_string(started_ms_), "heartbeat_ms", std::to_string(now)},
                  nullptr);
    cmd_->Command({"PEXPIRE", NodeKey(), Ms(o_.node_ttl)}, nullptr);
    cmd_->Command({"ZADD", "nodes", std::to_string(now), instance_}, [this](Result<ReplyPtr> r) {
      if (!r || (*r)->type != REDIS_REPLY_INTEGER) return;
      // Our entry was there since our last heartbeat on this connection
      // unless a sweep removed it: another node took this one for dead (a
      // pause longer than node_ttl) and announced its users offline.
      const bool swept = listed_ && (*r)->integer == 1;
      listed_ = true;
      if (swept) Reregister();
    });
    cmd_->Command({"ZREMRANGEBYSCORE", "nodes", "-inf", std::to_string(now - 3600 * 1000)},
                  nullptr);
    SweepDeadNodes(now);
    if (!claimed_) return;
    Eval(kClaim, {ClaimKey()}, {instance_, Ms(o_.node_ttl)}, [this](Result<ReplyPtr> r) {
      if (!r || !claimed_ || (*r)->type != REDIS_REPLY_STRING) return;
      // Someone else holds our id: only possible after our key was lost
      // (a Redis restart, or a hang longer than the TTL).
      claimed_ = false;
      claim_wanted_ = false;
      const std::string holder(ReplyText(r->get()));
      PLOG_ERROR("node id taken by another live node", "node={} holder={}", o_.node_id, holder);
      if (handlers_.on_claim_lost) {
        gate_.Post([h = handlers_.on_claim_lost, holder] { h(holder); });
      }
    });
  }

  // Instances whose heartbeat stopped more than node_ttl ago: their
  // registrations go now rather than when they expire (registry_ttl), and
  // the users they leave offline everywhere go to on_presence (PROTOCOL.md
  // section 8: offline within 10 s of a node dying).
  void SweepDeadNodes(std::int64_t now) {
    cmd_->Command({"ZRANGEBYSCORE", "nodes", "-inf", std::to_string(now - o_.node_ttl.count()),
                   "LIMIT", "0", "16"},
                  [this](Result<ReplyPtr> r) {
                    if (!r || (*r)->type != REDIS_REPLY_ARRAY || !cmd_up_) return;
                    for (std::size_t i = 0; i < (*r)->elements; ++i) {
                      const std::string dead(ReplyText((*r)->element[i]));
                      if (dead == instance_ || !ValidInstance(dead)) continue;
                      Eval(kSweep, {"nodes", "nd:" + dead}, {dead, std::to_string(NowMs())},
                           [this, dead](Result<ReplyPtr> swept) { Swept(dead, swept); });
                    }
                  });
  }

  void Swept(const std::string& dead, const Result<ReplyPtr>& r) {
    if (!r || (*r)->type != REDIS_REPLY_ARRAY) return;
    if ((*r)->elements > 0) {
      PLOG_INFO("swept a dead node's registrations", "dead={} offline={}", dead, (*r)->elements);
    }
    const std::int64_t now = NowMs();
    for (std::size_t i = 0; i < (*r)->elements; ++i) {
      auto user = ParseId(ReplyText((*r)->element[i]));
      if (!user || !handlers_.on_presence) continue;
      PresenceChange p{.user = *user, .online = false, .last_seen_ms = now, .origin = instance_};
      gate_.Post([h = handlers_.on_presence, p = std::move(p)] { h(p); });
    }
  }

  // After a sweep took this node for dead: every registration is written
  // again at once, and the users it makes online again (none of their
  // devices registered anywhere) go to on_presence as online, so that this
  // node announces them as it announced them when they connected.
  void Reregister() {
    PLOG_WARN("this node was taken for dead and swept; registering its devices again",
              "node={} registrations={}", o_.node_id, registrations_.size());
    RegisterChunk(std::nullopt, Chain::kAnnounce);
  }

  // kRegister for one device: its presence entry (expiring after
  // registry_ttl, stale ones pruned) and its line in this node's set.
  void EvalRegister(UserId user, DeviceId device, std::int64_t now, ReplyHandler handler) {
    Eval(kRegister, {PresenceKey(user), NodeSetKey()},
         {Member(device), std::to_string(now + o_.registry_ttl.count()), std::to_string(now),
          NodeSetMember(user, device), Ms(o_.registry_ttl)},
         std::move(handler));
  }

  // Why the registrations are written again: after a reconnect (a restarted
  // Redis may have none), after a sweep (and the users made online again
  // are announced), or to renew them before they expire.
  enum class Chain { kRestore, kAnnounce, kRefresh };

  // Writes the registrations after `after` (from the first when empty)
  // again, kRegisterChunk at a time (a refresh: in one call, kRefresh), the
  // next chunk once Redis has answered this one, so that hellos and
  // publications are not queued behind tens of thousands of scripts
  // (docs/architecture.md). A lost connection ends the chain (the next
  // CommandsUp starts another); one made meanwhile registered itself.
  void RegisterChunk(std::optional<std::pair<UserId, DeviceId>> after, Chain chain) {
    constexpr std::size_t kRegisterChunk = 256;
    auto it = after ? registrations_.upper_bound(*after) : registrations_.begin();
    if (!cmd_up_ || stopping_ || it == registrations_.end()) {
      if (chain == Chain::kRefresh) refreshing_ = false;
      return;
    }
    const auto now = NowMs();
    if (chain == Chain::kRefresh) {
      std::vector<std::string> keys{NodeSetKey()};
      std::vector<std::string> args{std::to_string(now + o_.registry_ttl.count()),
                                    std::to_string(now), Ms(o_.registry_ttl)};
      std::pair<UserId, DeviceId> last;
      for (std::size_t n = 0; it != registrations_.end() && n < kRegisterChunk; ++n, ++it) {
        last = *it;
        keys.push_back(PresenceKey(it->first));
        args.push_back(Member(it->second));
        args.push_back(NodeSetMember(it->first, it->second));
      }
      Eval(kRefresh, std::move(keys), std::move(args), [this, last](Result<ReplyPtr> r) {
        if (r) return RegisterChunk(last, Chain::kRefresh);
        refreshing_ = false;  // the connection is gone
      });
      return;
    }
    for (std::size_t n = 0; it != registrations_.end() && n < kRegisterChunk; ++n) {
      const auto [user, device] = *it++;
      const bool last = n + 1 == kRegisterChunk || it == registrations_.end();
      EvalRegister(user, device, now, [this, user, device, chain, last](Result<ReplyPtr> r) {
        if (chain == Chain::kAnnounce && handlers_.on_presence) {
          if (auto back = IntegerResult(r); back && *back) {
            PresenceChange p{.user = user, .online = true, .last_seen_ms = 0, .origin = instance_};
            gate_.Post([h = handlers_.on_presence, p = std::move(p)] { h(p); });
          }
        }
        if (!last) return;
        if (r) return RegisterChunk(std::make_pair(user, device), chain);
      });
    }
  }

  void RefreshRegistrations() {
    refresh_timer_.expires_after(o_.registry_ttl / 3);
    refresh_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) RefreshRegistrations();
    });
    if (!cmd_up_ || registrations_.empty() || refreshing_) return;
    refreshing_ = true;
    RegisterChunk(std::nullopt, Chain::kRefresh);
  }

  // ---- the node claim ---------------------------------------------------
  void TryClaim() {
    Eval(kClaim, {ClaimKey()}, {instance_, Ms(o_.node_ttl)}, [this](Result<ReplyPtr> r) {
      if (!claim_wanted_ || claimed_) return;
      if (!r || (*r)->type == REDIS_REPLY_ERROR) return RetryClaim();
      if ((*r)->type == REDIS_REPLY_INTEGER) {
        claimed_ = true;
        dead_checks_ = 0;
        return FinishClaim(Ok());
      }
      const std::string holder(ReplyText(r->get()));
      // Alive means its subscriber connection is still open.
      cmd_->Command({"PUBLISH", PingChannel(holder), "claim"}, [this, holder](Result<ReplyPtr> r) {
        if (!claim_wanted_ || claimed_) return;
        if (!r || (*r)->type != REDIS_REPLY_INTEGER) return RetryClaim();
        if ((*r)->integer > 0) {
          claim_wanted_ = false;
          return FinishClaim(Fail(
              Errc::kConflict,
              "node id " + o_.node_id + " is in use by a live node (instance " + holder + ")"));
        }
        // Nobody listens: its process is gone (or reconnecting; look again).
        if (++dead_checks_ < 3) return RetryClaim();
        PLOG_WARN("taking over the node id of a dead instance", "node={} dead={}", o_.node_id,
                  holder);
        Eval(kTakeOver, {ClaimKey()}, {instance_, holder, Ms(o_.node_ttl)},
             [this](Result<ReplyPtr>) { RetryClaim(std::chrono::milliseconds(0)); });
      });
    });
  }

  void RetryClaim(std::chrono::milliseconds after = std::chrono::milliseconds(500)) {
    claim_retry_.expires_after(after);
    claim_retry_.async_wait([this](boost::system::error_code ec) {
      if (!ec && cmd_up_ && claim_wanted_ && !claimed_) TryClaim();
    });
  }

  void FinishClaim(Status s) {
    if (s) PLOG_INFO("node id claimed", "node={} instance={}", o_.node_id, instance_);
    if (claim_done_) {
      claim_deadline_.cancel();
      gate_.Post([done = std::move(claim_done_), s] { done(s); });
      claim_done_ = nullptr;
      return;
    }
    if (!s && handlers_.on_claim_lost) {
      gate_.Post([h = handlers_.on_claim_lost, m = s.error().message] { h(m); });
    }
  }

  // ---- the subscriber connection ------------------------------------------
  void ConnectSubscriber() {
    if (stopping_) return;
    auto conn = std::make_shared<RespConnection>(io_, o_.command_timeout);
    sub_ = conn;
    conn->SetPushMode([this, conn](ReplyPtr r) {
      if (conn == sub_) OnPush(r);
    });
    conn->SetCloseHandler([this, conn](const Error& e) {
      if (conn == sub_) SubscriberLost(e);
    });
    conn->Connect(o_.host, o_.port, [this, conn](Status s) {
      if (conn != sub_) return;
      if (!s) return SubscriberLost(s.error());
      SubscriberUp();
    });
  }

  void SubscriberUp() {
    sub_up_ = true;
    sub_backoff_ = o_.reconnect_min;
    last_rx_ = Clock::now();
    inflight_.clear();
    unconfirmed_ = {std::string(kPresenceChannel), ping_channel_};
    std::vector<std::string> cmd{"SUBSCRIBE", std::string(kPresenceChannel), ping_channel_};
    for (auto& [user, s] : subs_) {
      s.confirmed = false;
      const std::string ch = UserChannel(user);
      unconfirmed_.insert(ch);
      ++inflight_[user];
      cmd.push_back(ch);
      if (cmd.size() >= 1024) {
        sub_->Command(cmd, nullptr);
        cmd.resize(1);
      }
    }
    if (cmd.size() > 1) sub_->Command(cmd, nullptr);
    Probe();
  }

  void SendSubscribe(UserId user) {
    ++inflight_[user];
    sub_->Command({"SUBSCRIBE", UserChannel(user)}, nullptr);
  }

  void SubscriberLost(const Error& e) {
    if (sub_) sub_->Close();
    sub_ = nullptr;
    if (sub_up_ || sub_failures_ == 0) {
      PLOG_WARN("bus unreachable", "what=subscriber error={}", LogQuote(e.message));
    }
    sub_up_ = false;
    sub_ready_ = false;
    ++sub_failures_;
    probe_timer_.cancel();
    inflight_.clear();
    for (auto& [_, s] : subs_) {
      s.confirmed = false;
      for (auto& w : s.waiters) gate_.Post([w = std::move(w)] { w(false); });
      s.waiters.clear();
    }
    UpdateState();
    if (stopping_) return;
    sub_retry_.expires_after(sub_backoff_);
    sub_backoff_ = std::min(sub_backoff_ * 2, o_.reconnect_max);
    sub_retry_.async_wait([this](boost::system::error_code ec) {
      if (!ec) ConnectSubscriber();
    });
  }

  void Probe() {
    probe_timer_.expires_after(o_.probe);
    probe_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || !sub_up_) return;
      if (Clock::now() - last_rx_ > 3 * o_.probe) {
        return SubscriberLost(Error{Errc::kUnavailable, "no answer to the liveness probe"});
      }
      sub_->Command({"PING"}, nullptr);
      Probe();
    });
  }

  void OnPush(const ReplyPtr& r) {
    last_rx_ = Clock::now();
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) return;  // e.g. an error reply
    const std::string_view kind = ReplyText(r->element[0]);
    const std::string_view channel = ReplyText(r->element[1]);
    if (kind == "message" && r->elements >= 3) return Dispatch(channel, ReplyText(r->element[2]));
    if (kind != "subscribe") return;  // unsubscribe, pong
    if (auto user = ParseUserChannel(channel)) {
      auto in = inflight_.find(*user);
      if (in != inflight_.end() && --in->second == 0) {
        inflight_.erase(in);
        if (auto s = subs_.find(*user); s != subs_.end()) {
          s->second.confirmed = true;
          for (auto& w : s->second.waiters) gate_.Post([w = std::move(w)] { w(true); });
          s->second.waiters.clear();
        }
      }
    }
    if (unconfirmed_.erase(std::string(channel)) > 0 && unconfirmed_.empty() && !sub_ready_) {
      sub_ready_ = true;
      if (sub_was_ready_) {
        if (metrics_ != nullptr) metrics_->reconnects.Inc();
        PLOG_INFO("bus reconnected", "what=subscriber channels={}", subs_.size() + 2);
      }
      sub_was_ready_ = true;
      sub_failures_ = 0;
      UpdateState();
      if (handlers_.on_resubscribed) gate_.Post(handlers_.on_resubscribed);
    }
  }

  void Drop(std::string_view channel) {
    if (metrics_ != nullptr) metrics_->dropped.Inc();
    PLOG_DEBUG("bus message dropped", "channel={}", LogQuote(channel));
  }

  template <class M, class H>
  void Hand(M&& m, const H& handler) {
    if (m.origin == instance_) return;  // our own echo: delivered locally already
    if (metrics_ != nullptr) metrics_->received.Inc();
    if (handler) gate_.Post([handler, m = std::forward<M>(m)] { handler(m); });
  }

  void Dispatch(std::string_view channel, std::string_view payload) {
    if (channel == kPresenceChannel) {
      auto p = DecodePresence(payload);
      if (!p) return Drop(channel);
      return Hand(std::move(*p), handlers_.on_presence);
    }
    if (channel == ping_channel_) return;
    auto user = ParseUserChannel(channel);
    if (!user) return Drop(channel);
    if (!subs_.contains(*user)) return;  // left it; a late message
    auto m = DecodeUserMessage(*user, payload);
    if (!m) return Drop(channel);
    std::visit(
        [this](auto&& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, Wake>) {
            if (metrics_ != nullptr && v.origin != instance_) metrics_->ObserveWake(v);
            Hand(std::move(v), handlers_.on_wake);
          } else if constexpr (std::is_same_v<T, Typing>) {
            Hand(std::move(v), handlers_.on_typing);
          } else {
            Hand(std::move(v), handlers_.on_control);
          }
        },
        std::move(*m));
  }

  // ---- state and shutdown -------------------------------------------------
  void UpdateState() {
    const bool now = cmd_up_ && sub_ready_ && !stopping_;
    if (now == connected_.load()) return;
    connected_ = now;
    if (metrics_ != nullptr) metrics_->connected.Set(now ? 1 : 0);
    if (handlers_.on_state) gate_.Post([h = handlers_.on_state, now] { h(now); });
  }

  void Shutdown() {
    stopping_ = true;
    UpdateState();
    for (auto* t : {&heartbeat_timer_, &refresh_timer_, &probe_timer_, &cmd_retry_, &sub_retry_,
                    &claim_deadline_, &claim_retry_}) {
      t->cancel();
    }
    if (sub_) sub_->Close();
    if (!cmd_up_) return Finish();
    // Withdraw what this process holds, best effort, then go.
    const auto now = std::to_string(NowMs());
    for (const auto& [user, device] : registrations_) {
      Eval(kUnregister, {PresenceKey(user), NodeSetKey()},
           {Member(device), now, NodeSetMember(user, device)}, nullptr);
    }
    if (claimed_) Eval(kRelease, {ClaimKey()}, {instance_}, nullptr);
    cmd_->Command({"DEL", NodeKey(), NodeSetKey()}, nullptr);
    cmd_->Command({"ZREM", "nodes", instance_}, [this](Result<ReplyPtr>) { Finish(); });
    stop_timer_.expires_after(std::chrono::seconds(1));
    stop_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Finish();
    });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    stop_timer_.cancel();
    if (cmd_) cmd_->Close();
    if (sub_) sub_->Close();
    cmd_up_ = sub_up_ = sub_ready_ = false;
    work_.reset();
    io_.stop();
  }

  RedisOptions o_;
  const std::string instance_;
  Gate gate_;
  BusMetrics* metrics_;
  Handlers handlers_;
  bool started_ = false;
  std::uint64_t window_events_ = 0;  // TakeWindows members (bus thread)
  std::atomic<bool> stopped_{false};
  std::atomic<bool> connected_{false};

  // Everything below lives on the bus's thread. io_ first: it outlives the
  // connections and timers that use it.
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  asio::steady_timer heartbeat_timer_, refresh_timer_, probe_timer_, cmd_retry_, sub_retry_,
      claim_deadline_, claim_retry_, stop_timer_;
  const std::string ping_channel_;
  const std::int64_t started_ms_;
  bool stopping_ = false;
  bool finished_ = false;

  std::shared_ptr<RespConnection> cmd_;
  bool cmd_up_ = false;
  bool cmd_was_up_ = false;
  bool listed_ = false;  // our entry in `nodes` written on this connection
  std::uint32_t cmd_failures_ = 0;
  std::chrono::milliseconds cmd_backoff_{100};

  std::shared_ptr<RespConnection> sub_;
  bool sub_up_ = false;     // connected
  bool sub_ready_ = false;  // and every channel subscribed again
  bool sub_was_ready_ = false;
  std::uint32_t sub_failures_ = 0;
  std::chrono::milliseconds sub_backoff_{100};
  Clock::time_point last_rx_;
  std::unordered_map<UserId, Subscription> subs_;
  std::unordered_map<UserId, std::uint32_t> inflight_;  // SUBSCRIBEs sent, not confirmed
  std::unordered_set<std::string> unconfirmed_;         // of the (re)subscribe after connecting

  bool claim_wanted_ = false;
  bool claimed_ = false;
  std::uint32_t dead_checks_ = 0;
  std::function<void(Status)> claim_done_;

  std::set<std::pair<UserId, DeviceId>> registrations_;
  bool refreshing_ = false;  // a refresh is going through registrations_ in chunks
};

}  // namespace

std::unique_ptr<Bus> MakeRedisBus(RedisOptions options, Executor executor, BusMetrics* metrics) {
  return std::make_unique<RedisBus>(std::move(options), std::move(executor), metrics);
}

}  // namespace parley::bus
