// The records every Store backend keeps. Plain values, no behaviour: the
// store contract (store.hpp) says what each operation does with them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parley::store {

using UserId = std::uint64_t;
using DeviceId = std::uint64_t;

struct User {
  UserId id = 0;
  std::string phone;  // E.164
  std::int64_t created_ms = 0;
  // Profile.
  std::string name;
  std::string status_text;
  std::string avatar_media_id;
  std::string last_seen_visibility = "everyone";  // everyone | contacts | nobody
  std::int64_t last_seen_ms = 0;
};

struct Device {
  UserId user_id = 0;
  DeviceId id = 0;
  std::string name;
  std::string platform;  // android | ios | web | desktop | cli
  std::int64_t created_ms = 0;
  std::int64_t last_active_ms = 0;
  // Access and refresh tokens carry the generation they were issued under;
  // bumping it revokes every token of the device at once.
  std::uint32_t token_gen = 0;
};

// A refresh token, keyed by the SHA-256 of the opaque token (never stored in
// the clear). A rotated token is kept, marked used, until it expires, so that
// presenting it again is recognised as theft.
struct RefreshToken {
  std::string hash;  // 32 raw bytes
  UserId user_id = 0;
  DeviceId device_id = 0;
  std::uint32_t token_gen = 0;
  std::int64_t expires_ms = 0;
  bool used = false;
};

// A pending one-time code for a phone number; at most one per phone.
struct OtpCode {
  std::string phone;
  std::string code_hash;  // keyed hash of the 6 digits, never the digits
  std::int64_t expires_ms = 0;
  std::uint32_t attempts = 0;  // wrong codes tried so far
};

struct ProfilePatch {
  std::optional<std::string> name;
  std::optional<std::string> status_text;
  std::optional<std::string> avatar_media_id;
  std::optional<std::string> last_seen_visibility;
};

// ---- Messaging (mailboxes, messages, receipts) ----------------------------

using MsgId = std::uint64_t;
using Seq = std::uint64_t;

// A conversation as one mailbox owner sees it: the peer of a 1:1 chat, or a group.
struct Conversation {
  enum class Kind : std::uint8_t { kUser = 1, kGroup = 2 };
  Kind kind = Kind::kUser;
  std::uint64_t id = 0;  // the peer's user id, or the group id
  bool operator==(const Conversation&) const = default;
};

// A message body, stored once under its msg_id however many mailboxes
// reference it.
struct Message {
  MsgId msg_id = 0;
  UserId sender = 0;
  DeviceId sender_device = 0;
  Conversation to;  // as the sender addressed it: the recipient user, or the group
  std::string client_msg_id;
  std::string kind;      // text | image | video | audio | file | e2ee | sender_key
  std::string body;      // the serialized JSON value, as sent
  std::string media_id;  // "" when none
  std::int64_t ts_ms = 0;
  std::uint32_t recipients = 0;  // recipients at send time, the sender not counted
};

enum class EventType : std::uint8_t {
  kMessage = 1,
  kReceipt = 2,
  kReadSync = 3,
  kGroup = 4,
  kKeysChanged = 5,
  kDevice = 6,
};

enum class ReceiptStatus : std::uint8_t { kDelivered = 1, kRead = 2 };

// One row of a user's mailbox. Which fields mean something depends on type.
struct MailboxEvent {
  Seq seq = 0;
  EventType type = EventType::kMessage;
  std::int64_t ts_ms = 0;
  // kMessage: the message and whether the owner sent it.
  MsgId msg_id = 0;
  bool outgoing = false;
  std::shared_ptr<const Message> message;  // filled by ReadMailbox (null if purged)
  // kReceipt: conv (from the owner's view), msg_ids, by, status.
  // kReadSync: conv, msg_ids = {up_to_msg_id}.
  Conversation conv;
  std::vector<MsgId> msg_ids;
  UserId by = 0;
  ReceiptStatus status = ReceiptStatus::kDelivered;
  // kGroup, kKeysChanged, kDevice: the event object, rendered by core.
  std::string payload;
};

// Where new events landed: wake these mailboxes' sessions.
struct Appended {
  UserId user = 0;
  Seq seq = 0;
  // The event itself when the store has it at hand (a delivered receipt of
  // the RocksDB store): sessions then send it without reading the mailbox.
  // Null otherwise; valid once the write that appended it has committed.
  std::shared_ptr<const MailboxEvent> event;
};

struct ReceiptEntry {
  UserId user = 0;
  std::int64_t ts_ms = 0;
};

struct MessageReceipts {
  std::vector<ReceiptEntry> delivered;
  std::vector<ReceiptEntry> read;
};

// ---- Groups -----------------------------------------------------------------

using GroupId = std::uint64_t;

enum class GroupRole : std::uint8_t { kMember = 1, kAdmin = 2 };

struct GroupMember {
  UserId user = 0;
  GroupRole role = GroupRole::kMember;
  std::int64_t joined_ms = 0;
  std::uint64_t join_order = 0;  // strictly increasing per group: who joined earliest
};

struct Group {
  GroupId id = 0;
  std::string name;
  std::string avatar_media_id;  // "" when none
  UserId created_by = 0;
  std::int64_t created_ms = 0;
  std::vector<GroupMember> members;  // in join order
};

// One change to a group, applied atomically with its `group` event.
struct GroupChange {
  enum class Kind : std::uint8_t { kCreate, kAdd, kRemove, kPromote, kDemote, kUpdate, kLeave };
  Kind kind = Kind::kCreate;
  GroupId group_id = 0;
  UserId actor = 0;
  std::vector<UserId>
      users;  // create: the members besides the actor; add/remove; promote/demote: one
  std::optional<std::string> name;             // create, update
  std::optional<std::string> avatar_media_id;  // update
  std::int64_t now_ms = 0;
  std::uint32_t max_members = 256;
  // The `group` event (rendered by core) appended to the mailbox of every
  // member before the change and every member after it: removed members
  // learn of their removal, added ones of their addition.
  std::string payload;
};

struct GroupChangeResult {
  enum class Outcome : std::uint8_t {
    kOk,
    kNotFound,        // no such group, or the actor was never a member
    kNotMember,       // the actor is a former member
    kNotAdmin,        // the change needs an admin
    kTooManyMembers,  // it would exceed max_members
  };
  Outcome outcome = Outcome::kOk;
  // False for a change that changes nothing (adding only members already in,
  // removing, promoting or demoting nobody it affects, an update equal to
  // the current values): nothing was written and no event appended.
  bool changed = true;
  std::vector<Appended> appended;
  // Members made admin because the last admin left (or was demoted).
  std::vector<UserId> auto_promoted;
  std::shared_ptr<const Group> group;  // the group after the change (null when it is gone)
};

// ---- End-to-end encryption keys (the key directory) --------------------------
//
// Key material is kept as the client uploaded it: standard base64 text,
// checked by core for its decoded size. A device is "current" once it has
// uploaded an identity key, until it is removed.

struct SignedPrekey {
  std::uint32_t id = 0;
  std::string key;
  std::string signature;
};

struct OneTimePrekey {
  std::uint32_t id = 0;
  std::string key;
};

// One current device's long-lived keys.
struct DeviceKeys {
  UserId user = 0;
  DeviceId device = 0;
  std::string identity_key;
  std::optional<std::uint32_t> registration_id;
  SignedPrekey signed_prekey;
  std::uint32_t one_time_prekeys = 0;  // how many are stored and not yet handed out
};

// One device's entry of a bundle: its keys and, while any are left, one
// one-time prekey that nobody else will ever be given.
struct PrekeyBundle {
  DeviceKeys keys;
  std::optional<OneTimePrekey> one_time_prekey;
};

enum class KeysChange : std::uint8_t {
  kAdded,            // the device's first identity key: it became current
  kIdentityChanged,  // a different identity key replaced the device's old one
  kRemoved,          // the device was removed
};

// What a keys_changed event says; core renders it (KeysChangedRenderer).
struct KeysChangedInfo {
  UserId user = 0;
  DeviceId device = 0;
  KeysChange change = KeysChange::kAdded;
  std::vector<DeviceId> current;  // the user's current devices after the change, ascending
  std::int64_t ts_ms = 0;
};
// Runs on the writer thread inside the write: must be quick and pure.
using KeysChangedRenderer = std::function<std::string(const KeysChangedInfo&)>;

// ---- Media -------------------------------------------------------------------

using MediaId = std::uint64_t;

enum class MediaStatus : std::uint8_t {
  kUploading = 1,   // a resumable upload that has not received its last byte
  kProcessing = 2,  // complete; metadata and thumbnail are being made
  kReady = 3,
  kFailed = 4,  // the bytes are not what the content type claims (see reason)
};

// One blob's metadata (PROTOCOL.md section 6). The bytes live in the
// BlobStore under the same id. A resumable upload is a Media record with
// status kUploading whose bytes so far are the BlobStore's partial file.
struct Media {
  MediaId id = 0;
  UserId owner = 0;
  std::string content_type;
  std::string filename;    // from tus Upload-Metadata, "" when none
  std::uint64_t size = 0;  // kUploading: the declared Upload-Length
  std::string sha256;      // lowercase hex; "" while uploading
  MediaStatus status = MediaStatus::kProcessing;
  std::string reason;       // kFailed: why
  std::uint32_t width = 0;  // 0: unknown
  std::uint32_t height = 0;
  std::int64_t duration_ms = -1;  // -1: none
  bool thumbnail = false;
  std::int64_t created_ms = 0;
};

// What one user's media takes (the quotas of docs/operations.md), kept by
// PutMedia and DeleteMedia.
struct MediaUsage {
  std::uint64_t stored_bytes = 0;  // sizes of the user's media records (uploads: Upload-Length)
  std::uint32_t uploading = 0;     // records in status kUploading
  std::int64_t day = 0;            // the UTC day (created_ms / 86400000) day_bytes counts
  std::uint64_t day_bytes = 0;     // sizes of records created on that day
};

// The limits a media record must keep its owner within, checked in the same
// write as the record (Store::PutMediaWithin); 0: no limit.
struct MediaQuota {
  std::uint64_t stored_bytes = 0;  // MediaUsage::stored_bytes
  std::uint64_t day_bytes = 0;     // MediaUsage::day_bytes of the record's UTC day
  std::uint32_t uploading = 0;     // MediaUsage::uploading
};

// Which limit of a MediaQuota a record would have passed.
enum class MediaQuotaVerdict { kWithin, kStoredBytes, kDayBytes, kUploading };

}  // namespace parley::store
