// The PostgreSQL Store, split by role (private to src/store/postgres/):
//   pg_conn.cpp       one libpq connection: prepared statements, binary values
//   pg_writer.cpp     the writer thread: one transaction per batch, head locks
//   pg_schema.cpp     schema creation and upgrades, shared secrets, opening
//   pg_accounts.cpp   users, devices, tokens, one-time codes
//   pg_messaging.cpp  mailboxes, messages, cursors, receipts
//   pg_purge.cpp      retention
//   pg_groups.cpp     groups, and the membership a group send fans out to
//   pg_keys.cpp       the e2ee key directory and keys_changed fan-out
//   pg_media.cpp      media records and who may read them
//
// Threads: reads run on the caller's thread over a small pool of
// connections (ReadPool) and see committed data only. Job bodies run on the
// writer thread over the writer's connection (Tx).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_writer.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/store.hpp"

namespace parley::store::pg {

// Session settings of every connection: a frozen node must not hold locks for long.
inline constexpr std::string_view kSessionSettings =
    "SET lock_timeout = '2s'; SET statement_timeout = '5s'; "
    "SET idle_in_transaction_session_timeout = '5s'";

// Held while the schema is created or upgraded, so nodes starting together
// take turns, and by `parleyd admin migrate` while it loads ("prly" in ASCII).
inline constexpr std::int64_t kSchemaLockKey = 0x70726c79;

// Creates the schema or upgrades it to this build's format (under
// kSchemaLockKey); refuses a newer format.
Status CreateOrUpgrade(Conn& conn);

// Reports a read's latency when it goes out of scope.
class ReadTimer {
 public:
  ReadTimer(const StoreObserver& observer, std::string_view op)
      : observer_(observer), op_(op), start_(observer ? MonoSeconds() : 0.0) {}
  ~ReadTimer() {
    if (observer_) observer_(op_, MonoSeconds() - start_);
  }
  ReadTimer(const ReadTimer&) = delete;
  ReadTimer& operator=(const ReadTimer&) = delete;

 private:
  const StoreObserver& observer_;
  std::string_view op_;
  double start_;
};

// Connections for reads, one per concurrent reader, at most `size`.
class ReadPool {
 public:
  ReadPool(std::string url, std::vector<std::unique_ptr<Conn>> conns);
  // Runs one statement on a free connection (reconnecting it if needed).
  Result<Rows> Exec(const char* sql, const Params& params = {});
  // Whether a connection answers a trivial query.
  bool Ping();

 private:
  std::unique_ptr<Conn> Take();
  void Give(std::unique_ptr<Conn> conn);

  std::string url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> free_;
};

// Packs msg_ids into a bytea (8 bytes each, big-endian) and back.
std::string PackIds(std::span<const std::uint64_t> ids);
std::vector<std::uint64_t> UnpackIds(std::string_view bytes);

template <class T>
std::unexpected<Error> Failed(const Result<T>& r) {
  return std::unexpected(r.error());
}

class PgStore final : public Store {
 public:
  PgStore(std::unique_ptr<ReadPool> reads, std::unique_ptr<Conn> writer, StoreObserver observer,
          Registry* metrics = nullptr);
  ~PgStore() override;

  bool Reachable();
  // Every read is a round trip to the server.
  bool ReadsBlock() const override { return true; }

  // ---- Accounts (pg_accounts.cpp) -----------------------------------------
  Result<std::optional<User>> GetUser(UserId id) override;
  Result<std::optional<User>> FindUserByPhone(std::string_view phone) override;
  Result<std::vector<User>> GetUsers(std::span<const UserId> ids) override;
  Result<std::vector<std::pair<std::string, UserId>>> FindUsersByPhoneHash(
      std::span<const std::string> hashes) override;
  Result<std::optional<Device>> GetDevice(UserId user, DeviceId device) override;
  Result<std::vector<Device>> ListDevices(UserId user) override;
  Result<std::optional<RefreshToken>> GetRefreshToken(std::string_view hash) override;
  Result<std::optional<OtpCode>> GetOtp(std::string_view phone) override;

  void PutOtp(OtpCode code, Callback<void> done) override;
  void RecordOtpFailure(std::string phone, std::uint32_t max_attempts,
                        Callback<OtpFailure> done) override;
  void SignIn(SignInRequest req, Callback<SignInResult> done) override;
  void RotateRefreshToken(std::string old_hash, RefreshToken replacement, std::int64_t now_ms,
                          Callback<RotateResult> done) override;
  void RemoveDevice(UserId user, DeviceId device, std::int64_t now_ms, KeysChangedRenderer render,
                    Callback<RemoveDeviceResult> done) override;
  void TouchDevice(UserId user, DeviceId device, std::int64_t last_active_ms,
                   Callback<void> done) override;
  void UpdateProfile(UserId user, ProfilePatch patch, Callback<void> done) override;
  void SetLastSeen(UserId user, std::int64_t last_seen_ms, Callback<void> done) override;

  // ---- Messaging (pg_messaging.cpp) ---------------------------------------
  Result<Seq> HeadSeq(UserId user) override;
  Result<std::vector<Seq>> HeadSeqs(std::span<const UserId> users) override;
  Result<std::vector<MailboxEvent>> ReadMailbox(UserId user, Seq after, std::size_t max) override;
  Result<Seq> GetCursor(UserId user, DeviceId device) override;
  Result<std::optional<HelloState>> ReadHello(UserId user, DeviceId device) override;
  Result<std::optional<Message>> GetMessage(MsgId msg_id) override;
  Result<std::vector<std::shared_ptr<const Message>>> History(UserId user, Conversation conv,
                                                              MsgId before,
                                                              std::size_t limit) override;
  Result<MessageReceipts> GetReceipts(MsgId msg_id) override;

  void AppendMessage(Message message, std::vector<UserId> recipients,
                     Callback<SendResult> done) override;
  void Ack(UserId user, DeviceId device, Seq up_to, std::int64_t now_ms,
           Callback<AckResult> done) override;
  void MarkRead(UserId user, Conversation conv, MsgId up_to_msg_id, std::int64_t now_ms,
                Callback<std::vector<Appended>> done) override;
  void AppendEvents(std::vector<UserId> users, EventType type, std::string payload,
                    std::int64_t ts_ms, Callback<std::vector<Appended>> done) override;

  // ---- Retention (pg_purge.cpp) -------------------------------------------
  void Purge(std::int64_t cutoff_ms, std::size_t max_rows, Callback<std::size_t> done) override;

  // ---- Groups (pg_groups.cpp) ---------------------------------------------
  Result<std::optional<Group>> GetGroup(GroupId id) override;
  Result<bool> IsFormerMember(GroupId id, UserId user) override;
  void ChangeGroup(GroupChange change, Callback<GroupChangeResult> done) override;

  // ---- Key directory (pg_keys.cpp) ----------------------------------------
  Result<std::optional<DeviceKeys>> GetDeviceKeys(UserId user, DeviceId device) override;
  Result<std::vector<DeviceKeys>> ListDeviceKeys(UserId user) override;
  Result<std::vector<UserId>> ListContacts(UserId user) override;
  Result<bool> HasWrittenTo(UserId from, UserId to) override;
  void UploadKeys(KeysUpload upload, Callback<KeysUploadResult> done) override;
  void ClaimPrekeys(UserId user, DeviceId except,
                    Callback<std::vector<PrekeyBundle>> done) override;

  // ---- Media (pg_media.cpp) -----------------------------------------------
  Result<std::optional<Media>> GetMedia(MediaId id) override;
  Result<bool> MediaGranted(MediaId id, UserId user) override;
  Result<std::vector<Media>> StaleUploads(std::int64_t cutoff_ms, MediaId after,
                                          std::size_t max) override;
  void PutMedia(Media media, Callback<void> done) override;
  void PutMediaWithin(Media media, MediaQuota quota, Callback<MediaQuotaVerdict> done) override;
  void DeleteMedia(MediaId id, Callback<void> done) override;
  Result<MediaUsage> GetMediaUsage(UserId owner) override;
  Result<std::vector<Media>> ExpiredMedia(std::int64_t cutoff_ms, MediaId after,
                                          std::size_t max) override;

  void Close() override;
  // kUnavailable while the writer's connection is down (see Writer::healthy).
  Status Writable() override;

 private:
  // `hint`: the users whose heads the job will lock; `groups`: the groups
  // whose rows it will lock (both locked at BEGIN, pg_writer.hpp).
  template <class T, class F>
  void Submit(std::string_view op, std::vector<UserId> hint, Callback<T> done, F body,
              std::vector<GroupId> groups = {}) {
    auto job = MakeJob<T>(op, std::move(hint), std::move(body), std::move(done));
    job->set_group_hint(std::move(groups));
    writer_->Submit(std::move(job));
  }

  // ---- Account helpers (pg_accounts.cpp) ----------------------------------
  Result<std::optional<Device>> TxnDevice(Tx& tx, UserId user, DeviceId device);
  Result<SignInResult> ApplySignIn(Tx& tx, SignInRequest& req);
  Result<RotateResult> ApplyRotate(Tx& tx, const std::string& old_hash, RefreshToken& replacement,
                                   std::int64_t now_ms);
  Result<RemoveDeviceResult> ApplyRemoveDevice(Tx& tx, UserId user, DeviceId device,
                                               std::int64_t now_ms,
                                               const KeysChangedRenderer& render);
  // Lets `user` (0: anyone signed in) read the media named by media_id.
  void GrantMedia(Tx& tx, std::string_view media_id, UserId user);

  // ---- Messaging helpers (pg_messaging.cpp) -------------------------------
  Result<Seq> AppendEventRow(Tx& tx, UserId owner, const MailboxEvent& event,
                             std::vector<Appended>& appended);
  // The same event to each of `users` (in that order), in one statement.
  Status AppendSameEvent(Tx& tx, std::span<const UserId> users, const MailboxEvent& event,
                         std::vector<Appended>& appended);
  Result<SendResult> ApplyAppendMessage(Tx& tx, Message& message,
                                        std::span<const UserId> recipients);
  Result<AckResult> ApplyAck(Tx& tx, UserId user, DeviceId device, Seq up_to, std::int64_t now_ms);
  static Result<std::pair<AckDevice, std::vector<IncomingRow>>> ReadAck(Tx& tx, UserId user,
                                                                        DeviceId device,
                                                                        std::optional<Seq> after,
                                                                        Seq up_to);
  Result<std::vector<Appended>> ApplyMarkRead(Tx& tx, UserId user, Conversation conv, MsgId up_to,
                                              std::int64_t now_ms);

  // ---- Group helpers (pg_groups.cpp) ---------------------------------------
  struct GroupState {
    std::shared_ptr<Group> group;  // null: none
    std::uint64_t next_join_order = 1;
  };
  Result<GroupState> TxnGroup(Tx& tx, GroupId id, bool lock);
  Result<bool> TxnIsFormer(Tx& tx, GroupId id, UserId user);
  Result<std::shared_ptr<const Group>> TxnGroupForSend(Tx& tx, GroupId id, UserId sender);
  Result<GroupChangeResult> ApplyChangeGroup(Tx& tx, const GroupChange& change);

  // ---- Key helpers (pg_keys.cpp) -------------------------------------------
  Result<std::vector<DeviceId>> TxnCurrentDevices(Tx& tx, UserId user);
  Result<std::vector<UserId>> TxnContacts(Tx& tx, UserId user);
  // Appends keys_changed to the user's mailbox and its contacts'. `current`
  // is the user's current devices after the change.
  Status AppendKeysChanged(Tx& tx, UserId user, DeviceId device, KeysChange change,
                           std::vector<DeviceId> current, std::int64_t now_ms,
                           const KeysChangedRenderer& render, std::vector<Appended>& appended);
  Result<KeysUploadResult> ApplyUploadKeys(Tx& tx, const KeysUpload& upload);
  Result<std::vector<PrekeyBundle>> ApplyClaimPrekeys(Tx& tx, UserId user, DeviceId except);

  // ---- Retention (pg_purge.cpp) ---------------------------------------------
  Result<std::size_t> ApplyPurge(Tx& tx, std::int64_t cutoff_ms, std::size_t max_rows);

  std::unique_ptr<ReadPool> reads_;
  StoreObserver observer_;
  std::unique_ptr<Writer> writer_;
};

}  // namespace parley::store::pg
