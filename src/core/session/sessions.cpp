#include "core/session/sessions.hpp"

#include <algorithm>

namespace parley::core {
namespace {

template <class Devices>
auto FindDevice(Devices& devices, store::DeviceId device) {
  return std::find_if(devices.begin(), devices.end(),
                      [device](const auto& d) { return d.first == device; });
}

}  // namespace

std::shared_ptr<Session> SessionRegistry::Attach(store::UserId user, store::DeviceId device,
                                                 std::shared_ptr<Session> session,
                                                 bool* came_online) {
  Shard& s = ShardOf(user);
  std::lock_guard lock(s.mu);
  auto& devices = s.users[user];
  if (came_online != nullptr) *came_online = devices.empty();
  const auto d = FindDevice(devices, device);
  if (d == devices.end()) {
    devices.emplace_back(device, std::move(session));
    return nullptr;
  }
  return std::exchange(d->second, std::move(session));
}

bool SessionRegistry::Detach(store::UserId user, store::DeviceId device, const Session* session,
                             bool* went_offline) {
  if (went_offline != nullptr) *went_offline = false;
  Shard& s = ShardOf(user);
  std::lock_guard lock(s.mu);
  auto u = s.users.find(user);
  if (u == s.users.end()) return false;
  const auto d = FindDevice(u->second, device);
  if (d == u->second.end() || d->second.get() != session) return false;
  u->second.erase(d);
  if (u->second.empty()) {
    s.users.erase(u);
    if (went_offline != nullptr) *went_offline = true;
  }
  return true;
}

std::shared_ptr<Session> SessionRegistry::Find(store::UserId user, store::DeviceId device) {
  Shard& s = ShardOf(user);
  std::lock_guard lock(s.mu);
  auto u = s.users.find(user);
  if (u == s.users.end()) return nullptr;
  const auto d = FindDevice(u->second, device);
  return d == u->second.end() ? nullptr : d->second;
}

std::vector<std::shared_ptr<Session>> SessionRegistry::ForUser(store::UserId user) {
  Shard& s = ShardOf(user);
  std::lock_guard lock(s.mu);
  std::vector<std::shared_ptr<Session>> out;
  auto u = s.users.find(user);
  if (u == s.users.end()) return out;
  out.reserve(u->second.size());
  for (auto& [_, session] : u->second) out.push_back(session);
  return out;
}

bool SessionRegistry::IsOnline(store::UserId user) {
  Shard& s = ShardOf(user);
  std::lock_guard lock(s.mu);
  return s.users.contains(user);
}

std::vector<store::UserId> SessionRegistry::Users() {
  std::vector<store::UserId> out;
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    for (const auto& [user, _] : s.users) out.push_back(user);
  }
  return out;
}

std::size_t SessionRegistry::Count() {
  std::size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    for (auto& [_, devices] : s.users) n += devices.size();
  }
  return n;
}

}  // namespace parley::core
