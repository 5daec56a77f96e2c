// The RocksDB store's database: its column families, tuning, format version
// and upgrades, and the mapping of rocksdb::Status onto parley::Errc.
//
// Format version: meta["format_version"] (decimal text). A new database is
// stamped with kFormatVersion. An older one is upgraded at open, one step
// per version (see UpgradeFrom in schema.cpp: adding a version is adding one
// function and one case); a newer one is refused, since this build cannot
// know what it would break. Column families that a new version adds are
// created by the open itself, so upgrade steps only move data.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace parley::store::rocks {

// 2: user_groups and peers (filled from group_members and conv_index).
// 3: media_index (per-user media usage, filled from media).
inline constexpr std::uint32_t kFormatVersion = 3;
inline constexpr std::string_view kFormatVersionKey = "format_version";

// One column family per record kind; codec.hpp has the key and value
// layouts. New families go at the end (the enum indexes kCfNames).
enum class Cf : std::size_t {
  kMeta,
  kUsers,           // U64Key(user id) -> User
  kPhoneIndex,      // phone -> U64Key(user id)
  kPhoneHashIndex,  // lowercase hex SHA-256 of the phone -> U64Key(user id)
  kDevices,         // U64PairKey(user id, device id) -> Device
  kRefreshTokens,   // token hash -> RefreshToken
  kOtp,             // phone -> OtpCode
  // Messaging.
  kMailbox,    // MailboxKey(user, seq) -> one event (a kMessage row references the body)
  kMessages,   // IdKey(msg_id) -> Message
  kIdem,       // IdemKey(sender, client_msg_id) -> IdemEntry
  kConvIndex,  // ConvIndexKey(owner, conv, msg_id) -> ConvIndexEntry
  kCursors,    // CursorKey(user, device) -> seq
  kReceipts,   // ReceiptKey(msg_id, user) -> ReceiptTimes
  kUserState,  // IdKey(user) -> UserState (delivered watermark, purged seq)
  kReadMarks,  // ConvKey(user, conv) -> the highest msg_id read
  // Groups.
  kGroups,        // IdKey(group id) -> GroupRow (the group without its members)
  kGroupMembers,  // Pair64Key(group id, user) -> GroupMember
  kGroupFormer,   // Pair64Key(group id, user) -> when the user left or was removed
  // End-to-end encryption keys, and who hears of their changes.
  kDeviceKeys,  // Pair64Key(user, device) -> DeviceKeys (only current devices have a row)
  kPrekeys,     // PrekeyKey(user, device, prekey id) -> the one-time prekey (base64)
  kPeers,       // Pair64Key(user, peer) -> "" for each 1:1 conversation, both directions;
                // kPeerWrote instead when `user` wrote to `peer` (rows written before
                // the direction was recorded are "": not known to have written)
  kUserGroups,  // Pair64Key(user, group id) -> "" while the user is a member
  // Media.
  kMedia,        // IdKey(media id) -> Media
  kMediaAccess,  // Pair64Key(media id, user) -> "" (user 0: anyone signed in, an avatar)
  // 'u' + U64Key(user) -> MediaUsage; 'r' + U64Key(media id) -> the newest
  // ts_ms of a message that carried it (Fixed64).
  kMediaIndex,
  kCount,
};

// The value of a peers row whose owner wrote to the peer (HasWrittenTo).
inline constexpr std::string_view kPeerWrote = "w";

inline constexpr std::array<std::string_view, static_cast<std::size_t>(Cf::kCount)> kCfNames = {
    // Accounts.
    "meta",
    "users",
    "phone_index",
    "phone_hash_index",
    "devices",
    "refresh_tokens",
    "otp",
    // Messaging.
    "mailbox",
    "messages",
    "idem",
    "conv_index",
    "cursors",
    "receipts",
    "user_state",
    "read_marks",
    // Groups.
    "groups",
    "group_members",
    "group_former",
    // Keys.
    "device_keys",
    "prekeys",
    "peers",
    "user_groups",
    // Media.
    "media",
    "media_access",
    "media_index",
};

// Maps a failed status onto the project's error kinds; `what` says which
// operation failed.
Error FromRocks(const rocksdb::Status& status, std::string_view what);

// An open database and its column family handles; closes both, in the order
// RocksDB requires, when destroyed.
class WriteHealth;

class Database {
 public:
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* cf(Cf which) const {
    return handles_[static_cast<std::size_t>(which)];
  }
  bool read_only() const { return read_only_; }
  // Whether writes are accepted (write_health.hpp); null when read-only.
  WriteHealth* health() const { return health_.get(); }

  // Opens (creating, stamping or upgrading) the database at `path` and checks
  // its format version.
  static Result<std::unique_ptr<Database>> Open(const std::string& path, bool read_only);

 private:
  Database() = default;

  rocksdb::DB* db_ = nullptr;
  // Indexed by Cf; `others_` holds default and any family this build does not
  // know (RocksDB insists they all be opened).
  std::array<rocksdb::ColumnFamilyHandle*, static_cast<std::size_t>(Cf::kCount)> handles_{};
  std::vector<rocksdb::ColumnFamilyHandle*> others_;
  bool read_only_ = false;
  std::shared_ptr<WriteHealth> health_;
};

}  // namespace parley::store::rocks
