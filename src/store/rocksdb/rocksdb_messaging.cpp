// Mailboxes, messages, cursors and receipts.
//
// A send writes the body once (messages), one small row per mailbox (a
// kMessage row names the body, its sender and the conversation, so that
// receipts never fetch bodies), one conversation-index row per mailbox (for
// history, read receipts and "is this a message of that conversation") and
// the idempotency key. Seqs come from MailboxHeads, never from a read of the
// mailbox. A group send fans out to the members the writer sees at that
// moment (rocksdb_groups.cpp).
#include <algorithm>
#include <limits>
#include <unordered_map>
#include <utility>

#include "store/rocksdb/rocksdb_store_impl.hpp"

namespace parley::store::rocks {
namespace {

constexpr Seq kMaxSeq = std::numeric_limits<Seq>::max();

// Delivered or read receipts of one job, one event per (sender, conversation)
// in order of first appearance.
class ReceiptGroups {
 public:
  struct Group {
    UserId sender = 0;
    Conversation conv;  // as the sender sees it
    std::vector<MsgId> msg_ids;
  };

  void Add(UserId sender, Conversation conv, MsgId msg_id) {
    groups_[Find(sender, conv)].msg_ids.push_back(msg_id);
  }
  const std::vector<Group>& groups() const { return groups_; }

 private:
  // Nearly always a few senders: a linear search, and a map only for a
  // backlog from many.
  static constexpr std::size_t kLinear = 16;
  using Key = std::pair<UserId, std::uint64_t>;
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<std::uint64_t>()(k.first * 0x9e3779b97f4a7c15ull ^ k.second);
    }
  };
  // The kind folded into the top bit: user and group ids are Snowflakes, far below 2^63.
  static Key KeyOf(UserId sender, Conversation conv) {
    return {sender, conv.id ^ (conv.kind == Conversation::Kind::kGroup ? 1ull << 63 : 0)};
  }

  std::size_t Find(UserId sender, Conversation conv) {
    const Key key = KeyOf(sender, conv);
    if (!groups_.empty() && KeyOf(groups_.back().sender, groups_.back().conv) == key) {
      return groups_.size() - 1;
    }
    if (index_.empty()) {
      for (std::size_t i = 0; i < groups_.size(); ++i) {
        if (KeyOf(groups_[i].sender, groups_[i].conv) == key) return i;
      }
    } else if (auto it = index_.find(key); it != index_.end()) {
      return it->second;
    }
    groups_.push_back({.sender = sender, .conv = conv});
    if (groups_.size() > kLinear) {
      if (index_.empty()) {
        for (std::size_t i = 0; i < groups_.size(); ++i) {
          index_.emplace(KeyOf(groups_[i].sender, groups_[i].conv), i);
        }
      } else {
        index_.emplace(key, groups_.size() - 1);
      }
    }
    return groups_.size() - 1;
  }

  std::vector<Group> groups_;
  std::unordered_map<Key, std::size_t, KeyHash> index_;
};

// The conversation a receipt names, from the message sender's side: the
// reader for a 1:1 chat, the group itself for a group.
Conversation SenderView(Conversation owner_view, UserId reader) {
  if (owner_view.kind == Conversation::Kind::kGroup) return owner_view;
  return Conversation{Conversation::Kind::kUser, reader};
}

template <class T>
std::unexpected<Error> Failed(const Result<T>& r) {
  return std::unexpected(r.error());
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<Seq> RocksStore::HeadSeq(UserId user) {
  ReadTimer timer(observer_, "head_seq");
  return heads_.Committed(user);
}

Result<std::vector<Seq>> RocksStore::HeadSeqs(std::span<const UserId> users) {
  ReadTimer timer(observer_, "head_seqs");
  std::vector<Seq> out;
  out.reserve(users.size());
  for (UserId user : users) {
    auto head = heads_.Committed(user);
    if (!head) return std::unexpected(head.error());
    out.push_back(*head);
  }
  return out;
}

Result<Seq> RocksStore::LoadHead(UserId user) {
  const std::string lower = U64Key(user);
  const rocksdb::Slice lower_slice(lower);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kMailbox)));
  it->SeekForPrev(MailboxKey(user, kMaxSeq).view());
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "head_seq"));
  if (it->Valid() && it->key().starts_with(lower)) {
    auto key = ParseU64PairKey(it->key().ToStringView());
    if (!key) return Fail(Errc::kCorruption, "malformed mailbox key");
    return key->second;
  }
  // Empty: never used, or emptied by retention, which left the last seq behind.
  auto state = ReadValue(rocksdb::ReadOptions(), Cf::kUserState, IdKey(user));
  if (!state) return std::unexpected(state.error());
  if (!*state) return Seq{0};
  auto decoded = DecodeUserState(**state);
  if (!decoded) return std::unexpected(decoded.error());
  return decoded->purged_seq;
}

Result<std::vector<MailboxEvent>> RocksStore::ReadMailbox(UserId user, Seq after, std::size_t max) {
  ReadTimer timer(observer_, "read_mailbox");
  std::vector<MailboxEvent> events;
  if (max == 0 || after == kMaxSeq) return events;
  const std::string upper = PrefixUpperBound(U64Key(user));
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kMailbox)));
  events.reserve(std::min<std::size_t>(max, 256));
  std::vector<MsgId> ids;
  for (it->Seek(MailboxKey(user, after + 1).view()); it->Valid() && events.size() < max;
       it->Next()) {
    auto key = ParseU64PairKey(it->key().ToStringView());
    if (!key || key->first != user) return Fail(Errc::kCorruption, "malformed mailbox key");
    auto event = DecodeMailboxEvent(key->second, it->value().ToStringView());
    if (!event) return std::unexpected(event.error());
    if (event->type == EventType::kMessage) ids.push_back(event->msg_id);
    events.push_back(std::move(*event));
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "read_mailbox"));
  if (ids.empty()) return events;

  auto bodies = LoadMessages(ids, /*cache_loaded=*/true);
  if (!bodies) return Failed(bodies);
  std::size_t i = 0;
  for (auto& e : events) {
    if (e.type == EventType::kMessage) e.message = std::move((*bodies)[i++]);
  }
  return events;
}

Result<std::vector<std::shared_ptr<const Message>>> RocksStore::LoadMessages(
    std::span<const MsgId> ids, bool cache_loaded) {
  std::vector<std::shared_ptr<const Message>> out(ids.size());
  std::vector<MsgId> missing;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    out[i] = messages_.Get(ids[i]);
    if (!out[i]) missing.push_back(ids[i]);
  }
  if (missing.empty()) return out;

  // Sorted for the lookup below. A mailbox holds one row per message, so
  // duplicates are not expected, but they would cost nothing.
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  std::vector<KeyBuf<8>> keys;
  keys.reserve(missing.size());
  for (MsgId id : missing) keys.push_back(IdKey(id));
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (const auto& k : keys) slices.emplace_back(k.bytes.data(), k.bytes.size());
  std::vector<std::shared_ptr<const Message>> loaded(missing.size());
  auto s = MultiGet(Cf::kMessages, std::span<const rocksdb::Slice>(slices),
                    [&](std::size_t i, std::string_view value) -> Status {
                      auto m = DecodeMessage(missing[i], value);
                      if (!m) return std::unexpected(m.error());
                      loaded[i] = std::make_shared<const Message>(std::move(*m));
                      if (cache_loaded) messages_.Put(loaded[i]);
                      return Ok();
                    });
  if (!s) return std::unexpected(s.error());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (out[i]) continue;
    auto at = std::lower_bound(missing.begin(), missing.end(), ids[i]) - missing.begin();
    out[i] = loaded[static_cast<std::size_t>(at)];
  }
  return out;
}

Result<Seq> RocksStore::GetCursor(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "get_cursor");
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kCursors, CursorKey(user, device));
  if (!value) return std::unexpected(value.error());
  if (!*value) return Seq{0};
  return DecodeSeqValue(**value);
}

Result<std::optional<HelloState>> RocksStore::ReadHello(UserId user, DeviceId device) {
  // Local reads: three are as cheap as one.
  auto found = GetDevice(user, device);
  if (!found) return std::unexpected(found.error());
  if (!*found) return std::optional<HelloState>();
  auto head = HeadSeq(user);
  if (!head) return std::unexpected(head.error());
  auto cursor = GetCursor(user, device);
  if (!cursor) return std::unexpected(cursor.error());
  return std::optional<HelloState>(HelloState{.head = *head, .cursor = *cursor});
}

Result<std::optional<Message>> RocksStore::GetMessage(MsgId msg_id) {
  ReadTimer timer(observer_, "get_message");
  if (auto cached = messages_.Get(msg_id)) return std::optional<Message>(*cached);
  auto value = ReadValue(rocksdb::ReadOptions(), Cf::kMessages, IdKey(msg_id));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<Message>();
  auto m = DecodeMessage(msg_id, **value);
  if (!m) return std::unexpected(m.error());
  return std::optional<Message>(std::move(*m));
}

Result<std::vector<std::shared_ptr<const Message>>> RocksStore::History(UserId user,
                                                                        Conversation conv,
                                                                        MsgId before,
                                                                        std::size_t limit) {
  ReadTimer timer(observer_, "history");
  std::vector<std::shared_ptr<const Message>> page;
  if (limit == 0 || before == 1) return page;
  const auto prefix = ConvKey(user, conv);
  const rocksdb::Slice lower(prefix.bytes.data(), prefix.bytes.size());
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kConvIndex)));
  std::vector<MsgId> ids;
  ids.reserve(std::min<std::size_t>(limit, 128));
  const MsgId last = before == 0 ? std::numeric_limits<MsgId>::max() : before - 1;
  for (it->SeekForPrev(ConvIndexKey(user, conv, last).view());
       it->Valid() && ids.size() < limit && it->key().starts_with(prefix.view()); it->Prev()) {
    auto key = it->key().ToStringView();
    if (key.size() != 25) return Fail(Errc::kCorruption, "malformed conversation index key");
    auto id = ParseU64Key(key.substr(17));
    ids.push_back(*id);
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "history"));
  if (ids.empty()) return page;
  // Paging back through history is not what the cache is for.
  auto bodies = LoadMessages(ids, /*cache_loaded=*/false);
  if (!bodies) return Failed(bodies);
  page.reserve(ids.size());
  for (auto& m : *bodies) {
    if (m) page.push_back(std::move(m));
  }
  return page;
}

Result<MessageReceipts> RocksStore::GetReceipts(MsgId msg_id) {
  ReadTimer timer(observer_, "get_receipts");
  const auto prefix = IdKey(msg_id);
  const std::string upper = PrefixUpperBound(prefix.view());
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(ro, cf(Cf::kReceipts)));
  MessageReceipts receipts;
  for (it->Seek(prefix.view()); it->Valid() && it->key().starts_with(prefix.view()); it->Next()) {
    auto key = ParseU64PairKey(it->key().ToStringView());
    if (!key) return Fail(Errc::kCorruption, "malformed receipt key");
    auto times = DecodeReceiptTimes(it->value().ToStringView());
    if (!times) return std::unexpected(times.error());
    if (times->delivered_ts > 0) receipts.delivered.push_back({key->second, times->delivered_ts});
    if (times->read_ts > 0) receipts.read.push_back({key->second, times->read_ts});
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "get_receipts"));
  auto by_time = [](const ReceiptEntry& a, const ReceiptEntry& b) {
    return std::pair(a.ts_ms, a.user) < std::pair(b.ts_ms, b.user);
  };
  std::sort(receipts.delivered.begin(), receipts.delivered.end(), by_time);
  std::sort(receipts.read.begin(), receipts.read.end(), by_time);
  return receipts;
}

// ---- Writes --------------------------------------------------------------------

void RocksStore::AppendMessage(Message message, std::vector<UserId> recipients,
                               Callback<SendResult> done) {
  // Mutable until published: a group send's job sets its recipient count.
  // The job and this callback both run on the writer thread, in that order.
  auto body = std::make_shared<Message>(std::move(message));
  // Cached once committed: the recipients' sessions are about to read it.
  Callback<SendResult> cache_then_done = [this, body,
                                          done = std::move(done)](Result<SendResult> r) {
    if (r && !r->duplicate) messages_.Put(body);
    if (done) done(std::move(r));
  };
  Submit<SendResult>("append_message", std::move(cache_then_done),
                     [this, body, recipients = std::move(recipients)](WriteTxn& txn) {
                       return ApplyAppendMessage(txn, *body, recipients);
                     });
}

void RocksStore::Ack(UserId user, DeviceId device, Seq up_to, std::int64_t now_ms,
                     Callback<AckResult> done) {
  Submit<AckResult>("ack", std::move(done), [this, user, device, up_to, now_ms](WriteTxn& txn) {
    return ApplyAck(txn, user, device, up_to, now_ms);
  });
}

void RocksStore::MarkRead(UserId user, Conversation conv, MsgId up_to_msg_id, std::int64_t now_ms,
                          Callback<std::vector<Appended>> done) {
  Submit<std::vector<Appended>>("mark_read", std::move(done),
                                [this, user, conv, up_to_msg_id, now_ms](WriteTxn& txn) {
                                  return ApplyMarkRead(txn, user, conv, up_to_msg_id, now_ms);
                                });
}

void RocksStore::AppendEvents(std::vector<UserId> users, EventType type, std::string payload,
                              std::int64_t ts_ms, Callback<std::vector<Appended>> done) {
  Submit<std::vector<Appended>>(
      "append_events", std::move(done),
      [this, users = std::move(users), type, payload = std::move(payload),
       ts_ms](WriteTxn& txn) -> Result<std::vector<Appended>> {
        if (type != EventType::kGroup && type != EventType::kKeysChanged &&
            type != EventType::kDevice) {
          return Fail(Errc::kInvalid, "append_events takes group, keys_changed or device events");
        }
        MailboxEvent event{.type = type, .ts_ms = ts_ms, .payload = payload};
        std::vector<Appended> appended;
        appended.reserve(users.size());
        for (UserId user : users) {
          if (auto seq = AppendEventRow(txn, user, event, appended); !seq) return Failed(seq);
        }
        return appended;
      });
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<Seq> RocksStore::AppendMessageRow(WriteTxn& txn, UserId owner, const MessageRow& row,
                                         std::vector<Appended>& appended) {
  auto seq = heads_.Allocate(owner);
  if (!seq) return seq;
  EncodeMessageRow(row, scratch_);
  if (auto s = txn.Put(cf(Cf::kMailbox), MailboxKey(owner, *seq), scratch_); !s) {
    return std::unexpected(s.error());
  }
  EncodeConvIndex({.sender = row.sender, .seq = *seq}, scratch_);
  if (auto s = txn.Put(cf(Cf::kConvIndex), ConvIndexKey(owner, row.conv, row.msg_id), scratch_);
      !s) {
    return std::unexpected(s.error());
  }
  if (!row.outgoing) {
    NoteIncoming(owner, *seq);
    incoming_.Note(owner, *seq - 1,
                   {.seq = *seq, .msg_id = row.msg_id, .sender = row.sender, .conv = row.conv});
  }
  appended.push_back({owner, *seq});
  return seq;
}

void RocksStore::NoteIncoming(UserId user, Seq seq) {
  auto it = incoming_marks_.find(user);
  if (it != incoming_marks_.end()) {
    it->second = std::max(it->second, seq);
    return;
  }
  if (incoming_marks_.size() >= kMaxIncomingMarks) incoming_marks_.clear();
  // Every row below `seq` is older, so the mark covers them too.
  incoming_marks_.emplace(user, seq);
}

Seq RocksStore::IncomingMark(UserId user, Seq head) {
  auto it = incoming_marks_.find(user);
  if (it != incoming_marks_.end()) return it->second;
  // Unknown since start: anything up to the head may be incoming.
  NoteIncoming(user, head);
  return head;
}

Result<Seq> RocksStore::AppendEventRow(WriteTxn& txn, UserId owner, const MailboxEvent& event,
                                       std::vector<Appended>& appended) {
  auto seq = heads_.Allocate(owner);
  if (!seq) return seq;
  EncodeEventRow(event, scratch_);
  if (auto s = txn.Put(cf(Cf::kMailbox), MailboxKey(owner, *seq), scratch_); !s) {
    return std::unexpected(s.error());
  }
  appended.push_back({owner, *seq});
  return seq;
}

Result<ReceiptTimes> RocksStore::TxnReceipt(WriteTxn& txn, MsgId msg_id, UserId user) {
  auto value = txn.Get(cf(Cf::kReceipts), ReceiptKey(msg_id, user));
  if (!value) return std::unexpected(value.error());
  if (!*value) return ReceiptTimes{};
  return DecodeReceiptTimes(**value);
}

Result<UserState> RocksStore::TxnUserState(WriteTxn& txn, UserId user) {
  auto value = txn.Get(cf(Cf::kUserState), IdKey(user));
  if (!value) return std::unexpected(value.error());
  if (!*value) return UserState{};
  return DecodeUserState(**value);
}

Result<SendResult> RocksStore::ApplyAppendMessage(WriteTxn& txn, Message& m,
                                                  std::span<const UserId> recipients) {
  const bool group = m.to.kind == Conversation::Kind::kGroup;
  // Membership before the idempotency key: an outsider must not learn even
  // whether a client_msg_id was used.
  std::vector<UserId> members;
  if (group) {
    auto g = TxnGroupForSend(txn, m.to.id, m.sender);
    if (!g) return Failed(g);
    members.reserve((*g)->members.size());
    for (const auto& member : (*g)->members) members.push_back(member.user);
    m.recipients = static_cast<std::uint32_t>(members.size() - 1);  // the sender is one
    recipients = members;
  }

  // An empty client_msg_id names no send in particular, so it is never a
  // duplicate (core requires one; this only keeps "" from colliding).
  std::string idem_key;
  if (!m.client_msg_id.empty()) {
    idem_key = IdemKey(m.sender, m.client_msg_id);
    auto first = txn.Get(cf(Cf::kIdem), idem_key);
    if (!first) return std::unexpected(first.error());
    if (*first) {
      auto entry = DecodeIdem(**first);
      if (!entry) return std::unexpected(entry.error());
      return SendResult{
          .duplicate = true, .msg_id = entry->msg_id, .seq = entry->seq, .ts_ms = entry->ts_ms};
    }
  }

  EncodeMessage(m, scratch_);
  if (auto s = txn.Put(cf(Cf::kMessages), IdKey(m.msg_id), scratch_); !s) {
    return std::unexpected(s.error());
  }
  SendResult result{.msg_id = m.msg_id, .ts_ms = m.ts_ms};
  result.appended.reserve(recipients.size() + 1);
  MessageRow row{.msg_id = m.msg_id,
                 .outgoing = false,
                 .sender = m.sender,
                 .conv = group ? m.to : Conversation{Conversation::Kind::kUser, m.sender},
                 .ts_ms = m.ts_ms};
  for (UserId r : recipients) {
    if (r == m.sender) continue;
    if (auto seq = AppendMessageRow(txn, r, row, result.appended); !seq) return Failed(seq);
    // The access check on download is then one point lookup.
    if (!m.media_id.empty()) {
      if (auto s = GrantMedia(txn, m.media_id, r, m.ts_ms); !s) return std::unexpected(s.error());
    }
  }
  row.outgoing = true;
  row.conv = m.to;
  // The peers index: who shares a 1:1 conversation, for keys_changed.
  if (!group) {
    if (auto s = NotePeers(txn, m.sender, m.to.id); !s) return Failed(s);
  }
  auto seq = AppendMessageRow(txn, m.sender, row, result.appended);
  if (!seq) return Failed(seq);
  result.seq = *seq;

  if (!idem_key.empty()) {
    auto s = txn.Put(cf(Cf::kIdem), idem_key,
                     EncodeIdem({.msg_id = m.msg_id, .seq = *seq, .ts_ms = m.ts_ms}));
    if (!s) return std::unexpected(s.error());
  }
  return result;
}

Result<AckResult> RocksStore::ApplyAck(WriteTxn& txn, UserId user, DeviceId device, Seq up_to,
                                       std::int64_t now_ms) {
  auto head = heads_.Current(user);
  if (!head) return Failed(head);
  if (up_to > *head) return Fail(Errc::kInvalid, "ack beyond the newest event of the mailbox");
  // A removed device's late ack must not bring its cursor back.
  auto device_row = txn.Get(cf(Cf::kDevices), Pair64Key(user, device));
  if (!device_row) return Failed(device_row);
  if (!*device_row) return Fail(Errc::kNotFound, "no such device");

  const auto cursor_key = CursorKey(user, device);
  auto cursor_value = txn.Get(cf(Cf::kCursors), cursor_key);
  if (!cursor_value) return Failed(cursor_value);
  Seq cursor = 0;
  if (*cursor_value) {
    auto decoded = DecodeSeqValue(**cursor_value);
    if (!decoded) return Failed(decoded);
    cursor = *decoded;
  }
  AckResult result{.cursor = std::max(cursor, up_to)};
  if (result.cursor != cursor) {
    if (auto s = txn.Put(cf(Cf::kCursors), cursor_key, EncodeSeqValue(result.cursor)); !s) {
      return std::unexpected(s.error());
    }
  }

  // Delivered receipts go out once per message, whichever device acks first:
  // the user's watermark says how far that has happened.
  auto state = TxnUserState(txn, user);
  if (!state) return Failed(state);
  if (up_to <= state->delivered_seq) return result;

  // The scan is only needed if an incoming message may lie in the range.
  const bool incoming = IncomingMark(user, *head) > state->delivered_seq;
  // Nothing incoming past the watermark (the sender's acks of its own copies
  // and of receipts): moving it would only spare a later ack's scan those
  // rows, so it stays, and its row is not written, until kLazyWatermark rows
  // lie behind it.
  if (!incoming && up_to - state->delivered_seq < kLazyWatermark) return result;
  if (incoming) {
    if (auto s = WriteDeliveredReceipts(txn, user, state->delivered_seq, up_to, *head, now_ms,
                                        result.appended);
        !s) {
      return Failed(s);
    }
  }
  state->delivered_seq = up_to;
  incoming_.Delivered(user, up_to);
  if (auto s = txn.Put(cf(Cf::kUserState), IdKey(user), EncodeUserState(*state)); !s) {
    return std::unexpected(s.error());
  }
  return result;
}

Status RocksStore::WriteDeliveredReceipts(WriteTxn& txn, UserId user, Seq after, Seq up_to,
                                          Seq head, std::int64_t now_ms,
                                          std::vector<Appended>& appended) {
  std::vector<IncomingIndex::Row> incoming;
  // The writer's index, when it knows the whole range; else the mailbox.
  if (!incoming_.Collect(user, after, up_to, incoming)) {
    ReadTimer timer(observer_, "ack_scan");
    const auto lower = MailboxKey(user, after + 1);
    const auto upper = MailboxKey(user, up_to + 1);  // up_to <= head < kMaxSeq
    const rocksdb::Slice upper_slice(upper.bytes.data(), upper.bytes.size());
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    // Collected first: the batch must not change under its own iterator.
    auto it = txn.NewIterator(cf(Cf::kMailbox), ro);
    for (it->Seek(lower.view()); it->Valid() && it->key().compare(upper_slice) < 0; it->Next()) {
      auto header = DecodeRowHeader(it->value().ToStringView());
      if (!header) return Failed(header);
      if (header->type != EventType::kMessage || header->message.outgoing) continue;
      incoming.push_back({.msg_id = header->message.msg_id,
                          .sender = header->message.sender,
                          .conv = header->message.conv});
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "ack scan"));
    // From here on the index can answer for this user's newer rows.
    incoming_.Track(user, head);
  }

  ReceiptGroups groups;
  for (const auto& m : incoming) {
    auto times = TxnReceipt(txn, m.msg_id, user);
    if (!times) return Failed(times);
    if (times->delivered_ts == 0) {
      times->delivered_ts = now_ms;
      EncodeReceiptTimes(*times, scratch_);
      if (auto s = txn.Put(cf(Cf::kReceipts), ReceiptKey(m.msg_id, user), scratch_); !s) {
        return std::unexpected(s.error());
      }
    }
    groups.Add(m.sender, SenderView(m.conv, user), m.msg_id);
  }
  for (const auto& g : groups.groups()) {
    auto receipt = std::make_shared<MailboxEvent>(MailboxEvent{.type = EventType::kReceipt,
                                                               .ts_ms = now_ms,
                                                               .conv = g.conv,
                                                               .msg_ids = g.msg_ids,
                                                               .by = user});
    auto seq = AppendEventRow(txn, g.sender, *receipt, appended);
    if (!seq) return Failed(seq);
    // Handed to the sender's sessions with the wake (Core::Wake): they send
    // it as it is instead of reading it back from the mailbox.
    receipt->seq = *seq;
    appended.back().event = std::move(receipt);
  }
  return Ok();
}

Result<std::vector<Appended>> RocksStore::ApplyMarkRead(WriteTxn& txn, UserId user,
                                                        Conversation conv, MsgId up_to,
                                                        std::int64_t now_ms) {
  auto target = txn.Get(cf(Cf::kConvIndex), ConvIndexKey(user, conv, up_to));
  if (!target) return Failed(target);
  if (!*target) return Fail(Errc::kNotFound, "no such message in this conversation");

  const auto mark_key = ConvKey(user, conv);
  auto mark_value = txn.Get(cf(Cf::kReadMarks), mark_key);
  if (!mark_value) return Failed(mark_value);
  MsgId mark = 0;
  if (*mark_value) {
    auto decoded = DecodeReadMark(**mark_value);
    if (!decoded) return Failed(decoded);
    mark = *decoded;
  }
  std::vector<Appended> appended;
  if (up_to <= mark) return appended;  // already read that far: a repeat changes nothing

  struct Unread {
    MsgId msg_id;
    UserId sender;
  };
  std::vector<Unread> unread;
  {
    const auto lower = ConvIndexKey(user, conv, mark + 1);
    // Inclusive of up_to; the prefix bound covers up_to = max.
    const std::string upper = up_to == std::numeric_limits<MsgId>::max()
                                  ? PrefixUpperBound(mark_key.view())
                                  : std::string(ConvIndexKey(user, conv, up_to + 1).view());
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    auto it = txn.NewIterator(cf(Cf::kConvIndex), ro);
    for (it->Seek(lower.view()); it->Valid() && it->key().compare(upper_slice) < 0; it->Next()) {
      auto key = it->key().ToStringView();
      auto entry = DecodeConvIndex(it->value().ToStringView());
      if (!entry || key.size() != 25) return Fail(Errc::kCorruption, "bad conversation index row");
      if (entry->sender == user) continue;
      unread.push_back({*ParseU64Key(key.substr(17)), entry->sender});
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "read scan"));
  }

  ReceiptGroups groups;
  const Conversation sender_view = SenderView(conv, user);
  for (const auto& m : unread) {
    auto times = TxnReceipt(txn, m.msg_id, user);
    if (!times) return Failed(times);
    if (times->delivered_ts == 0) times->delivered_ts = now_ms;
    if (times->read_ts == 0) times->read_ts = now_ms;
    EncodeReceiptTimes(*times, scratch_);
    if (auto s = txn.Put(cf(Cf::kReceipts), ReceiptKey(m.msg_id, user), scratch_); !s) {
      return std::unexpected(s.error());
    }
    groups.Add(m.sender, sender_view, m.msg_id);
  }
  MailboxEvent receipt{
      .type = EventType::kReceipt, .ts_ms = now_ms, .by = user, .status = ReceiptStatus::kRead};
  for (const auto& g : groups.groups()) {
    receipt.conv = g.conv;
    receipt.msg_ids = g.msg_ids;
    if (auto seq = AppendEventRow(txn, g.sender, receipt, appended); !seq) return Failed(seq);
  }
  if (auto s = txn.Put(cf(Cf::kReadMarks), mark_key, EncodeReadMark(up_to)); !s) {
    return std::unexpected(s.error());
  }
  MailboxEvent sync{
      .type = EventType::kReadSync, .ts_ms = now_ms, .conv = conv, .msg_ids = {up_to}};
  if (auto seq = AppendEventRow(txn, user, sync, appended); !seq) return Failed(seq);
  return appended;
}

}  // namespace parley::store::rocks
