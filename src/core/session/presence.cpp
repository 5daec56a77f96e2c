#include "core/session/presence.hpp"

#include "common/ids.hpp"
#include "core/core.hpp"
#include "core/session/session.hpp"

namespace parley::core {

namespace json = boost::json;

std::int64_t PresenceHub::LastSeen(const store::User& user) {
  std::lock_guard lock(mu_);
  auto it = last_seen_.find(user.id);
  return it != last_seen_.end() ? std::max(it->second, user.last_seen_ms) : user.last_seen_ms;
}

Result<json::array> PresenceHub::Subscribe(const std::shared_ptr<Session>& session,
                                           store::UserId viewer,
                                           const std::vector<store::UserId>& users) {
  auto found = core_.store.GetUsers(users);
  if (!found) return std::unexpected(found.error());
  json::array statuses;
  for (const auto& u : *found) {
    const bool visible = core_.CanSeeLastSeen(u, viewer);
    json::object s;
    s["user"] = IdToString(u.id);
    s["online"] = visible && core_.OnlineAnywhere(u.id);
    const std::int64_t seen = visible ? LastSeen(u) : 0;
    s["last_seen_ms"] = seen > 0 ? json::value(seen) : json::value(nullptr);
    statuses.push_back(std::move(s));
  }
  std::lock_guard lock(mu_);
  if (auto old = subscriptions_.find(session.get()); old != subscriptions_.end()) {
    for (auto target : old->second) {
      if (auto it = subscribers_.find(target); it != subscribers_.end()) {
        it->second.erase(session.get());
        if (it->second.empty()) subscribers_.erase(it);
      }
    }
  }
  auto& mine = subscriptions_[session.get()];
  mine.clear();
  for (const auto& u : *found) {
    subscribers_[u.id][session.get()] = session;
    mine.push_back(u.id);
  }
  if (core_.Clustered()) {
    // This node hears transitions only from its start on: for a visible user
    // it thinks offline, ask the registry, and tell the session if that
    // user is connected somewhere after all.
    for (std::size_t i = 0; i < found->size(); ++i) {
      const auto& s = statuses[i].as_object();
      const auto& u = (*found)[i];
      if (s.at("online").as_bool() || !core_.CanSeeLastSeen(u, viewer)) continue;
      std::weak_ptr<Session> weak = session;
      core_.bus->Locate(u.id, [weak, user = u.id](Result<std::vector<bus::DeviceLocation>> r) {
        auto s = weak.lock();
        if (!s || !r || r->empty()) return;
        json::object frame;
        frame["op"] = "presence";
        frame["user"] = IdToString(user);
        frame["online"] = true;
        frame["last_seen_ms"] = nullptr;
        s->SendRaw("presence", json::serialize(frame));
      });
    }
  }
  return statuses;
}

void PresenceHub::Unsubscribe(const Session* session) {
  std::lock_guard lock(mu_);
  auto old = subscriptions_.find(session);
  if (old == subscriptions_.end()) return;
  for (auto target : old->second) {
    if (auto it = subscribers_.find(target); it != subscribers_.end()) {
      it->second.erase(session);
      if (it->second.empty()) subscribers_.erase(it);
    }
  }
  subscriptions_.erase(old);
}

void PresenceHub::CameOnline(store::UserId user) {
  if (core_.Clustered()) {
    core_.MarkOnline(user, true);
    core_.bus->PublishPresence({.user = user, .online = true, .last_seen_ms = 0, .origin = {}});
  }
  Publish(user, true, 0);
}

void PresenceHub::WentOffline(store::UserId user, std::int64_t last_seen_ms) {
  {
    std::lock_guard lock(mu_);
    last_seen_[user] = last_seen_ms;
  }
  core_.store.SetLastSeen(user, last_seen_ms, [](Status) {});
  if (core_.Clustered()) {
    core_.MarkOnline(user, false);
    core_.bus->PublishPresence(
        {.user = user, .online = false, .last_seen_ms = last_seen_ms, .origin = {}});
  }
  Publish(user, false, last_seen_ms);
}

void PresenceHub::Remote(store::UserId user, bool online, std::int64_t last_seen_ms) {
  // A device here says otherwise (a transition that raced this connection).
  if (!online && core_.sessions.IsOnline(user)) return;
  core_.MarkOnline(user, online);
  if (!online) {
    std::lock_guard lock(mu_);
    auto& seen = last_seen_[user];
    seen = std::max(seen, last_seen_ms);
  }
  Publish(user, online, last_seen_ms);
}

void PresenceHub::Publish(store::UserId user, bool online, std::int64_t last_seen_ms) {
  std::vector<std::shared_ptr<Session>> targets;
  {
    std::lock_guard lock(mu_);
    auto it = subscribers_.find(user);
    if (it == subscribers_.end()) return;
    for (auto& [_, weak] : it->second) {
      if (auto s = weak.lock()) targets.push_back(std::move(s));
    }
  }
  auto target_user = core_.store.GetUser(user);
  if (!target_user || !*target_user) return;
  json::object frame;
  frame["op"] = "presence";
  frame["user"] = IdToString(user);
  frame["online"] = online;
  frame["last_seen_ms"] = online ? json::value(nullptr) : json::value(last_seen_ms);
  const std::string text = json::serialize(frame);
  for (auto& s : targets) {
    if (!core_.CanSeeLastSeen(**target_user, s->identity().user)) continue;
    s->SendRaw("presence", text);
  }
}

}  // namespace parley::core
