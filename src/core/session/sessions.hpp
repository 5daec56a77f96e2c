// Which device of which user is connected here: user -> device -> session.
// One session per device: attaching a newer one hands back the older, which
// the caller closes with 4409. Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/records.hpp"

namespace parley::core {

class Session;

class SessionRegistry {
 public:
  // Registers `session` for (user, device); returns the one it replaces, if any.
  // *came_online tells whether the user had no device connected before.
  std::shared_ptr<Session> Attach(store::UserId user, store::DeviceId device,
                                  std::shared_ptr<Session> session, bool* came_online = nullptr);
  // Forgets (user, device) if `session` is still the one registered.
  // Answers whether it was; *went_offline tells whether that was the user's
  // last connected device.
  bool Detach(store::UserId user, store::DeviceId device, const Session* session,
              bool* went_offline = nullptr);
  std::shared_ptr<Session> Find(store::UserId user, store::DeviceId device);
  // Every connected device of the user.
  std::vector<std::shared_ptr<Session>> ForUser(store::UserId user);
  bool IsOnline(store::UserId user);
  // Every user with a device connected here.
  std::vector<store::UserId> Users();
  std::size_t Count();

 private:
  static constexpr std::size_t kShards = 16;
  // A user's few devices in a vector, not a map of their own: 80 bytes per
  // connected user instead of 224 (docs/benchmarks.md, memory per session).
  using Devices = std::vector<std::pair<store::DeviceId, std::shared_ptr<Session>>>;
  struct Shard {
    std::mutex mu;
    std::unordered_map<store::UserId, Devices> users;
  };
  Shard& ShardOf(store::UserId user) { return shards_[user % kShards]; }
  Shard shards_[kShards];
};

}  // namespace parley::core
