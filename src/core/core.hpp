// The domain's shared state: the components every handler uses, wired once
// by main. Handlers never block an I/O thread: reads go to the store directly
// (they never wait for the writer), on the I/O thread when the store's reads
// are local (RocksDB) and on `reads`, the read pool, when they wait on the
// network (PostgreSQL; store_reads.hpp); writes answer through store
// callbacks.
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bus/bus.hpp"
#include "common/config.hpp"
#include "common/ids.hpp"
#include "common/metrics.hpp"
#include "core/account/abuse_limits.hpp"
#include "core/account/known_users.hpp"
#include "core/account/sms.hpp"
#include "core/account/tokens.hpp"
#include "core/messaging/groups.hpp"
#include "core/rate_limit.hpp"
#include "core/session/fairness.hpp"
#include "core/session/presence.hpp"
#include "core/session/sessions.hpp"
#include "core/store_reads.hpp"
#include "media/volume_reserve.hpp"
#include "store/store.hpp"

namespace parley::core {

struct Identity {
  store::UserId user = 0;
  store::DeviceId device = 0;
};

// Why a token was refused, in the three forms the contract needs.
struct AuthFailure {
  std::string_view code;  // invalid_token | token_expired | device_revoked | internal
  int http_status = 401;
  std::uint16_t close_code = 4401;
  std::string message;
};

// Metric handles looked up once.
struct CoreMetrics {
  explicit CoreMetrics(Registry& r);
  Counter& FrameIn(std::string_view op);
  Counter& FrameOut(std::string_view op);

  Registry& registry;
  Gauge& sessions_authenticated;
  Counter& otp_sent;
  Counter& sign_ins;

 private:
  std::unordered_map<std::string_view, Counter*> in_;
  std::unordered_map<std::string_view, Counter*> out_;
  Counter& in_other_;
  Counter& out_other_;
};

class Core {
 public:
  Core(const Config& config, store::Store& store, Registry& metrics, TokenService& tokens,
       SmsSender& sms, std::string node_name);
  // Runs what the read pool has queued first: its tasks use the rest.
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // Checks an access token and that its device still holds that generation.
  std::expected<Identity, AuthFailure> Authenticate(std::string_view token);

  // After a durable append: tell every connected device of each mailbox.
  void Wake(const std::vector<store::Appended>& appended);
  // The same for a new message, which is rendered once per mailbox here
  // (per device for e2ee) instead of being read back by every session.
  // `skip`: a session not to tell (the sending connection, when it asked
  // not to get its own copy: it counts the seq itself, Session::SkipOwnCopy).
  void Deliver(const std::shared_ptr<const store::Message>& message,
               const std::vector<store::Appended>& appended, const Session* skip = nullptr);

  // Deletes what is older than the retention period, in small batches so
  // that the writer never stalls behind it. Safe to call while one runs.
  void PurgeExpired();

  // A `device` event (added or removed) in the user's own mailbox; `then`
  // runs once it is stored (or failed to be), so that an answer given after
  // it never precedes the event.
  void AnnounceDevice(store::UserId user, store::DeviceId device, std::string_view change,
                      std::string_view name, std::function<void()> then);

  // Whether `user` may read (and so send, or make an avatar of) the media
  // named by the wire id: it uploaded it, received it in a message, or it
  // is an avatar. False for unknown ids and unfinished uploads.
  Result<bool> MayReadMedia(std::string_view media_id, store::UserId user);

  // Whether an account with this id exists: from known_users when it was
  // seen before (accounts are never deleted), else from the store.
  Result<bool> UserExists(store::UserId user);

  // Whether `viewer` may see `target`'s last seen and online status.
  bool CanSeeLastSeen(const store::User& target, store::UserId viewer);
  // Whether `user` chose `contact`: it wrote `contact` a 1:1 message (what
  // "contacts" means for last seen; someone who only wrote to `user` is not).
  bool ChoseContact(store::UserId user, store::UserId contact);

  const Config& config;
  store::Store& store;
  TokenService& tokens;
  SmsSender& sms;
  CoreMetrics metrics;
  IdGenerator ids;
  SessionRegistry sessions;
  const std::string node_name;
  // The bus to the other nodes (set by main before serving; null in tests
  // that run without one). /ready answers 503 while it is disconnected.
  parley::bus::Bus* bus = nullptr;
  // The media volume's reserve (set by main; null: not checked). /ready
  // answers 503 storage_full while it is below the reserve.
  const media::VolumeReserve* media_volume = nullptr;

  // ---- Delivery across nodes (core.cpp; docs/architecture.md "Delivery
  // across nodes"). Everything is stored first; the bus only tells the
  // nodes holding a user's sockets to look sooner.

  // True when this node shares its users with other nodes (--bus other than
  // none, and a bus set): only then does core publish or wait for anything
  // on the bus, so --bus none costs nothing over a node without one.
  bool Clustered() const { return clustered_ && bus != nullptr; }
  // Sets the handlers through which the other nodes reach this one
  // (main, before the bus starts).
  void SetBusHandlers(parley::bus::Handlers& handlers);
  // The periodic head check: reads the mailbox head of up to `max_users`
  // users with a device here (round robin over calls) and pumps their
  // sessions, for a writer that died between its commit and its wake. With
  // a read pool it runs there (at most one check at a time) and returns at
  // once.
  void CheckHeads(std::size_t max_users);
  // Closes the device's socket here and on whichever node holds it
  // (kRemoved: 4403, kRevoked: 4401).
  void CloseDevice(store::UserId user, store::DeviceId device, parley::bus::Control::Kind kind);
  // A rendered `typing` push to every device of `to`, on every node.
  void SendTyping(store::UserId to, store::UserId from, const std::string& frame);
  // Whether a device of `user` is connected here or, as far as the
  // presence transitions heard tell, on another node.
  bool OnlineAnywhere(store::UserId user);
  // Presence transitions (the registry's answers and the other nodes').
  void MarkOnline(store::UserId user, bool online);

  PresenceHub presence;
  GroupCache groups;
  KnownUsers known_users;

  WindowLimiter otp_per_phone;
  WindowLimiter otp_per_address;
  QuotaCounter contacts_per_day;
  TokenBucket send_limiter;
  TokenBucket typing_limiter;
  // Fairness (fairness.hpp): ops that write, recipients reached, and each
  // user's share of the store writes in flight.
  TokenBucket write_limiter;
  TokenBucket fanout_limiter;
  WriteShare write_share;
  AbuseLimits abuse;  // lookups, prekeys, sign-in (abuse_limits.hpp)

  // Where work that reads runs when the store's reads block (store_reads.hpp);
  // inactive (no threads) otherwise. Stopped first by ~Core.
  StoreReadPool reads;

 private:
  void PurgeBatch(std::int64_t cutoff_ms);
  void PublishWake(store::UserId user, store::Seq seq, std::string frame);
  void OnWake(const parley::bus::Wake& wake);
  void OnControl(const parley::bus::Control& control);
  // Pumps every local session from its mailbox head (after a resubscribe).
  void PumpUsers(const std::vector<store::UserId>& users);
  void CheckHeadsNow(std::size_t max_users);
  std::atomic<bool> purging_{false};

  const bool clustered_;
  std::mutex online_mu_;
  std::unordered_set<store::UserId> online_elsewhere_;  // online per the transitions heard
  std::mutex head_check_mu_;
  std::vector<store::UserId> head_check_queue_;  // users still to check this round
  std::atomic<bool> head_check_running_{false};  // on the read pool
  // Presence transitions heard on the bus, when reads block: telling local
  // subscribers reads the user (its last_seen visibility), which must not
  // hold up the bus's callback thread, the one that carries every wake. One
  // strand keeps the transitions in the order the bus handed them over.
  std::optional<StoreReadPool::Strand> presence_strand_;
  void OnPresence(const parley::bus::PresenceChange& change);
};

}  // namespace parley::core
