// The RocksDB Store, split by role (private to src/store/rocksdb/):
//   rocksdb_store.cpp      lifecycle, job submission, shared read helpers
//   rocksdb_accounts.cpp   users, devices, tokens, one-time codes
//   rocksdb_messaging.cpp  mailboxes, messages, cursors, receipts
//   rocksdb_purge.cpp      retention
//   rocksdb_groups.cpp     groups, and the membership a group send fans out to
//   rocksdb_keys.cpp       the e2ee key directory and keys_changed fan-out
//   rocksdb_media.cpp      media records and who may read them
//
// Threads: reads run on the caller's thread and touch only the database,
// heads_ and groups_ (committed layers) and messages_. Everything a job body
// touches besides those (the pending layers, purge_, scratch_) belongs to
// the writer thread.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "store/rocksdb/codec.hpp"
#include "store/rocksdb/group_cache.hpp"
#include "store/rocksdb/group_writer.hpp"
#include "store/rocksdb/incoming_index.hpp"
#include "store/rocksdb/mailbox_heads.hpp"
#include "store/rocksdb/message_cache.hpp"
#include "store/rocksdb/peer_cache.hpp"
#include "store/rocksdb/rocksdb_store.hpp"
#include "store/rocksdb/schema.hpp"
#include "store/store.hpp"

namespace parley::store::rocks {

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

inline constexpr std::size_t kMessageCacheEntries = 4096;
// A full group is about 8 KiB here.
inline constexpr std::size_t kGroupCacheEntries = 1024;

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<Database> db, const RocksOptions& options);
  ~RocksStore() override;

  // ---- Accounts (rocksdb_accounts.cpp) ------------------------------------
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

  // ---- Messaging (rocksdb_messaging.cpp) ----------------------------------
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

  // ---- Retention (rocksdb_purge.cpp) --------------------------------------
  void Purge(std::int64_t cutoff_ms, std::size_t max_rows, Callback<std::size_t> done) override;

  // ---- Groups (rocksdb_groups.cpp) ----------------------------------------
  Result<std::optional<Group>> GetGroup(GroupId id) override;
  Result<bool> IsFormerMember(GroupId id, UserId user) override;
  void ChangeGroup(GroupChange change, Callback<GroupChangeResult> done) override;

  // ---- Key directory (rocksdb_keys.cpp) -----------------------------------
  Result<std::optional<DeviceKeys>> GetDeviceKeys(UserId user, DeviceId device) override;
  Result<std::vector<DeviceKeys>> ListDeviceKeys(UserId user) override;
  Result<std::vector<UserId>> ListContacts(UserId user) override;
  Result<bool> HasWrittenTo(UserId from, UserId to) override;
  void UploadKeys(KeysUpload upload, Callback<KeysUploadResult> done) override;
  void ClaimPrekeys(UserId user, DeviceId except,
                    Callback<std::vector<PrekeyBundle>> done) override;
  // ---- Media (rocksdb_media.cpp) ------------------------------------------
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
  Status Writable() override;
  Status CheckSpace();

 private:
  // Lets `user` (0: anyone signed in) read the media named by media_id.
  // ref_ms >= 0: a message of that time carried it (ExpiredMedia).
  Status GrantMedia(WriteTxn& txn, std::string_view media_id, UserId user,
                    std::int64_t ref_ms = -1);
  // The usage rows PutMedia and DeleteMedia adjust (rocksdb_media.cpp).
  Status AdjustUsage(WriteTxn& txn, const std::optional<Media>& before, const Media* after);

  rocksdb::ColumnFamilyHandle* cf(Cf which) const { return db_->cf(which); }

  template <class T, class F>
  void Submit(std::string_view op, Callback<T> done, F body) {
    if (!writer_) {
      if (done) done(Fail(Errc::kUnavailable, "store is open read-only"));
      return;
    }
    // Near a full disk only what frees space is written (write_health.hpp).
    if (op != "purge" && op != "delete_media") {
      if (auto s = CheckSpace(); !s) {
        if (done) done(std::unexpected(s.error()));
        return;
      }
    }
    writer_->Submit(MakeJob<T>(op, std::move(body), std::move(done)));
  }

  // ---- Read helpers (rocksdb_store.cpp) -----------------------------------
  Result<std::optional<std::string>> ReadValue(const rocksdb::ReadOptions& ro, Cf which,
                                               std::string_view key);
  Result<std::optional<User>> ReadUser(const rocksdb::ReadOptions& ro, UserId id);

  // Looks all keys up in one call and hands each one found, with its index
  // in `keys`, to `found`, in order.
  template <class F>
  Status MultiGet(Cf which, std::span<const rocksdb::Slice> keys, F found) {
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->db()->MultiGet(rocksdb::ReadOptions(), cf(which), keys.size(), keys.data(), values.data(),
                        statuses.data());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      if (!statuses[i].ok()) return std::unexpected(FromRocks(statuses[i], "multi_get"));
      if (auto s = found(i, values[i].ToStringView()); !s) return s;
    }
    return Ok();
  }
  template <class F>
  Status MultiGet(Cf which, std::span<const std::string> keys, F found) {
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    return MultiGet(which, std::span<const rocksdb::Slice>(slices), std::move(found));
  }

  // ---- Account write helpers (rocksdb_accounts.cpp) -----------------------
  Result<std::optional<OtpCode>> TxnOtp(WriteTxn& txn, std::string_view phone);
  Result<std::optional<Device>> TxnDevice(WriteTxn& txn, UserId user, DeviceId device);
  template <class F>
  Status ModifyUser(WriteTxn& txn, UserId id, F modify);
  Result<SignInResult> ApplySignIn(WriteTxn& txn, SignInRequest& req);
  Result<RotateResult> ApplyRotate(WriteTxn& txn, const std::string& old_hash,
                                   RefreshToken& replacement, std::int64_t now_ms);
  Result<RemoveDeviceResult> ApplyRemoveDevice(WriteTxn& txn, UserId user, DeviceId device,
                                               std::int64_t now_ms,
                                               const KeysChangedRenderer& render);

  // ---- Messaging helpers (rocksdb_messaging.cpp) --------------------------
  // The committed head from the database: its newest row, or for a mailbox
  // that retention emptied, the last seq it had.
  Result<Seq> LoadHead(UserId user);
  // Bodies for `ids` (cache first, then one MultiGet); null where purged.
  Result<std::vector<std::shared_ptr<const Message>>> LoadMessages(std::span<const MsgId> ids,
                                                                   bool cache_loaded);

  Result<Seq> AppendMessageRow(WriteTxn& txn, UserId owner, const MessageRow& row,
                               std::vector<Appended>& appended);
  Result<Seq> AppendEventRow(WriteTxn& txn, UserId owner, const MailboxEvent& event,
                             std::vector<Appended>& appended);
  Result<ReceiptTimes> TxnReceipt(WriteTxn& txn, MsgId msg_id, UserId user);
  Result<UserState> TxnUserState(WriteTxn& txn, UserId user);

  // Sets message.recipients for a group send.
  Result<SendResult> ApplyAppendMessage(WriteTxn& txn, Message& message,
                                        std::span<const UserId> recipients);
  Result<AckResult> ApplyAck(WriteTxn& txn, UserId user, DeviceId device, Seq up_to,
                             std::int64_t now_ms);
  Result<std::vector<Appended>> ApplyMarkRead(WriteTxn& txn, UserId user, Conversation conv,
                                              MsgId up_to, std::int64_t now_ms);

  // ---- Group helpers (rocksdb_groups.cpp) --------------------------------
  // The group as this job sees it (GroupState::group null when there is none).
  Result<GroupState> TxnGroup(WriteTxn& txn, GroupId id);
  Result<bool> TxnIsFormer(WriteTxn& txn, GroupId id, UserId user);
  // The group a send by `sender` fans out to: kNotFound when there is no
  // such group or the sender was never in it, kConflict for a former member.
  Result<std::shared_ptr<const Group>> TxnGroupForSend(WriteTxn& txn, GroupId id, UserId sender);
  Result<GroupChangeResult> ApplyChangeGroup(WriteTxn& txn, const GroupChange& change);
  // Writes the difference between `before` and `after` (null: deleted) and
  // the change's event rows.
  Status WriteGroupChange(WriteTxn& txn, const GroupChange& change, const Group* before,
                          const std::shared_ptr<const Group>& after, std::uint64_t next_join_order,
                          std::vector<Appended>& appended);

  // ---- Key directory helpers (rocksdb_keys.cpp) ---------------------------
  Result<std::optional<DeviceKeys>> TxnDeviceKeys(WriteTxn& txn, UserId user, DeviceId device);
  // The user's current device ids, ascending, as this job sees them.
  Result<std::vector<DeviceId>> TxnCurrentDevices(WriteTxn& txn, UserId user);
  // ListContacts as this job sees it.
  Result<std::vector<UserId>> TxnContacts(WriteTxn& txn, UserId user);
  // Appends the keys_changed event to the user's mailbox and its contacts'.
  Status AppendKeysChanged(WriteTxn& txn, UserId user, DeviceId device, KeysChange change,
                           std::int64_t now_ms, const KeysChangedRenderer& render,
                           std::vector<Appended>& appended);
  // Deletes every one-time prekey of the device.
  Status DeletePrekeys(WriteTxn& txn, UserId user, DeviceId device);
  Result<KeysUploadResult> ApplyUploadKeys(WriteTxn& txn, const KeysUpload& upload);
  Result<std::vector<PrekeyBundle>> ApplyClaimPrekeys(WriteTxn& txn, UserId user, DeviceId except);
  // Records that `sender` wrote a 1:1 message to `recipient`: the peers rows
  // both ways, and the direction (HasWrittenTo) in the sender's row.
  Status NotePeers(WriteTxn& txn, UserId sender, UserId recipient);

  // ---- Retention (rocksdb_purge.cpp) --------------------------------------
  // One scan position per family that retention walks. A pass walks each of
  // them once; a position survives between calls so that the next call goes
  // on where the last one stopped.
  enum PurgePhase : std::size_t {
    kPurgeMailbox,
    kPurgeMessages,
    kPurgeReceipts,
    kPurgeTokens,
    kPurgeOtp,
    kPurgePhases
  };
  struct PurgeCursor {
    std::string resume;  // the key to continue from ("" = the first)
    bool done = false;   // the current pass has covered this family
  };
  struct PurgeBudget {
    std::size_t max_deleted = 0;
    std::size_t max_visited = 0;
    std::size_t deleted = 0;
    std::size_t visited = 0;
    bool spent() const { return deleted >= max_deleted || visited >= max_visited; }
  };
  struct PurgeProgress {
    std::size_t deleted = 0;
    bool pass_done = false;
  };
  void PurgeSteps(std::int64_t cutoff_ms, std::size_t max_rows, std::size_t total,
                  Callback<std::size_t> done);
  Result<PurgeProgress> ApplyPurgeStep(WriteTxn& txn, std::int64_t cutoff_ms, std::size_t max_rows,
                                       std::size_t remaining);
  Status PurgeMailbox(WriteTxn& txn, std::int64_t cutoff_ms, PurgeCursor& cursor,
                      PurgeBudget& budget);
  Status PurgeMessages(WriteTxn& txn, MsgId floor, PurgeCursor& cursor, PurgeBudget& budget);
  Status PurgeReceipts(WriteTxn& txn, MsgId floor, PurgeCursor& cursor, PurgeBudget& budget);
  Status PurgeExpiredCredentials(WriteTxn& txn, Cf which, std::int64_t now_ms, PurgeCursor& cursor,
                                 PurgeBudget& budget);

  std::unique_ptr<Database> db_;
  StoreObserver observer_;
  MailboxHeads heads_;
  MessageCache messages_{kMessageCacheEntries};
  GroupCache groups_{kGroupCacheEntries};
  PeerCache peers_;  // writer thread
  // Writer thread: per user, a seq at or above every incoming message row of
  // the mailbox (any seq up to it may be one). An ack that does not reach
  // past the delivered watermark into that range has no delivered receipts
  // to write, so it skips the mailbox scan: that is most acks, the sender's
  // of its own copies and of the receipts it gets. Only ever raised, so a
  // rolled-back job or a failed batch leaves it high, which costs a scan and
  // nothing else; a user without an entry starts at the mailbox head.
  // Cleared when it grows past kMaxIncomingMarks.
  static constexpr std::size_t kMaxIncomingMarks = 1 << 20;
  // How far an ack with nothing incoming in its range may leave the user's
  // delivered watermark behind (rows a later ack's scan may have to pass).
  static constexpr Seq kLazyWatermark = 256;
  std::unordered_map<UserId, Seq> incoming_marks_;
  void NoteIncoming(UserId user, Seq seq);
  // The user's mark; a user without one gets `head` (the mailbox's head).
  Seq IncomingMark(UserId user, Seq head);
  // The delivered receipts for the incoming messages in (after, up_to] of
  // `user`'s mailbox: receipt rows, and one receipt event per sender and
  // conversation into the senders' mailboxes.
  // `head` is the mailbox's current head.
  Status WriteDeliveredReceipts(WriteTxn& txn, UserId user, Seq after, Seq up_to, Seq head,
                                std::int64_t now_ms, std::vector<Appended>& appended);
  // Writer thread: the incoming rows not yet delivered, so that most acks
  // need no mailbox scan (incoming_index.hpp).
  IncomingIndex incoming_;
  // What the writer tells after each job and batch.
  BatchObservers batches_{{&heads_, &groups_, &peers_, &incoming_}};
  std::array<PurgeCursor, kPurgePhases> purge_;  // writer thread
  std::string scratch_;                          // writer thread: values being encoded
  std::unique_ptr<GroupWriter> writer_;          // null when read-only; last: uses the above
};

}  // namespace parley::store::rocks
