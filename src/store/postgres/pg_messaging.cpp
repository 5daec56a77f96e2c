// Mailboxes, messages, cursors and receipts.
//
// A send writes the body once (messages), one row per mailbox (a kMessage
// row names the body, its sender and the conversation; the partial index
// mailbox_conv on it serves history, read receipts and "is this a message
// of that conversation"), and the idempotency key. Seqs come from the head
// overlay (pg_writer.hpp), never from a read of the mailbox.
#include <algorithm>
#include <limits>
#include <unordered_map>
#include <utility>

#include "common/ids.hpp"
#include "store/postgres/pg_store_impl.hpp"

namespace parley::store::pg {
namespace {

constexpr Seq kMaxSeq = std::numeric_limits<Seq>::max();

// The conversation a receipt names, from the message sender's side.
Conversation SenderView(Conversation owner_view, UserId reader) {
  if (owner_view.kind == Conversation::Kind::kGroup) return owner_view;
  return Conversation{Conversation::Kind::kUser, reader};
}

// Receipts of one job, one event per (sender, conversation) in order of first appearance.
class ReceiptGroups {
 public:
  struct Group {
    UserId sender = 0;
    Conversation conv;
    std::vector<MsgId> msg_ids;
  };
  void Add(UserId sender, Conversation conv, MsgId msg_id) {
    for (auto& g : groups_) {
      if (g.sender == sender && g.conv == conv) {
        g.msg_ids.push_back(msg_id);
        return;
      }
    }
    groups_.push_back({sender, conv, {msg_id}});
  }
  const std::vector<Group>& groups() const { return groups_; }

 private:
  std::vector<Group> groups_;
};

Conversation ConvOf(std::int16_t kind, std::uint64_t id) {
  return Conversation{static_cast<Conversation::Kind>(kind), id};
}

// Columns 0..10 of a messages row.
#define PG_MESSAGE_COLUMNS                                                                         \
  "m.msg_id, m.sender, m.sender_device, m.conv_kind, m.conv_id, m.client_msg_id, m.kind, m.body, " \
  "m.media_id, m.ts_ms, m.recipients"

Message MessageAt(const Rows& r, int i, int c) {
  return Message{.msg_id = r.U64(i, c),
                 .sender = r.U64(i, c + 1),
                 .sender_device = r.U64(i, c + 2),
                 .to = ConvOf(r.I16(i, c + 3), r.U64(i, c + 4)),
                 .client_msg_id = r.Bytes(i, c + 5),
                 .kind = r.Bytes(i, c + 6),
                 .body = r.Bytes(i, c + 7),
                 .media_id = r.Bytes(i, c + 8),
                 .ts_ms = r.I64(i, c + 9),
                 .recipients = static_cast<std::uint32_t>(r.I64(i, c + 10))};
}

}  // namespace

// ---- Reads ---------------------------------------------------------------------

Result<Seq> PgStore::HeadSeq(UserId user) {
  ReadTimer timer(observer_, "head_seq");
  auto r = reads_->Exec("SELECT head FROM mailbox_head WHERE user_id = $1", Params().U64(user));
  if (!r) return Failed(r);
  return r->empty() ? Seq{0} : r->U64(0, 0);
}

Result<std::vector<Seq>> PgStore::HeadSeqs(std::span<const UserId> users) {
  ReadTimer timer(observer_, "head_seqs");
  std::vector<Seq> out(users.size(), 0);
  if (users.empty()) return out;
  // One primary-key probe per element, answered by position (see kLockHeads
  // in pg_writer.cpp for why not `= ANY`).
  auto r = reads_->Exec(
      "SELECT u.n, h.head FROM unnest($1::int8[]) WITH ORDINALITY AS u(id, n) CROSS JOIN LATERAL "
      "(SELECT head FROM mailbox_head WHERE user_id = u.id OFFSET 0) h",
      Params().U64Array(users));
  if (!r) return Failed(r);
  for (int i = 0; i < r->size(); ++i) {
    const std::uint64_t n = r->U64(i, 0);
    if (n >= 1 && n <= out.size()) out[n - 1] = r->U64(i, 1);
  }
  return out;
}

Result<std::vector<MailboxEvent>> PgStore::ReadMailbox(UserId user, Seq after, std::size_t max) {
  ReadTimer timer(observer_, "read_mailbox");
  std::vector<MailboxEvent> events;
  if (max == 0 || after == kMaxSeq) return events;
  auto r = reads_->Exec(
      "SELECT b.seq, b.kind, b.ts_ms, b.msg_id, b.outgoing, b.conv_kind, b.conv_id, b.by_user, "
      "b.status, b.msg_ids, b.payload, m.msg_id IS NOT NULL, " PG_MESSAGE_COLUMNS
      " FROM mailbox b LEFT JOIN messages m ON b.kind = 1 AND m.msg_id = b.msg_id "
      "WHERE b.user_id = $1 AND b.seq > $2 ORDER BY b.seq LIMIT $3",
      Params().U64(user).U64(after).I64(static_cast<std::int64_t>(
          std::min<std::size_t>(max, std::numeric_limits<std::int64_t>::max()))));
  if (!r) return Failed(r);
  events.reserve(static_cast<std::size_t>(r->size()));
  for (int i = 0; i < r->size(); ++i) {
    MailboxEvent e;
    e.seq = r->U64(i, 0);
    e.type = static_cast<EventType>(r->I16(i, 1));
    e.ts_ms = r->I64(i, 2);
    e.conv = ConvOf(r->I16(i, 5), r->U64(i, 6));
    switch (e.type) {
      case EventType::kMessage:
        e.msg_id = r->U64(i, 3);
        e.outgoing = r->Bool(i, 4);
        if (r->Bool(i, 11)) e.message = std::make_shared<const Message>(MessageAt(*r, i, 12));
        break;
      case EventType::kReceipt:
      case EventType::kReadSync:
        e.by = r->U64(i, 7);
        e.status = static_cast<ReceiptStatus>(r->I16(i, 8));
        if (!r->IsNull(i, 9)) e.msg_ids = UnpackIds(r->Bytes(i, 9));
        break;
      default:
        e.conv = Conversation{};
        if (!r->IsNull(i, 10)) e.payload = r->Bytes(i, 10);
        break;
    }
    events.push_back(std::move(e));
  }
  return events;
}

Result<Seq> PgStore::GetCursor(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "get_cursor");
  auto r = reads_->Exec("SELECT seq FROM cursors WHERE user_id = $1 AND device_id = $2",
                        Params().U64(user).U64(device));
  if (!r) return Failed(r);
  return r->empty() ? Seq{0} : r->U64(0, 0);
}

Result<std::optional<HelloState>> PgStore::ReadHello(UserId user, DeviceId device) {
  ReadTimer timer(observer_, "read_hello");
  auto r = reads_->Exec(
      "SELECT (SELECT head FROM mailbox_head WHERE user_id = $1), (SELECT seq FROM cursors WHERE "
      "user_id = $1 AND device_id = $2) FROM devices WHERE user_id = $1 AND device_id = $2",
      Params().U64(user).U64(device));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<HelloState>();
  return std::optional<HelloState>(HelloState{.head = r->IsNull(0, 0) ? Seq{0} : r->U64(0, 0),
                                              .cursor = r->IsNull(0, 1) ? Seq{0} : r->U64(0, 1)});
}

Result<std::optional<Message>> PgStore::GetMessage(MsgId msg_id) {
  ReadTimer timer(observer_, "get_message");
  auto r = reads_->Exec("SELECT " PG_MESSAGE_COLUMNS " FROM messages m WHERE m.msg_id = $1",
                        Params().U64(msg_id));
  if (!r) return Failed(r);
  if (r->empty()) return std::optional<Message>();
  return std::optional<Message>(MessageAt(*r, 0, 0));
}

Result<std::vector<std::shared_ptr<const Message>>> PgStore::History(UserId user, Conversation conv,
                                                                     MsgId before,
                                                                     std::size_t limit) {
  ReadTimer timer(observer_, "history");
  std::vector<std::shared_ptr<const Message>> page;
  if (limit == 0 || before == 1) return page;
  const MsgId last = before == 0 ? std::numeric_limits<MsgId>::max() : before - 1;
  // Ids are below 2^63 (Snowflakes); the bound is clamped to int8's range.
  const std::int64_t bound = last > static_cast<MsgId>(std::numeric_limits<std::int64_t>::max())
                                 ? std::numeric_limits<std::int64_t>::max()
                                 : static_cast<std::int64_t>(last);
  auto r = reads_->Exec(
      "SELECT " PG_MESSAGE_COLUMNS
      " FROM mailbox b JOIN messages m ON m.msg_id = b.msg_id WHERE b.user_id = $1 AND b.kind = 1 "
      "AND b.conv_kind = $2 AND b.conv_id = $3 AND b.msg_id <= $4 ORDER BY b.msg_id DESC LIMIT $5",
      Params()
          .U64(user)
          .I16(static_cast<std::int16_t>(conv.kind))
          .U64(conv.id)
          .I64(bound)
          .I64(static_cast<std::int64_t>(std::min<std::size_t>(limit, 1 << 30))));
  if (!r) return Failed(r);
  for (int i = 0; i < r->size(); ++i) {
    page.push_back(std::make_shared<const Message>(MessageAt(*r, i, 0)));
  }
  return page;
}

Result<MessageReceipts> PgStore::GetReceipts(MsgId msg_id) {
  ReadTimer timer(observer_, "get_receipts");
  auto r = reads_->Exec("SELECT user_id, delivered_ts, read_ts FROM receipts WHERE msg_id = $1",
                        Params().U64(msg_id));
  if (!r) return Failed(r);
  MessageReceipts receipts;
  for (int i = 0; i < r->size(); ++i) {
    const UserId user = r->U64(i, 0);
    if (r->I64(i, 1) > 0) receipts.delivered.push_back({user, r->I64(i, 1)});
    if (r->I64(i, 2) > 0) receipts.read.push_back({user, r->I64(i, 2)});
  }
  auto by_time = [](const ReceiptEntry& a, const ReceiptEntry& b) {
    return std::pair(a.ts_ms, a.user) < std::pair(b.ts_ms, b.user);
  };
  std::sort(receipts.delivered.begin(), receipts.delivered.end(), by_time);
  std::sort(receipts.read.begin(), receipts.read.end(), by_time);
  return receipts;
}

// ---- Writes --------------------------------------------------------------------

void PgStore::AppendMessage(Message message, std::vector<UserId> recipients,
                            Callback<SendResult> done) {
  std::vector<UserId> hint = recipients;
  hint.push_back(message.sender);
  std::vector<GroupId> groups;
  if (message.to.kind == Conversation::Kind::kGroup) {
    hint = {message.sender};
    groups = {message.to.id};
  }
  const UserId sender = message.sender;
  std::string client_msg_id = message.client_msg_id;
  auto job = MakeJob<SendResult>(
      "append_message", std::move(hint),
      [this, m = std::move(message), recipients = std::move(recipients)](Tx& tx) mutable {
        return ApplyAppendMessage(tx, m, recipients);
      },
      std::move(done));
  job->set_group_hint(std::move(groups));
  // Read for the whole batch at BEGIN (Tx::Prefetch).
  if (!client_msg_id.empty()) job->set_idem_key(sender, std::move(client_msg_id));
  writer_->Submit(std::move(job));
}

void PgStore::Ack(UserId user, DeviceId device, Seq up_to, std::int64_t now_ms,
                  Callback<AckResult> done) {
  auto job = MakeJob<AckResult>(
      "ack", {user},
      [this, user, device, up_to, now_ms](Tx& tx) {
        return ApplyAck(tx, user, device, up_to, now_ms);
      },
      std::move(done));
  // Its reads are done for the whole batch at BEGIN (Tx::Prefetch).
  job->set_ack_hint(AckHint{.user = user, .device = device, .up_to = up_to});
  writer_->Submit(std::move(job));
}

void PgStore::MarkRead(UserId user, Conversation conv, MsgId up_to_msg_id, std::int64_t now_ms,
                       Callback<std::vector<Appended>> done) {
  Submit<std::vector<Appended>>("mark_read", {user}, std::move(done),
                                [this, user, conv, up_to_msg_id, now_ms](Tx& tx) {
                                  return ApplyMarkRead(tx, user, conv, up_to_msg_id, now_ms);
                                });
}

void PgStore::AppendEvents(std::vector<UserId> users, EventType type, std::string payload,
                           std::int64_t ts_ms, Callback<std::vector<Appended>> done) {
  std::vector<UserId> hint = users;
  Submit<std::vector<Appended>>(
      "append_events", std::move(hint), std::move(done),
      [this, users = std::move(users), type, payload = std::move(payload),
       ts_ms](Tx& tx) -> Result<std::vector<Appended>> {
        if (type != EventType::kGroup && type != EventType::kKeysChanged &&
            type != EventType::kDevice) {
          return Fail(Errc::kInvalid, "append_events takes group, keys_changed or device events");
        }
        MailboxEvent event{.type = type, .ts_ms = ts_ms, .payload = payload};
        std::vector<Appended> appended;
        if (auto s = AppendSameEvent(tx, users, event, appended); !s) return Failed(s);
        return appended;
      });
}

// ---- Write helpers (inside a job) ----------------------------------------------

Result<Seq> PgStore::AppendEventRow(Tx& tx, UserId owner, const MailboxEvent& event,
                                    std::vector<Appended>& appended) {
  auto seq = tx.Allocate(owner);
  if (!seq) return seq;
  tx.bulk().AddEventRow(owner, *seq, event, PackIds(event.msg_ids));
  appended.push_back({owner, *seq});
  return seq;
}

Status PgStore::AppendSameEvent(Tx& tx, std::span<const UserId> users, const MailboxEvent& event,
                                std::vector<Appended>& appended) {
  if (users.empty()) return Ok();
  if (users.size() == 1) {
    auto seq = AppendEventRow(tx, users[0], event, appended);
    if (!seq) return Failed(seq);
    return Ok();
  }
  if (auto s = tx.Lock({users.begin(), users.end()}); !s) return s;
  std::vector<std::uint64_t> owners, seqs;
  appended.reserve(appended.size() + users.size());
  for (UserId u : users) {
    auto seq = tx.Allocate(u);
    if (!seq) return Failed(seq);
    owners.push_back(u);
    seqs.push_back(*seq);
    appended.push_back({u, *seq});
  }
  tx.Write(
      "INSERT INTO mailbox (user_id, seq, kind, ts_ms, conv_kind, conv_id, by_user, status, "
      "msg_ids, payload) SELECT u, s, $3, $4, $5, $6, $7, $8, $9, $10 FROM unnest($1::int8[], "
      "$2::int8[]) AS v(u, s)",
      Params()
          .U64Array(owners)
          .U64Array(seqs)
          .I16(static_cast<std::int16_t>(event.type))
          .I64(event.ts_ms)
          .I16(static_cast<std::int16_t>(event.conv.kind))
          .U64(event.conv.id)
          .U64(event.by)
          .I16(static_cast<std::int16_t>(event.status))
          .Bytes(PackIds(event.msg_ids))
          .Bytes(event.payload));
  return Ok();
}

Result<SendResult> PgStore::ApplyAppendMessage(Tx& tx, Message& m,
                                               std::span<const UserId> recipients) {
  const bool group = m.to.kind == Conversation::Kind::kGroup;
  // Membership before the idempotency key: an outsider must not learn even
  // whether a client_msg_id was used.
  std::vector<UserId> members;
  if (group) {
    auto g = TxnGroupForSend(tx, m.to.id, m.sender);
    if (!g) return Failed(g);
    for (const auto& member : (*g)->members) members.push_back(member.user);
    m.recipients = static_cast<std::uint32_t>(members.size() - 1);  // the sender is one
    recipients = members;
    if (auto s = tx.Lock(members); !s) return Failed(s);
  }
  // The sender's head lock serialises its sends across nodes, so this read
  // sees any earlier send of the same client_msg_id.
  if (auto s = tx.Lock({m.sender}); !s) return Failed(s);
  if (!m.client_msg_id.empty()) {
    // Usually known: read for the whole batch at BEGIN, or sent by an
    // earlier job of this batch (pg_writer.hpp).
    std::optional<IdemHit> hit;
    if (auto known = tx.KnownIdem(m.sender, m.client_msg_id)) {
      hit = *known;
    } else {
      auto first = tx.Read(
          "SELECT msg_id, seq, ts_ms FROM idem WHERE sender = $1 AND "
          "client_msg_id = $2",
          Params().U64(m.sender).Bytes(m.client_msg_id));
      if (!first) return Failed(first);
      if (!first->empty()) {
        hit =
            IdemHit{.msg_id = first->U64(0, 0), .seq = first->U64(0, 1), .ts_ms = first->I64(0, 2)};
      }
    }
    if (hit) {
      return SendResult{
          .duplicate = true, .msg_id = hit->msg_id, .seq = hit->seq, .ts_ms = hit->ts_ms};
    }
  }

  // The message, its mailbox rows, key and peers go out set-based with
  // the batch's others (pg_bulk.hpp).
  tx.bulk().AddMessage(m);
  SendResult result{.msg_id = m.msg_id, .ts_ms = m.ts_ms};
  result.appended.reserve(recipients.size() + 1);
  auto add = [&](UserId owner, bool out, Conversation conv) -> Status {
    auto seq = tx.Allocate(owner);
    if (!seq) return Failed(seq);
    tx.bulk().AddMessageRow(owner, *seq, m.ts_ms, m.msg_id, out, m.sender, conv);
    result.appended.push_back({owner, *seq});
    result.seq = *seq;
    return Ok();
  };
  const Conversation incoming = group ? m.to : Conversation{Conversation::Kind::kUser, m.sender};
  bool granted = false;
  for (UserId r : recipients) {
    if (r == m.sender) continue;
    if (auto s = add(r, false, incoming); !s) return Failed(s);
    if (!m.media_id.empty()) {
      GrantMedia(tx, m.media_id, r);
      granted = true;
    }
  }
  if (granted) {
    // The newest message that carried the media keeps it past retention (ExpiredMedia).
    if (auto id = ParseId(m.media_id)) {
      tx.Write("UPDATE media SET ref_ms = GREATEST(COALESCE(ref_ms, $2), $2) WHERE media_id = $1",
               Params().U64(*id).I64(m.ts_ms));
    }
  }
  if (!group && m.sender != m.to.id) {
    // The peers index: who shares a 1:1 conversation, for keys_changed; the
    // sender's row also records that it chose to write (HasWrittenTo).
    tx.bulk().AddPeer(m.sender, m.to.id, true);
    tx.bulk().AddPeer(m.to.id, m.sender, false);
  }
  if (auto s = add(m.sender, true, m.to); !s) return Failed(s);
  if (!m.client_msg_id.empty()) {
    tx.bulk().AddIdem(m.sender, m.client_msg_id,
                      IdemHit{.msg_id = m.msg_id, .seq = result.seq, .ts_ms = m.ts_ms});
  }
  return result;
}

// An ack's reads when they were not prefetched (Tx::Prefetch): the device
// and its stored cursor, and when `after` is given the incoming rows with
// after < seq <= up_to, in one round trip.
Result<std::pair<AckDevice, std::vector<IncomingRow>>> PgStore::ReadAck(Tx& tx, UserId user,
                                                                        DeviceId device,
                                                                        std::optional<Seq> after,
                                                                        Seq up_to) {
  const char* device_sql =
      "SELECT (SELECT seq FROM cursors WHERE user_id = $1 AND device_id = $2) FROM devices "
      "WHERE user_id = $1 AND device_id = $2";
  const Params device_params = Params().U64(user).U64(device);
  Rows device_rows, incoming_rows;
  if (after) {
    if (tx.Buffered(user, up_to)) {
      if (auto s = tx.SendBuffered(); !s) return std::unexpected(s.error());
    }
    auto both = tx.ReadPastBoth(
        device_sql, device_params,
        "SELECT b.seq, b.msg_id, b.sender, b.conv_kind, b.conv_id, COALESCE(r.delivered_ts, 0) > "
        "0 FROM mailbox b LEFT JOIN receipts r ON r.msg_id = b.msg_id AND r.user_id = b.user_id "
        "WHERE b.user_id = $1 AND b.seq > $2 AND b.seq <= $3 AND b.kind = 1 AND NOT b.outgoing "
        "ORDER BY b.seq",
        Params().U64(user).U64(*after).U64(up_to));
    if (!both) return std::unexpected(both.error());
    device_rows = std::move(both->first);
    incoming_rows = std::move(both->second);
  } else {
    auto r = tx.ReadPast(device_sql, device_params);
    if (!r) return std::unexpected(r.error());
    device_rows = std::move(*r);
  }
  std::pair<AckDevice, std::vector<IncomingRow>> out;
  if (!device_rows.empty()) {
    out.first =
        AckDevice{.exists = true, .cursor = device_rows.IsNull(0, 0) ? 0 : device_rows.U64(0, 0)};
  }
  for (int i = 0; i < incoming_rows.size(); ++i) {
    out.second.push_back(IncomingRow{.seq = incoming_rows.U64(i, 0),
                                     .msg_id = incoming_rows.U64(i, 1),
                                     .sender = incoming_rows.U64(i, 2),
                                     .conv_kind = incoming_rows.I16(i, 3),
                                     .conv_id = incoming_rows.U64(i, 4),
                                     .delivered = incoming_rows.Bool(i, 5)});
  }
  return out;
}

Result<AckResult> PgStore::ApplyAck(Tx& tx, UserId user, DeviceId device, Seq up_to,
                                    std::int64_t now_ms) {
  auto head = tx.Head(user);
  if (!head) return Failed(head);
  if (up_to > *head) return Fail(Errc::kInvalid, "ack beyond the newest event of the mailbox");
  // Delivered receipts go out once per message, whichever device acks first.
  auto delivered = tx.Delivered(user);
  if (!delivered) return Failed(delivered);
  const bool new_rows = up_to > *delivered;
  // A removed device's late ack must not bring its cursor back. The device
  // with its cursor and the incoming rows to receipt were usually read for
  // the whole batch at BEGIN (Tx::Prefetch). Otherwise they are read in one
  // round trip without sending the batch's buffered rows (pg_writer.hpp):
  // devices are never buffered, a cursor an earlier ack buffered is taken
  // from the buffer, and receipts of these rows are buffered by no earlier
  // ack (the watermark moved past them). Only mailbox rows still buffered
  // (an ack of a row this batch appended) need them sent first.
  auto device_row = tx.PrefetchedDevice(user, device);
  std::optional<std::vector<IncomingRow>> incoming;
  if (new_rows && !tx.Buffered(user, up_to))
    incoming = tx.PrefetchedIncoming(user, *delivered, up_to);
  if (!device_row || (new_rows && !incoming)) {
    auto read =
        ReadAck(tx, user, device, new_rows ? std::optional(*delivered) : std::nullopt, up_to);
    if (!read) return Failed(read);
    device_row = read->first;
    incoming = std::move(read->second);
  }
  if (!device_row->exists) return Fail(Errc::kNotFound, "no such device");
  Seq cursor = device_row->cursor;
  if (auto buffered = tx.BufferedCursor(user, device)) cursor = std::max(cursor, *buffered);
  AckResult result{.cursor = std::max(cursor, up_to)};
  if (result.cursor != cursor) tx.bulk().AddCursor(user, device, result.cursor);
  if (!new_rows) return result;
  ReceiptGroups groups;
  std::vector<std::uint64_t> fresh;
  for (const auto& row : *incoming) {
    if (!row.delivered) fresh.push_back(row.msg_id);
    groups.Add(row.sender, SenderView(ConvOf(row.conv_kind, row.conv_id), user), row.msg_id);
  }
  for (MsgId id : fresh) tx.bulk().AddDelivered(id, user, now_ms);
  for (const auto& g : groups.groups()) {
    auto receipt = std::make_shared<MailboxEvent>(MailboxEvent{.type = EventType::kReceipt,
                                                               .ts_ms = now_ms,
                                                               .conv = g.conv,
                                                               .msg_ids = g.msg_ids,
                                                               .by = user});
    auto seq = AppendEventRow(tx, g.sender, *receipt, result.appended);
    if (!seq) return Failed(seq);
    // Handed to the sender's sessions with the wake, as the RocksDB store
    // does: they send it as it is instead of reading it back (a read-pool
    // round trip to PostgreSQL per receipt).
    receipt->seq = *seq;
    result.appended.back().event = std::move(receipt);
  }
  if (auto s = tx.SetDelivered(user, up_to); !s) return Failed(s);
  return result;
}

Result<std::vector<Appended>> PgStore::ApplyMarkRead(Tx& tx, UserId user, Conversation conv,
                                                     MsgId up_to, std::int64_t now_ms) {
  const auto kind = static_cast<std::int16_t>(conv.kind);
  auto target = tx.Read(
      "SELECT 1 FROM mailbox WHERE user_id = $1 AND kind = 1 AND conv_kind = $2 AND conv_id = $3 "
      "AND msg_id = $4",
      Params().U64(user).I16(kind).U64(conv.id).U64(up_to));
  if (!target) return Failed(target);
  if (target->empty()) return Fail(Errc::kNotFound, "no such message in this conversation");
  auto mark_row = tx.Read(
      "SELECT msg_id FROM read_marks WHERE user_id = $1 AND conv_kind = $2 AND conv_id = $3",
      Params().U64(user).I16(kind).U64(conv.id));
  if (!mark_row) return Failed(mark_row);
  const MsgId mark = mark_row->empty() ? 0 : mark_row->U64(0, 0);
  std::vector<Appended> appended;
  if (up_to <= mark) return appended;  // already read that far: a repeat changes nothing

  auto unread = tx.Read(
      "SELECT msg_id, sender FROM mailbox WHERE user_id = $1 AND kind = 1 AND conv_kind = $2 AND "
      "conv_id = $3 AND msg_id > $4 AND msg_id <= $5 AND sender <> $1 ORDER BY msg_id",
      Params().U64(user).I16(kind).U64(conv.id).U64(mark).U64(up_to));
  if (!unread) return Failed(unread);
  ReceiptGroups groups;
  const Conversation sender_view = SenderView(conv, user);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < unread->size(); ++i) {
    ids.push_back(unread->U64(i, 0));
    groups.Add(unread->U64(i, 1), sender_view, ids.back());
  }
  if (!ids.empty()) {
    tx.Write(
        "INSERT INTO receipts (msg_id, user_id, delivered_ts, read_ts) SELECT id, $2, $3, $3 FROM "
        "unnest($1::int8[]) AS id ON CONFLICT (msg_id, user_id) DO UPDATE SET delivered_ts = "
        "CASE WHEN receipts.delivered_ts = 0 THEN excluded.delivered_ts ELSE "
        "receipts.delivered_ts END, read_ts = CASE WHEN receipts.read_ts = 0 THEN "
        "excluded.read_ts ELSE receipts.read_ts END",
        Params().U64Array(ids).U64(user).I64(now_ms));
  }
  MailboxEvent receipt{
      .type = EventType::kReceipt, .ts_ms = now_ms, .by = user, .status = ReceiptStatus::kRead};
  for (const auto& g : groups.groups()) {
    receipt.conv = g.conv;
    receipt.msg_ids = g.msg_ids;
    if (auto seq = AppendEventRow(tx, g.sender, receipt, appended); !seq) return Failed(seq);
  }
  tx.Write(
      "INSERT INTO read_marks (user_id, conv_kind, conv_id, msg_id) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (user_id, conv_kind, conv_id) DO UPDATE SET msg_id = excluded.msg_id",
      Params().U64(user).I16(kind).U64(conv.id).U64(up_to));
  MailboxEvent sync{
      .type = EventType::kReadSync, .ts_ms = now_ms, .conv = conv, .msg_ids = {up_to}};
  if (auto seq = AppendEventRow(tx, user, sync, appended); !seq) return Failed(seq);
  return appended;
}

}  // namespace parley::store::pg
