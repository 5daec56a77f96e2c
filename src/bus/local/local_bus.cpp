#include "bus/local/local_bus.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "bus/gate.hpp"

namespace parley::bus {

class LocalBus;

class LocalHub {
 public:
  std::mutex mu;
  std::set<LocalBus*> members;              // started, not stopped
  std::map<std::string, LocalBus*> claims;  // node id -> holder
  std::unordered_map<UserId, std::vector<DeviceLocation>> registry;
  // TakeWindows: event times (steady ms) per key; emptied keys are dropped.
  std::unordered_map<std::string, std::deque<std::int64_t>> windows;
};

std::shared_ptr<LocalHub> NewLocalHub() { return std::make_shared<LocalHub>(); }

class LocalBus final : public Bus {
 public:
  LocalBus(std::shared_ptr<LocalHub> hub, std::string node_id, Executor executor,
           BusMetrics* metrics)
      : hub_(std::move(hub)),
        node_id_(std::move(node_id)),
        instance_(NewInstanceId()),
        gate_(std::move(executor)),
        metrics_(metrics) {}

  ~LocalBus() override { Stop(); }

  void Start(Handlers handlers) override {
    {
      std::lock_guard lock(hub_->mu);
      handlers_ = std::move(handlers);
      hub_->members.insert(this);
      started_ = true;
    }
    if (metrics_ != nullptr) metrics_->connected.Set(1);
    auto on_state = handlers_.on_state;
    auto on_resubscribed = handlers_.on_resubscribed;
    gate_.Post([on_state, on_resubscribed] {
      if (on_state) on_state(true);
      if (on_resubscribed) on_resubscribed();
    });
  }

  void Stop() override {
    {
      std::lock_guard lock(hub_->mu);
      if (!started_) return;
      started_ = false;
      hub_->members.erase(this);
      for (auto it = hub_->claims.begin(); it != hub_->claims.end();) {
        it = it->second == this ? hub_->claims.erase(it) : std::next(it);
      }
      for (auto it = hub_->registry.begin(); it != hub_->registry.end();) {
        std::erase_if(it->second,
                      [this](const DeviceLocation& l) { return l.instance == instance_; });
        it = it->second.empty() ? hub_->registry.erase(it) : std::next(it);
      }
    }
    gate_.Close();
  }

  const std::string& node_id() const override { return node_id_; }
  const std::string& instance() const override { return instance_; }
  bool connected() const override { return true; }

  void ClaimNode(std::uint32_t, std::function<void(Status)> done) override {
    Status result;
    {
      std::lock_guard lock(hub_->mu);
      auto [it, inserted] = hub_->claims.emplace(node_id_, this);
      if (!inserted && it->second != this) {
        result =
            Fail(Errc::kConflict, "node id " + node_id_ + " is in use by a live node (instance " +
                                      it->second->instance_ + ")");
      }
    }
    if (done) gate_.Post([done = std::move(done), result] { done(result); });
  }

  void PublishWake(const Wake& wake) override {
    Wake m = wake;
    m.origin = instance_;
    m.sent_us = NowUs();
    ToSubscribers(m.user, [m](LocalBus& to) {
      if (to.handlers_.on_wake) {
        to.Deliver([h = to.handlers_.on_wake, m, metrics = to.metrics_] {
          if (metrics != nullptr) metrics->ObserveWake(m);
          h(m);
        });
      }
    });
  }
  void PublishTyping(const Typing& typing) override {
    Typing m = typing;
    m.origin = instance_;
    ToSubscribers(m.to, [m](LocalBus& to) {
      if (to.handlers_.on_typing) to.Deliver([h = to.handlers_.on_typing, m] { h(m); });
    });
  }
  void PublishControl(const Control& control) override {
    Control m = control;
    m.origin = instance_;
    ToSubscribers(m.user, [m](LocalBus& to) {
      if (to.handlers_.on_control) to.Deliver([h = to.handlers_.on_control, m] { h(m); });
    });
  }
  void PublishPresence(const PresenceChange& change) override {
    PresenceChange m = change;
    m.origin = instance_;
    if (metrics_ != nullptr) metrics_->published.Inc();
    std::lock_guard lock(hub_->mu);
    for (LocalBus* to : hub_->members) {
      if (to == this || !to->handlers_.on_presence) continue;
      to->Deliver([h = to->handlers_.on_presence, m] { h(m); });
    }
  }

  void Subscribe(UserId user, std::function<void(bool)> done) override {
    {
      std::lock_guard lock(hub_->mu);
      ++subscriptions_[user];
    }
    if (done) gate_.Post([done = std::move(done)] { done(true); });
  }

  void Unsubscribe(UserId user) override {
    std::lock_guard lock(hub_->mu);
    auto it = subscriptions_.find(user);
    if (it != subscriptions_.end() && --it->second == 0) subscriptions_.erase(it);
  }

  void Register(UserId user, DeviceId device, std::function<void(Result<bool>)> done) override {
    bool came_online = false;
    {
      std::lock_guard lock(hub_->mu);
      auto& where = hub_->registry[user];
      came_online = where.empty();
      std::erase_if(where, [&](const DeviceLocation& l) {
        return l.device == device && l.instance == instance_;
      });
      where.push_back({device, node_id_, instance_});
    }
    if (done) gate_.Post([done = std::move(done), came_online] { done(came_online); });
  }

  void Unregister(UserId user, DeviceId device, std::function<void(Result<bool>)> done) override {
    bool went_offline = false;
    {
      std::lock_guard lock(hub_->mu);
      auto it = hub_->registry.find(user);
      if (it != hub_->registry.end()) {
        const auto erased = std::erase_if(it->second, [&](const DeviceLocation& l) {
          return l.device == device && l.instance == instance_;
        });
        if (it->second.empty()) {
          hub_->registry.erase(it);
          went_offline = erased > 0;
        }
      }
    }
    if (done) gate_.Post([done = std::move(done), went_offline] { done(went_offline); });
  }

  void Locate(UserId user, std::function<void(Result<std::vector<DeviceLocation>>)> done) override {
    std::vector<DeviceLocation> where;
    {
      std::lock_guard lock(hub_->mu);
      if (auto it = hub_->registry.find(user); it != hub_->registry.end()) where = it->second;
    }
    if (done) gate_.Post([done = std::move(done), where = std::move(where)] { done(where); });
  }

  void TakeWindows(std::vector<WindowLimit> limits,
                   std::function<void(Result<std::int64_t>)> done) override {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t wait = 0;
    {
      std::lock_guard lock(hub_->mu);
      for (const auto& l : limits) {
        auto& q = hub_->windows[l.key];
        while (!q.empty() && q.front() <= now - l.window_ms) q.pop_front();
        if (l.limit > 0 && q.size() >= l.limit) {
          wait =
              std::max(wait, std::max<std::int64_t>(1, q[q.size() - l.limit] + l.window_ms - now));
        }
      }
      for (const auto& l : limits) {
        auto& q = hub_->windows[l.key];
        if (wait == 0) q.push_back(now);
        if (q.empty()) hub_->windows.erase(l.key);
      }
    }
    if (done) gate_.Post([done = std::move(done), wait] { done(wait); });
  }

 private:
  // Called with the hub's lock held.
  void Deliver(std::function<void()> fn) {
    if (metrics_ != nullptr) metrics_->received.Inc();
    gate_.Post(std::move(fn));
  }

  template <class Fn>
  void ToSubscribers(UserId user, Fn&& fn) {
    if (metrics_ != nullptr) metrics_->published.Inc();
    std::lock_guard lock(hub_->mu);
    for (LocalBus* to : hub_->members) {
      if (to != this && to->subscriptions_.contains(user)) fn(*to);
    }
  }

  std::shared_ptr<LocalHub> hub_;
  const std::string node_id_;
  const std::string instance_;
  Gate gate_;
  BusMetrics* metrics_;
  // Guarded by the hub's lock.
  bool started_ = false;
  Handlers handlers_;
  std::unordered_map<UserId, std::uint32_t> subscriptions_;
};

std::unique_ptr<Bus> MakeLocalBus(std::shared_ptr<LocalHub> hub, std::string node_id,
                                  Executor executor, BusMetrics* metrics) {
  return std::make_unique<LocalBus>(std::move(hub), std::move(node_id), std::move(executor),
                                    metrics);
}

}  // namespace parley::bus
