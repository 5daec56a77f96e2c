// Keys and values of the RocksDB store.
//
// Keys sort the way they are scanned: integers are fixed 8-byte big-endian,
// so a (user_id, x) pair key groups a user's rows together in ascending x
// (devices, the mailbox's (user_id, seq), cursors, the conversation index).
// Fields that are in the key are not repeated in the value.
//
// Values are a small binary encoding: one leading byte naming the record
// and its layout version, then the fields in a fixed order; unsigned integers
// as LEB128 varints, signed ones zigzag-encoded first (times are usually
// positive but a negative value must not cost ten bytes), strings as a varint
// length and the bytes. A value that is truncated, has trailing bytes or the
// wrong leading byte decodes as kCorruption: a changed layout gets a new
// leading byte and a format upgrade step, never a silent reinterpretation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "store/records.hpp"

namespace parley::store::rocks {

// ---- Keys -----------------------------------------------------------------

// 8 bytes, big-endian.
std::string U64Key(std::uint64_t v);
std::optional<std::uint64_t> ParseU64Key(std::string_view key);

// 16 bytes: big-endian `a` then big-endian `b`; U64Key(a) is its prefix.
std::string U64PairKey(std::uint64_t a, std::uint64_t b);
std::optional<std::pair<std::uint64_t, std::uint64_t>> ParseU64PairKey(std::string_view key);

// The smallest key greater than every key starting with `prefix`, or "" when
// there is none (the prefix is all 0xff bytes): an iterate_upper_bound.
std::string PrefixUpperBound(std::string_view prefix);

// Fixed-size keys built on the stack: the messaging hot paths make several
// keys per row, and a std::string of 16 bytes or more would be a heap
// allocation each.
template <std::size_t N>
struct KeyBuf {
  std::array<char, N> bytes;
  std::string_view view() const { return {bytes.data(), N}; }
  operator std::string_view() const { return view(); }  // NOLINT: it is the key
};

// IdKey(v) == U64Key(v); Pair64Key(a, b) == U64PairKey(a, b).
KeyBuf<8> IdKey(std::uint64_t v);
KeyBuf<16> Pair64Key(std::uint64_t a, std::uint64_t b);
inline KeyBuf<16> MailboxKey(UserId user, Seq seq) { return Pair64Key(user, seq); }
inline KeyBuf<16> CursorKey(UserId user, DeviceId device) { return Pair64Key(user, device); }
inline KeyBuf<16> ReceiptKey(MsgId msg_id, UserId user) { return Pair64Key(msg_id, user); }
// U64Key(owner) + kind byte + U64Key(conv id): conv_index's prefix for one
// conversation, and read_marks' key.
KeyBuf<17> ConvKey(UserId owner, Conversation conv);
// ConvKey(owner, conv) + U64Key(msg_id).
KeyBuf<25> ConvIndexKey(UserId owner, Conversation conv, MsgId msg_id);
// U64Key(sender) + client_msg_id.
std::string IdemKey(UserId sender, std::string_view client_msg_id);

// ---- Values ---------------------------------------------------------------

// users: key U64Key(id).
std::string EncodeUser(const User& user);
Result<User> DecodeUser(UserId id, std::string_view value);

// devices: key U64PairKey(user_id, id).
std::string EncodeDevice(const Device& device);
Result<Device> DecodeDevice(UserId user, DeviceId id, std::string_view value);

// refresh_tokens: key the token hash.
std::string EncodeRefreshToken(const RefreshToken& token);
Result<RefreshToken> DecodeRefreshToken(std::string_view hash, std::string_view value);

// otp: key the phone number.
std::string EncodeOtp(const OtpCode& code);
Result<OtpCode> DecodeOtp(std::string_view phone, std::string_view value);

// phone_index and phone_hash_index values: the user id as U64Key.
Result<UserId> DecodeUserIdValue(std::string_view value);

// ---- Messaging values ---------------------------------------------------------
//
// Ids (msg, user, group) are Snowflakes near 2^60, so they are fixed 8 bytes
// (a varint would take 9). Encoders that run per mailbox row append to a
// caller's scratch buffer (cleared first) rather than allocate.

// mailbox, type kMessage: the reference to a body plus what receipts need
// without fetching it.
struct MessageRow {
  MsgId msg_id = 0;
  bool outgoing = false;
  UserId sender = 0;
  Conversation conv;  // as the mailbox's owner sees it
  std::int64_t ts_ms = 0;
};
void EncodeMessageRow(const MessageRow& row, std::string& out);
// mailbox, other types: kReceipt (conv, msg_ids, by, status), kReadSync
// (conv, msg_ids = {up_to}), kGroup/kKeysChanged/kDevice (payload).
void EncodeEventRow(const MailboxEvent& event, std::string& out);
// What Ack and Purge look at: the type and time of every row, and for kMessage
// rows the MessageRow (conv only for kMessage).
struct RowHeader {
  EventType type = EventType::kMessage;
  MessageRow message;  // ts_ms is set for every type
};
Result<RowHeader> DecodeRowHeader(std::string_view value);
// The whole event (message left null: it lives in messages).
Result<MailboxEvent> DecodeMailboxEvent(Seq seq, std::string_view value);

// messages: key IdKey(msg_id).
void EncodeMessage(const Message& message, std::string& out);
Result<Message> DecodeMessage(MsgId msg_id, std::string_view value);
// The idempotency key's parts, without copying the body.
struct MessageIdemPart {
  UserId sender = 0;
  std::string_view client_msg_id;  // points into the value
};
Result<MessageIdemPart> PeekMessageIdem(std::string_view value);

// idem: what a repeated send answers.
struct IdemEntry {
  MsgId msg_id = 0;
  Seq seq = 0;  // in the sender's mailbox
  std::int64_t ts_ms = 0;
};
std::string EncodeIdem(const IdemEntry& entry);
Result<IdemEntry> DecodeIdem(std::string_view value);

// conv_index: key ConvIndexKey(owner, conv, msg_id).
struct ConvIndexEntry {
  UserId sender = 0;
  Seq seq = 0;  // in the owner's mailbox
};
void EncodeConvIndex(const ConvIndexEntry& entry, std::string& out);
Result<ConvIndexEntry> DecodeConvIndex(std::string_view value);

// receipts: key ReceiptKey(msg_id, user); 0 = not yet.
struct ReceiptTimes {
  std::int64_t delivered_ts = 0;
  std::int64_t read_ts = 0;
};
void EncodeReceiptTimes(const ReceiptTimes& times, std::string& out);
Result<ReceiptTimes> DecodeReceiptTimes(std::string_view value);

// user_state: key IdKey(user).
struct UserState {
  Seq delivered_seq = 0;  // incoming messages up to here have had delivered receipts
  Seq purged_seq = 0;     // the highest seq retention deleted: the head of an emptied mailbox
};
std::string EncodeUserState(const UserState& state);
Result<UserState> DecodeUserState(std::string_view value);

// cursors (a seq) and read_marks (a msg_id).
std::string EncodeSeqValue(Seq seq);
Result<Seq> DecodeSeqValue(std::string_view value);
std::string EncodeReadMark(MsgId msg_id);
Result<MsgId> DecodeReadMark(std::string_view value);

// ---- Group values -------------------------------------------------------------

// groups: key IdKey(group id). The members live in group_members.
struct GroupRow {
  Group group;  // members left empty
  // The join_order the next member gets: never reused, so that "who joined
  // earliest" stays true across leaves and re-adds.
  std::uint64_t next_join_order = 1;
};
std::string EncodeGroupRow(const GroupRow& row);
Result<GroupRow> DecodeGroupRow(GroupId id, std::string_view value);

// group_members: key Pair64Key(group id, user).
std::string EncodeGroupMember(const GroupMember& member);
Result<GroupMember> DecodeGroupMember(UserId user, std::string_view value);

// group_former: key Pair64Key(group id, user); the time the user left.
std::string EncodeFormerMember(std::int64_t left_ms);
Result<std::int64_t> DecodeFormerMember(std::string_view value);

// ---- Key directory (codec_keys.cpp) -------------------------------------------

// prekeys: U64Key(user) + U64Key(device) + 4-byte big-endian prekey id, so a
// device's prekeys sort by id under the 16-byte prefix Pair64Key(user, device).
KeyBuf<20> PrekeyKey(UserId user, DeviceId device, std::uint32_t prekey_id);
std::optional<std::uint32_t> ParsePrekeyId(std::string_view key);

// device_keys: key Pair64Key(user, device).
std::string EncodeDeviceKeys(const DeviceKeys& keys);
Result<DeviceKeys> DecodeDeviceKeys(UserId user, DeviceId device, std::string_view value);

// prekeys: the one-time prekey's public key.
std::string EncodePrekey(std::string_view key);
Result<std::string> DecodePrekey(std::string_view value);
// ---- Media values (codec_media.cpp) --------------------------------------------

// media: key IdKey(media id).
std::string EncodeMedia(const Media& media);
Result<Media> DecodeMedia(MediaId id, std::string_view value);
std::string EncodeMediaUsage(const MediaUsage& usage);
Result<MediaUsage> DecodeMediaUsage(std::string_view value);
// media_index keys (schema.hpp).
inline std::string MediaUsageKey(UserId user) { return "u" + U64Key(user); }
inline std::string MediaRefKey(MediaId id) { return "r" + U64Key(id); }

}  // namespace parley::store::rocks
