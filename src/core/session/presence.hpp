// Presence (PROTOCOL.md section 4): a user is online while any of its devices
// is connected. Never stored, except last_seen, written once when a user's
// last device goes (not once per frame). Subscriptions live in memory: a
// session's presence.subscribe replaces its earlier set, and ends with it.
#pragma once

#include <boost/json.hpp>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.hpp"
#include "store/store.hpp"

namespace parley::core {

class Core;
class Session;

class PresenceHub {
 public:
  explicit PresenceHub(Core& core) : core_(core) {}

  // Replaces the session's subscriptions with `users` and answers their
  // statuses [{user, online, last_seen_ms}], as `viewer` may see them.
  Result<boost::json::array> Subscribe(const std::shared_ptr<Session>& session,
                                       store::UserId viewer,
                                       const std::vector<store::UserId>& users);
  void Unsubscribe(const Session* session);

  // The user's first device connected / last device left (on any node when
  // clustered: the connection registry answers). Told to local subscribers
  // and, when clustered, published to the other nodes.
  void CameOnline(store::UserId user);
  void WentOffline(store::UserId user, std::int64_t last_seen_ms);
  // A transition another node published: told to local subscribers only.
  void Remote(store::UserId user, bool online, std::int64_t last_seen_ms);

  // The user's last seen: the stored one, or a newer one from this process.
  std::int64_t LastSeen(const store::User& user);

 private:
  void Publish(store::UserId user, bool online, std::int64_t last_seen_ms);

  Core& core_;
  std::mutex mu_;
  // target -> subscribed sessions; session -> its targets (for cleanup).
  std::unordered_map<store::UserId, std::unordered_map<const Session*, std::weak_ptr<Session>>>
      subscribers_;
  std::unordered_map<const Session*, std::vector<store::UserId>> subscriptions_;
  // last_seen of users who left since start (newer than the stored one).
  std::unordered_map<store::UserId, std::int64_t> last_seen_;
};

}  // namespace parley::core
