#include "store/rocksdb/codec.hpp"

#include "store/rocksdb/codec_io.hpp"

#include <cstddef>

namespace parley::store::rocks {
namespace {

// Leading bytes: record kind and layout version in one. Never reuse one.
constexpr std::uint8_t kUserV1 = 0x11;
constexpr std::uint8_t kDeviceV1 = 0x21;
constexpr std::uint8_t kRefreshTokenV1 = 0x31;
constexpr std::uint8_t kOtpV1 = 0x41;
// Mailbox rows: one leading byte per event type.
constexpr std::uint8_t kRowMessageV1 = 0x51;
constexpr std::uint8_t kRowReceiptV1 = 0x52;
constexpr std::uint8_t kRowReadSyncV1 = 0x53;
constexpr std::uint8_t kRowGroupV1 = 0x54;
constexpr std::uint8_t kRowKeysChangedV1 = 0x55;
constexpr std::uint8_t kRowDeviceV1 = 0x56;
constexpr std::uint8_t kMessageV1 = 0x61;
constexpr std::uint8_t kIdemV1 = 0x71;
constexpr std::uint8_t kConvIndexV1 = 0x81;
constexpr std::uint8_t kCursorV1 = 0x91;
constexpr std::uint8_t kReceiptTimesV1 = 0xa1;
constexpr std::uint8_t kUserStateV1 = 0xb1;
constexpr std::uint8_t kReadMarkV1 = 0xc1;
constexpr std::uint8_t kGroupV1 = 0xd1;
constexpr std::uint8_t kGroupMemberV1 = 0xd2;
constexpr std::uint8_t kFormerMemberV1 = 0xd3;

// kMessage row flags.
constexpr std::uint8_t kRowOutgoing = 1;
constexpr std::uint8_t kRowGroupConv = 2;
// The conversation is {user: sender} (every incoming 1:1 row): its id is
// not repeated.
constexpr std::uint8_t kRowConvIsSender = 4;
constexpr std::uint8_t kRowFlagsKnown = 7;

using namespace codec_io;  // NOLINT: the codec's own building blocks

}  // namespace

std::string U64Key(std::uint64_t v) {
  std::string key;
  key.reserve(8);
  PutBigEndian(key, v);
  return key;
}

std::optional<std::uint64_t> ParseU64Key(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  return GetBigEndian(key);
}

std::string U64PairKey(std::uint64_t a, std::uint64_t b) {
  std::string key;
  key.reserve(16);
  PutBigEndian(key, a);
  PutBigEndian(key, b);
  return key;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> ParseU64PairKey(std::string_view key) {
  if (key.size() != 16) return std::nullopt;
  return std::pair{GetBigEndian(key.substr(0, 8)), GetBigEndian(key.substr(8))};
}

KeyBuf<8> IdKey(std::uint64_t v) {
  KeyBuf<8> key;
  PutBigEndianAt(key.bytes.data(), v);
  return key;
}

KeyBuf<16> Pair64Key(std::uint64_t a, std::uint64_t b) {
  KeyBuf<16> key;
  PutBigEndianAt(key.bytes.data(), a);
  PutBigEndianAt(key.bytes.data() + 8, b);
  return key;
}

KeyBuf<17> ConvKey(UserId owner, Conversation conv) {
  KeyBuf<17> key;
  PutBigEndianAt(key.bytes.data(), owner);
  key.bytes[8] = static_cast<char>(conv.kind);
  PutBigEndianAt(key.bytes.data() + 9, conv.id);
  return key;
}

KeyBuf<25> ConvIndexKey(UserId owner, Conversation conv, MsgId msg_id) {
  KeyBuf<25> key;
  PutBigEndianAt(key.bytes.data(), owner);
  key.bytes[8] = static_cast<char>(conv.kind);
  PutBigEndianAt(key.bytes.data() + 9, conv.id);
  PutBigEndianAt(key.bytes.data() + 17, msg_id);
  return key;
}

std::string IdemKey(UserId sender, std::string_view client_msg_id) {
  std::string key;
  key.reserve(8 + client_msg_id.size());
  PutBigEndian(key, sender);
  key.append(client_msg_id);
  return key;
}

std::string PrefixUpperBound(std::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(bound.back());
    if (last != 0xff) {
      ++last;
      return bound;
    }
    bound.pop_back();
  }
  return bound;
}

std::string EncodeUser(const User& user) {
  return Writer(kUserV1)
      .Str(user.phone)
      .Signed(user.created_ms)
      .Str(user.name)
      .Str(user.status_text)
      .Str(user.avatar_media_id)
      .Str(user.last_seen_visibility)
      .Signed(user.last_seen_ms)
      .Take();
}

Result<User> DecodeUser(UserId id, std::string_view value) {
  Reader r(value, kUserV1);
  User user;
  user.id = id;
  user.phone = r.Str();
  user.created_ms = r.Signed();
  user.name = r.Str();
  user.status_text = r.Str();
  user.avatar_media_id = r.Str();
  user.last_seen_visibility = r.Str();
  user.last_seen_ms = r.Signed();
  if (!r.Done()) return Corrupt("user");
  return user;
}

std::string EncodeDevice(const Device& device) {
  return Writer(kDeviceV1)
      .Str(device.name)
      .Str(device.platform)
      .Signed(device.created_ms)
      .Signed(device.last_active_ms)
      .Varint(device.token_gen)
      .Take();
}

Result<Device> DecodeDevice(UserId user, DeviceId id, std::string_view value) {
  Reader r(value, kDeviceV1);
  Device device;
  device.user_id = user;
  device.id = id;
  device.name = r.Str();
  device.platform = r.Str();
  device.created_ms = r.Signed();
  device.last_active_ms = r.Signed();
  device.token_gen = r.U32();
  if (!r.Done()) return Corrupt("device");
  return device;
}

std::string EncodeRefreshToken(const RefreshToken& token) {
  return Writer(kRefreshTokenV1)
      .Varint(token.user_id)
      .Varint(token.device_id)
      .Varint(token.token_gen)
      .Signed(token.expires_ms)
      .Bool(token.used)
      .Take();
}

Result<RefreshToken> DecodeRefreshToken(std::string_view hash, std::string_view value) {
  Reader r(value, kRefreshTokenV1);
  RefreshToken token;
  token.hash = std::string(hash);
  token.user_id = r.Varint();
  token.device_id = r.Varint();
  token.token_gen = r.U32();
  token.expires_ms = r.Signed();
  token.used = r.Bool();
  if (!r.Done()) return Corrupt("refresh token");
  return token;
}

std::string EncodeOtp(const OtpCode& code) {
  return Writer(kOtpV1).Str(code.code_hash).Signed(code.expires_ms).Varint(code.attempts).Take();
}

Result<OtpCode> DecodeOtp(std::string_view phone, std::string_view value) {
  Reader r(value, kOtpV1);
  OtpCode code;
  code.phone = std::string(phone);
  code.code_hash = r.Str();
  code.expires_ms = r.Signed();
  code.attempts = r.U32();
  if (!r.Done()) return Corrupt("one-time code");
  return code;
}

Result<UserId> DecodeUserIdValue(std::string_view value) {
  auto id = ParseU64Key(value);
  if (!id) return Corrupt("index");
  return *id;
}

// ---- Messaging -------------------------------------------------------------------

namespace {

std::uint8_t RowTag(EventType type) {
  switch (type) {
    case EventType::kMessage:
      return kRowMessageV1;
    case EventType::kReceipt:
      return kRowReceiptV1;
    case EventType::kReadSync:
      return kRowReadSyncV1;
    case EventType::kGroup:
      return kRowGroupV1;
    case EventType::kKeysChanged:
      return kRowKeysChangedV1;
    case EventType::kDevice:
      return kRowDeviceV1;
  }
  return 0;
}

std::optional<EventType> RowType(std::string_view value) {
  if (value.empty()) return std::nullopt;
  switch (static_cast<std::uint8_t>(value[0])) {
    case kRowMessageV1:
      return EventType::kMessage;
    case kRowReceiptV1:
      return EventType::kReceipt;
    case kRowReadSyncV1:
      return EventType::kReadSync;
    case kRowGroupV1:
      return EventType::kGroup;
    case kRowKeysChangedV1:
      return EventType::kKeysChanged;
    case kRowDeviceV1:
      return EventType::kDevice;
    default:
      return std::nullopt;
  }
}

// The kMessage row's fields after its ts.
MessageRow ReadMessageRowTail(Reader& r) {
  MessageRow row;
  row.msg_id = r.Fixed64();
  const std::uint8_t flags = r.Byte();
  if ((flags & ~kRowFlagsKnown) != 0) r.Fail();
  row.outgoing = (flags & kRowOutgoing) != 0;
  row.sender = r.Fixed64();
  row.conv.kind =
      (flags & kRowGroupConv) != 0 ? Conversation::Kind::kGroup : Conversation::Kind::kUser;
  row.conv.id = (flags & kRowConvIsSender) != 0 ? row.sender : r.Fixed64();
  return row;
}

}  // namespace

void EncodeMessageRow(const MessageRow& row, std::string& out) {
  std::uint8_t flags = row.outgoing ? kRowOutgoing : 0;
  if (row.conv.kind == Conversation::Kind::kGroup) flags |= kRowGroupConv;
  const bool conv_is_sender =
      row.conv.kind == Conversation::Kind::kUser && row.conv.id == row.sender;
  if (conv_is_sender) flags |= kRowConvIsSender;
  Writer w(kRowMessageV1, out);
  w.Signed(row.ts_ms).Fixed64(row.msg_id).Byte(flags).Fixed64(row.sender);
  if (!conv_is_sender) w.Fixed64(row.conv.id);
}

void EncodeEventRow(const MailboxEvent& e, std::string& out) {
  Writer w(RowTag(e.type), out);
  w.Signed(e.ts_ms);
  switch (e.type) {
    case EventType::kMessage:
      // Not reached: callers encode messages with EncodeMessageRow.
      break;
    case EventType::kReceipt: {
      w.Byte(static_cast<std::uint8_t>(e.conv.kind))
          .Fixed64(e.conv.id)
          .Fixed64(e.by)
          .Byte(static_cast<std::uint8_t>(e.status))
          .Varint(e.msg_ids.size());
      // Ids of one receipt are close together: deltas take 2-4 bytes, not 8.
      MsgId prev = 0;
      for (std::size_t i = 0; i < e.msg_ids.size(); ++i) {
        if (i == 0) {
          w.Fixed64(e.msg_ids[0]);
        } else {
          w.Signed(static_cast<std::int64_t>(e.msg_ids[i] - prev));
        }
        prev = e.msg_ids[i];
      }
      break;
    }
    case EventType::kReadSync:
      w.Byte(static_cast<std::uint8_t>(e.conv.kind))
          .Fixed64(e.conv.id)
          .Fixed64(e.msg_ids.empty() ? 0 : e.msg_ids.front());
      break;
    case EventType::kGroup:
    case EventType::kKeysChanged:
    case EventType::kDevice:
      w.Str(e.payload);
      break;
  }
}

Result<RowHeader> DecodeRowHeader(std::string_view value) {
  auto type = RowType(value);
  if (!type) return Corrupt("mailbox");
  Reader r(value, static_cast<std::uint8_t>(value[0]));
  RowHeader header;
  header.type = *type;
  const std::int64_t ts = r.Signed();
  if (*type == EventType::kMessage) {
    header.message = ReadMessageRowTail(r);
    if (!r.Done()) return Corrupt("mailbox");
  } else if (!r.ok()) {
    return Corrupt("mailbox");
  }
  header.message.ts_ms = ts;
  return header;
}

Result<MailboxEvent> DecodeMailboxEvent(Seq seq, std::string_view value) {
  auto type = RowType(value);
  if (!type) return Corrupt("mailbox");
  Reader r(value, static_cast<std::uint8_t>(value[0]));
  MailboxEvent e;
  e.seq = seq;
  e.type = *type;
  e.ts_ms = r.Signed();
  switch (e.type) {
    case EventType::kMessage: {
      auto row = ReadMessageRowTail(r);
      e.msg_id = row.msg_id;
      e.outgoing = row.outgoing;
      e.conv = row.conv;
      break;
    }
    case EventType::kReceipt: {
      e.conv = r.Conv();
      e.by = r.Fixed64();
      const auto status = r.Byte();
      if (status != static_cast<std::uint8_t>(ReceiptStatus::kDelivered) &&
          status != static_cast<std::uint8_t>(ReceiptStatus::kRead)) {
        return Corrupt("mailbox");
      }
      e.status = static_cast<ReceiptStatus>(status);
      const std::uint64_t n = r.Varint();
      // Each id takes at least one byte: a larger count is garbage, not a reason to allocate.
      if (!r.ok() || n > value.size()) return Corrupt("mailbox");
      e.msg_ids.reserve(n);
      MsgId prev = 0;
      for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
        prev = i == 0 ? r.Fixed64() : prev + static_cast<std::uint64_t>(r.Signed());
        e.msg_ids.push_back(prev);
      }
      break;
    }
    case EventType::kReadSync:
      e.conv = r.Conv();
      e.msg_ids.push_back(r.Fixed64());
      break;
    case EventType::kGroup:
    case EventType::kKeysChanged:
    case EventType::kDevice:
      e.payload = r.Str();
      break;
  }
  if (!r.Done()) return Corrupt("mailbox");
  return e;
}

void EncodeMessage(const Message& m, std::string& out) {
  // Sender and client_msg_id first, so that PeekMessageIdem stops before the body.
  Writer(kMessageV1, out)
      .Fixed64(m.sender)
      .Str(m.client_msg_id)
      .Fixed64(m.sender_device)
      .Byte(static_cast<std::uint8_t>(m.to.kind))
      .Fixed64(m.to.id)
      .Signed(m.ts_ms)
      .Varint(m.recipients)
      .Str(m.kind)
      .Str(m.media_id)
      .Str(m.body);
}

Result<Message> DecodeMessage(MsgId msg_id, std::string_view value) {
  Reader r(value, kMessageV1);
  Message m;
  m.msg_id = msg_id;
  m.sender = r.Fixed64();
  m.client_msg_id = r.Str();
  m.sender_device = r.Fixed64();
  m.to = r.Conv();
  m.ts_ms = r.Signed();
  m.recipients = r.U32();
  m.kind = r.Str();
  m.media_id = r.Str();
  m.body = r.Str();
  if (!r.Done()) return Corrupt("message");
  return m;
}

Result<MessageIdemPart> PeekMessageIdem(std::string_view value) {
  Reader r(value, kMessageV1);
  MessageIdemPart part;
  part.sender = r.Fixed64();
  part.client_msg_id = r.StrView();
  if (!r.ok()) return Corrupt("message");
  return part;
}

std::string EncodeIdem(const IdemEntry& entry) {
  return Writer(kIdemV1).Fixed64(entry.msg_id).Varint(entry.seq).Signed(entry.ts_ms).Take();
}

Result<IdemEntry> DecodeIdem(std::string_view value) {
  Reader r(value, kIdemV1);
  IdemEntry entry;
  entry.msg_id = r.Fixed64();
  entry.seq = r.Varint();
  entry.ts_ms = r.Signed();
  if (!r.Done()) return Corrupt("idempotency");
  return entry;
}

void EncodeConvIndex(const ConvIndexEntry& entry, std::string& out) {
  Writer(kConvIndexV1, out).Fixed64(entry.sender).Varint(entry.seq);
}

Result<ConvIndexEntry> DecodeConvIndex(std::string_view value) {
  Reader r(value, kConvIndexV1);
  ConvIndexEntry entry;
  entry.sender = r.Fixed64();
  entry.seq = r.Varint();
  if (!r.Done()) return Corrupt("conversation index");
  return entry;
}

void EncodeReceiptTimes(const ReceiptTimes& times, std::string& out) {
  Writer(kReceiptTimesV1, out).Signed(times.delivered_ts).Signed(times.read_ts);
}

Result<ReceiptTimes> DecodeReceiptTimes(std::string_view value) {
  Reader r(value, kReceiptTimesV1);
  ReceiptTimes times;
  times.delivered_ts = r.Signed();
  times.read_ts = r.Signed();
  if (!r.Done()) return Corrupt("receipt");
  return times;
}

std::string EncodeUserState(const UserState& state) {
  return Writer(kUserStateV1).Varint(state.delivered_seq).Varint(state.purged_seq).Take();
}

Result<UserState> DecodeUserState(std::string_view value) {
  Reader r(value, kUserStateV1);
  UserState state;
  state.delivered_seq = r.Varint();
  state.purged_seq = r.Varint();
  if (!r.Done()) return Corrupt("user state");
  return state;
}

std::string EncodeSeqValue(Seq seq) { return Writer(kCursorV1).Varint(seq).Take(); }

Result<Seq> DecodeSeqValue(std::string_view value) {
  Reader r(value, kCursorV1);
  const Seq seq = r.Varint();
  if (!r.Done()) return Corrupt("cursor");
  return seq;
}

std::string EncodeReadMark(MsgId msg_id) { return Writer(kReadMarkV1).Fixed64(msg_id).Take(); }

Result<MsgId> DecodeReadMark(std::string_view value) {
  Reader r(value, kReadMarkV1);
  const MsgId msg_id = r.Fixed64();
  if (!r.Done()) return Corrupt("read mark");
  return msg_id;
}

// ---- Groups ----------------------------------------------------------------------

std::string EncodeGroupRow(const GroupRow& row) {
  return Writer(kGroupV1)
      .Str(row.group.name)
      .Str(row.group.avatar_media_id)
      .Fixed64(row.group.created_by)
      .Signed(row.group.created_ms)
      .Varint(row.next_join_order)
      .Take();
}

Result<GroupRow> DecodeGroupRow(GroupId id, std::string_view value) {
  Reader r(value, kGroupV1);
  GroupRow row;
  row.group.id = id;
  row.group.name = r.Str();
  row.group.avatar_media_id = r.Str();
  row.group.created_by = r.Fixed64();
  row.group.created_ms = r.Signed();
  row.next_join_order = r.Varint();
  if (!r.Done()) return Corrupt("group");
  return row;
}

std::string EncodeGroupMember(const GroupMember& member) {
  return Writer(kGroupMemberV1)
      .Byte(static_cast<std::uint8_t>(member.role))
      .Signed(member.joined_ms)
      .Varint(member.join_order)
      .Take();
}

Result<GroupMember> DecodeGroupMember(UserId user, std::string_view value) {
  Reader r(value, kGroupMemberV1);
  GroupMember member{.user = user};
  const auto role = r.Byte();
  if (role != static_cast<std::uint8_t>(GroupRole::kMember) &&
      role != static_cast<std::uint8_t>(GroupRole::kAdmin)) {
    r.Fail();
  }
  member.role = static_cast<GroupRole>(role);
  member.joined_ms = r.Signed();
  member.join_order = r.Varint();
  if (!r.Done()) return Corrupt("group member");
  return member;
}

std::string EncodeFormerMember(std::int64_t left_ms) {
  return Writer(kFormerMemberV1).Signed(left_ms).Take();
}

Result<std::int64_t> DecodeFormerMember(std::string_view value) {
  Reader r(value, kFormerMemberV1);
  const std::int64_t left_ms = r.Signed();
  if (!r.Done()) return Corrupt("former group member");
  return left_ms;
}

}  // namespace parley::store::rocks
