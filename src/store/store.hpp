// The Store seam: everything Parley keeps durably, behind one interface with
// one implementation per backend (src/store/rocksdb/, later src/store/postgres/).
// Nothing above this header may know which backend runs.
//
// Design note: reads and writes are deliberately asymmetric.
//   * Reads are synchronous, thread-safe and never wait for the writer. They
//     see every write whose callback has run; they may or may not see a write
//     still in flight.
//   * Writes are domain operations (not raw puts) queued to one writer, which
//     runs them in submission order, batches whatever is queued into one
//     atomic durable commit (group commit: one fsync for many operations) and
//     only then invokes each operation's callback. An operation sees the
//     effects of every operation submitted before it, also in the same batch.
//     An operation that fails changes nothing. Callbacks run on the writer
//     thread: they must be quick and must not block or call back into a
//     write synchronously (they may submit further writes).
//   * Operations submitted from one thread in order are applied in that order.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "store/records.hpp"

namespace parley::store {

template <class T>
using Callback = std::function<void(Result<T>)>;

// Everything SignIn needs to finish a verified login atomically.
struct SignInRequest {
  std::string phone;
  std::string phone_hash;  // lowercase hex SHA-256 of `phone`, for contact discovery
  std::string code_hash;   // must equal the stored OtpCode's hash; the code is consumed
  UserId new_user_id = 0;  // the id to use when the phone has no account yet
  std::int64_t now_ms = 0;
  Device device;         // id, name, platform preset; user_id is filled in
  RefreshToken refresh;  // hash, expires_ms preset; user/device/gen filled in
  std::uint32_t max_devices = 5;
  std::uint32_t max_otp_attempts = 5;  // a code with this many failures is burned
};

struct SignInResult {
  enum class Outcome {
    kOk,
    kCodeGone,     // the code was consumed, replaced or burned meanwhile
    kDeviceLimit,  // the account already has max_devices devices; nothing changed
  };
  Outcome outcome = Outcome::kOk;
  UserId user_id = 0;
  bool new_user = false;
};

struct OtpFailure {
  std::uint32_t attempts = 0;  // wrong codes so far, this one included
  bool burned = false;         // the code is gone: max_attempts was reached
  bool missing = false;        // there was no code to count against
};

struct RotateResult {
  enum class Outcome {
    kRotated,  // the old token is now used; the replacement is stored
    kUnknown,  // no such token
    kExpired,  // past its expiry
    kRevoked,  // its device is gone or its generation was revoked
    kReused,   // it was already used: every token of its device is now revoked
  };
  Outcome outcome = Outcome::kUnknown;
  UserId user_id = 0;
  DeviceId device_id = 0;
  std::uint32_t token_gen = 0;  // the device's generation after the operation
};

struct SendResult {
  bool duplicate = false;
  MsgId msg_id = 0;
  Seq seq = 0;  // the event's seq in the sender's mailbox
  std::int64_t ts_ms = 0;
  std::vector<Appended> appended;  // every mailbox row written (empty for a duplicate)
};

// One keys.upload: the fields that are set are applied. See Store::UploadKeys.
struct KeysUpload {
  UserId user = 0;
  DeviceId device = 0;
  std::optional<std::string> identity_key;
  std::optional<std::uint32_t> registration_id;
  std::optional<SignedPrekey> signed_prekey;
  std::vector<OneTimePrekey> one_time_prekeys;
  std::uint32_t max_one_time_prekeys = 1000;  // stored per device, at most
  std::int64_t now_ms = 0;
  KeysChangedRenderer render;  // the keys_changed event's payload
};

struct KeysUploadResult {
  std::uint32_t one_time_prekeys_left = 0;
  std::vector<Appended> appended;  // keys_changed events (empty when none)
};

struct RemoveDeviceResult {
  bool removed = false;            // false: the user has no such device
  std::vector<Appended> appended;  // keys_changed events of a current device
};

struct AckResult {
  Seq cursor = 0;                  // the device's cursor afterwards
  std::vector<Appended> appended;  // receipt events appended to senders' mailboxes
};

// What a device's hello reads once its session is findable (ReadHello).
struct HelloState {
  Seq head = 0;    // HeadSeq of the user
  Seq cursor = 0;  // GetCursor of the device
};

// Receives the latency of every store operation (for the /metrics histogram).
// Called from any thread; must be cheap.
using StoreObserver = std::function<void(std::string_view op, double seconds)>;

class Store {
 public:
  virtual ~Store() = default;

  // ---- Reads -------------------------------------------------------------

  virtual Result<std::optional<User>> GetUser(UserId id) = 0;
  virtual Result<std::optional<User>> FindUserByPhone(std::string_view phone) = 0;
  // The users that exist among `ids`, in the order asked; unknown ids are skipped.
  virtual Result<std::vector<User>> GetUsers(std::span<const UserId> ids) = 0;
  // (hash, user id) for every hash (lowercase hex SHA-256 of an E.164 number)
  // that belongs to an account, in the order asked.
  virtual Result<std::vector<std::pair<std::string, UserId>>> FindUsersByPhoneHash(
      std::span<const std::string> hashes) = 0;

  virtual Result<std::optional<Device>> GetDevice(UserId user, DeviceId device) = 0;
  // Every device of the user, oldest first.
  virtual Result<std::vector<Device>> ListDevices(UserId user) = 0;

  virtual Result<std::optional<RefreshToken>> GetRefreshToken(std::string_view hash) = 0;
  virtual Result<std::optional<OtpCode>> GetOtp(std::string_view phone) = 0;

  // ---- Writes (group-committed; see the note at the top) ------------------

  // Stores a new code for the phone, replacing any earlier one.
  virtual void PutOtp(OtpCode code, Callback<void> done) = 0;
  // Counts one wrong code against the phone's current code; the code is
  // deleted when attempts reach max_attempts.
  virtual void RecordOtpFailure(std::string phone, std::uint32_t max_attempts,
                                Callback<OtpFailure> done) = 0;
  // Consumes the phone's code (which must still have req.code_hash, be
  // unexpired at req.now_ms and have fewer than req.max_otp_attempts
  // failures: else kCodeGone), creates the account if the phone has none
  // (with req.new_user_id and the phone hash index), adds the device unless
  // the account already has req.max_devices devices, sets the new device's
  // cursor to the mailbox head (a new device receives what arrives after it
  // joined), and stores the refresh token. All or nothing.
  virtual void SignIn(SignInRequest req, Callback<SignInResult> done) = 0;
  // Exchanges a refresh token for `replacement` (whose user, device and
  // generation the store fills in from the old one). Presenting a token that
  // was already used bumps its device's token_gen, which revokes every
  // access and refresh token of that device.
  virtual void RotateRefreshToken(std::string old_hash, RefreshToken replacement,
                                  std::int64_t now_ms, Callback<RotateResult> done) = 0;
  // Deletes the device, its cursor and its keys (its tokens stop working
  // since it no longer exists). When the device was current (it had an
  // identity key), a keys_changed event rendered by `render` (kRemoved) goes
  // to the user and to every user who shares a conversation with it (see
  // UploadKeys), in the same write. `removed` is false when the user has no
  // such device (nothing changes).
  virtual void RemoveDevice(UserId user, DeviceId device, std::int64_t now_ms,
                            KeysChangedRenderer render, Callback<RemoveDeviceResult> done) = 0;
  // Records activity; a missing device is not an error.
  virtual void TouchDevice(UserId user, DeviceId device, std::int64_t last_active_ms,
                           Callback<void> done) = 0;
  // Applies the fields that are set; kNotFound for an unknown user.
  virtual void UpdateProfile(UserId user, ProfilePatch patch, Callback<void> done) = 0;
  virtual void SetLastSeen(UserId user, std::int64_t last_seen_ms, Callback<void> done) = 0;

  // ---- Messaging reads ----------------------------------------------------

  // The highest seq in the user's mailbox (0 when empty).
  virtual Result<Seq> HeadSeq(UserId user) = 0;
  // HeadSeq of each user, in the order asked, in one read (a clustered
  // node's periodic head check reads up to a thousand a second).
  virtual Result<std::vector<Seq>> HeadSeqs(std::span<const UserId> users) = 0;
  // Up to `max` events with seq > after, in seq order, messages joined.
  virtual Result<std::vector<MailboxEvent>> ReadMailbox(UserId user, Seq after,
                                                        std::size_t max) = 0;
  // The device's cursor: the highest seq it acknowledged (0 when none).
  virtual Result<Seq> GetCursor(UserId user, DeviceId device) = 0;
  // The user's head and the device's cursor, as HeadSeq and GetCursor
  // answer, or nothing when the device does not exist (removed meanwhile):
  // one read where the store is across a network.
  virtual Result<std::optional<HelloState>> ReadHello(UserId user, DeviceId device) = 0;
  virtual Result<std::optional<Message>> GetMessage(MsgId msg_id) = 0;
  // The messages of one conversation in the user's mailbox with msg_id <
  // before (0: from the newest), newest first, at most `limit`.
  virtual Result<std::vector<std::shared_ptr<const Message>>> History(UserId user,
                                                                      Conversation conv,
                                                                      MsgId before,
                                                                      std::size_t limit) = 0;
  virtual Result<MessageReceipts> GetReceipts(MsgId msg_id) = 0;

  // ---- Messaging writes ---------------------------------------------------

  // Stores `message` once and appends a kMessage event to each recipient's
  // mailbox and (outgoing) to the sender's, plus each mailbox's conversation
  // index, in one atomic write. `recipients` excludes the sender (empty for a
  // note to self, which is one outgoing row in the sender's mailbox). If the
  // sender already sent message.client_msg_id, nothing is stored and the first
  // send's msg_id, seq and ts are answered with duplicate = true.
  // For a group message (message.to.kind == kGroup) `recipients` is ignored:
  // the writer takes the group's members at that moment (so a member removed
  // by an earlier write never gets it), sets message.recipients to their
  // number less the sender, and fails with kNotFound when the group does not
  // exist or the sender was never a member, kConflict when the sender is a
  // former member.
  // A message with a media_id also grants every recipient read access to
  // that media (MediaGranted), in the same write.
  virtual void AppendMessage(Message message, std::vector<UserId> recipients,
                             Callback<SendResult> done) = 0;
  // Moves the device's cursor up to `up_to` (never down). The first time any
  // device of the user acknowledges an incoming message, its sender's mailbox
  // gets a delivered receipt (one event per sender and conversation, listing
  // the msg_ids) and the receipt is recorded. kInvalid when up_to > head.
  virtual void Ack(UserId user, DeviceId device, Seq up_to, std::int64_t now_ms,
                   Callback<AckResult> done) = 0;
  // Marks every incoming message of the conversation up to up_to_msg_id as
  // read by `user`: a read receipt to each sender for the ones not yet read,
  // and a kReadSync event in the reader's own mailbox. kNotFound when
  // up_to_msg_id is not a message of that conversation in the user's mailbox.
  virtual void MarkRead(UserId user, Conversation conv, MsgId up_to_msg_id, std::int64_t now_ms,
                        Callback<std::vector<Appended>> done) = 0;
  // Appends one core-rendered event (kGroup, kKeysChanged, kDevice) to each
  // of `users`' mailboxes.
  virtual void AppendEvents(std::vector<UserId> users, EventType type, std::string payload,
                            std::int64_t ts_ms, Callback<std::vector<Appended>> done) = 0;
  // Deletes up to max_rows mailbox events, messages, conversation-index rows,
  // receipts and idempotency keys older than cutoff_ms, and refresh tokens
  // and one-time codes past their own expiry; answers how many rows went.
  // Called again until it answers fewer than max_rows.
  virtual void Purge(std::int64_t cutoff_ms, std::size_t max_rows, Callback<std::size_t> done) = 0;

  // ---- Groups ---------------------------------------------------------------

  // The group with its members, or nullopt.
  virtual Result<std::optional<Group>> GetGroup(GroupId id) = 0;
  // Whether the user was a member once and is not now.
  virtual Result<bool> IsFormerMember(GroupId id, UserId user) = 0;
  // Applies one change (see GroupChange) if its preconditions hold, and
  // appends change.payload to the mailboxes of the members before and after,
  // all in one write. Preconditions: the group exists (kCreate: it does not);
  // the actor is a member (kNotMember for a former one, kNotFound for anyone
  // else); add, remove, promote, demote and update need an admin; the result
  // has at most max_members members. kCreate makes the actor an admin and the
  // others members. Adding a member is a no-op for one already in; removing
  // or promoting/demoting someone not in the group is a no-op. A change
  // whose group afterwards equals the group before (members, roles, name,
  // avatar) writes nothing and appends no event: kOk with changed = false,
  // `group` the group as it is, `appended` and `auto_promoted` empty. kRemove and
  // kLeave make the users former members. When no admin is left but members
  // are, the member who joined earliest becomes an admin (auto_promoted). A
  // group whose last member leaves is deleted.
  virtual void ChangeGroup(GroupChange change, Callback<GroupChangeResult> done) = 0;

  // ---- End-to-end encryption keys -----------------------------------------

  // The device's keys, or nullopt when it is not current (no identity key).
  virtual Result<std::optional<DeviceKeys>> GetDeviceKeys(UserId user, DeviceId device) = 0;
  // Every current device of the user, ascending by device id.
  virtual Result<std::vector<DeviceKeys>> ListDeviceKeys(UserId user) = 0;
  // The users who share a conversation with `user`: its 1:1 peers (anyone
  // it sent a message to or received one from) and the members of its
  // current groups, ascending, `user` itself not included.
  virtual Result<std::vector<UserId>> ListContacts(UserId user) = 0;
  // Whether `from` ever sent `to` a 1:1 message: AppendMessage records the
  // direction along with the peers of ListContacts, in the same write. A
  // message received does not count, nor a note to self, nor a group
  // message: last_seen_visibility "contacts" means the people a user chose
  // to write to, not anyone who wrote to it.
  virtual Result<bool> HasWrittenTo(UserId from, UserId to) = 0;

  // Applies an upload for a device that exists (kNotFound otherwise):
  // identity key and registration id replace the stored ones, the signed
  // prekey replaces the stored one, one-time prekeys are added (one with an
  // id already stored replaces it and is not counted twice). A device's
  // first upload must carry identity_key and signed_prekey; an upload whose
  // identity_key differs from the stored one must carry signed_prekey, and
  // drops every one-time prekey stored under the old identity (kInvalid,
  // naming the field, otherwise). More than max_one_time_prekeys stored
  // afterwards: kInvalid ("one_time_prekeys: ..."), nothing changes. A
  // first or changed identity key appends keys_changed (rendered by
  // upload.render) to the user's mailbox and to the mailbox of every user
  // of ListContacts, in the same write.
  virtual void UploadKeys(KeysUpload upload, Callback<KeysUploadResult> done) = 0;
  // A bundle for each current device of the user but `except` (the asking
  // device, when it asks for its own user; 0: none) ascending by device id,
  // each with one of its one-time prekeys (the lowest id) that is deleted in
  // the same write: a one-time prekey is handed out once, ever, however many
  // claims race. Empty when the user has no current device.
  virtual void ClaimPrekeys(UserId user, DeviceId except,
                            Callback<std::vector<PrekeyBundle>> done) = 0;
  // ---- Media ------------------------------------------------------------------

  virtual Result<std::optional<Media>> GetMedia(MediaId id) = 0;
  // Whether `user` may read the media besides its owner: a message that
  // carried it reached the user (AppendMessage records that), or it is a
  // profile or group avatar (UpdateProfile and ChangeGroup record that).
  virtual Result<bool> MediaGranted(MediaId id, UserId user) = 0;
  // Up to `max` unfinished uploads (status kUploading) created before
  // cutoff_ms with ids above `after`, in id order. Ids are time-ordered, so
  // the scan is the id range (after, IdFloorForTime(cutoff_ms)): a sweep that
  // remembers how far it got never reads older records again.
  virtual Result<std::vector<Media>> StaleUploads(std::int64_t cutoff_ms, MediaId after,
                                                  std::size_t max) = 0;
  // Creates or replaces the record, and keeps the owner's MediaUsage in the
  // same write: stored_bytes and uploading follow the record (a replaced
  // record's size and status are taken back first); a new record's size
  // is added to day_bytes of the UTC day of its created_ms (a new day
  // starts from 0); replacing never adds to day_bytes.
  virtual void PutMedia(Media media, Callback<void> done) = 0;
  // PutMedia, only if the owner's usage after it stays within `quota`,
  // checked in the same write (one job of the writer; on PostgreSQL with
  // the owner's usage row locked), so concurrent uploads of one user, on
  // any node, never pass a limit together. A limit is checked only when the
  // record adds to what it counts (a replaced record no larger passes).
  // Answers kWithin once written; any other verdict wrote nothing.
  virtual void PutMediaWithin(Media media, MediaQuota quota, Callback<MediaQuotaVerdict> done) = 0;
  // Deletes the record, its grants and its last-reference time, and takes its
  // size (and upload) back from the owner's MediaUsage (day_bytes stays);
  // deleting a missing one is not an error.
  virtual void DeleteMedia(MediaId id, Callback<void> done) = 0;
  // The owner's usage; all zero for a user without media.
  virtual Result<MediaUsage> GetMediaUsage(UserId owner) = 0;
  // Media past retention, in id order after `after` (0: from the start), up
  // to `max`: records that are not uploads, created before cutoff_ms, that
  // no message sent at or after cutoff_ms carried (AppendMessage records
  // the newest message's ts_ms per media id) and that are not avatars (no
  // grant to user 0).
  virtual Result<std::vector<Media>> ExpiredMedia(std::int64_t cutoff_ms, MediaId after,
                                                  std::size_t max) = 0;

  // ---- Lifecycle ----------------------------------------------------------

  // Whether a read may wait on the network (a round trip to a database
  // server) rather than being a local lookup of microseconds. Core runs the
  // work that reads off the I/O threads when true (core/store_reads.hpp).
  virtual bool ReadsBlock() const { return false; }

  // Whether writes can be expected to succeed now: Ok, or kNoSpace while the
  // backend's volume is full (every write then fails with kNoSpace and
  // applies nothing), kUnavailable while it refuses writes for another
  // reason. A backend recovers by itself once the cause is gone. /ready
  // answers 503 unless Ok.
  virtual Status Writable() { return Ok(); }

  // Runs every queued write, waits for their callbacks, and stops the writer.
  // Later writes fail with kUnavailable. Idempotent.
  virtual void Close() = 0;
};

}  // namespace parley::store
