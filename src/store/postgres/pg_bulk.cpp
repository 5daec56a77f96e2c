#include "store/postgres/pg_bulk.hpp"

#include <algorithm>
#include <iterator>

#include "store/postgres/pg_conn.hpp"

namespace parley::store::pg {
namespace {

template <class T>
void Append(std::vector<T>& to, std::vector<T>& from) {
  if (to.empty()) {
    to.swap(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

std::uint64_t U(std::int64_t v) { return static_cast<std::uint64_t>(v); }

}  // namespace

std::string BulkRows::IdemKey(UserId sender, const std::string& client_msg_id) {
  std::string key(reinterpret_cast<const char*>(&sender), sizeof sender);
  return key + client_msg_id;
}

void BulkRows::AddMessage(const Message& m) {
  m_id_.push_back(m.msg_id);
  m_sender_.push_back(m.sender);
  m_device_.push_back(m.sender_device);
  m_ck_.push_back(static_cast<std::uint64_t>(m.to.kind));
  m_ci_.push_back(m.to.id);
  m_ts_.push_back(U(m.ts_ms));
  m_recipients_.push_back(m.recipients);
  m_cmid_.push_back(m.client_msg_id);
  m_kind_.push_back(m.kind);
  m_body_.push_back(m.body);
  m_media_.push_back(m.media_id);
  ++rows_;
}

void BulkRows::AddMessageRow(UserId owner, Seq seq, std::int64_t ts_ms, MsgId msg_id, bool outgoing,
                             UserId sender, Conversation conv) {
  r_user_.push_back(owner);
  r_seq_.push_back(seq);
  r_ts_.push_back(U(ts_ms));
  r_msg_.push_back(msg_id);
  r_out_.push_back(outgoing ? 1 : 0);
  r_sender_.push_back(sender);
  r_ck_.push_back(static_cast<std::uint64_t>(conv.kind));
  r_ci_.push_back(conv.id);
  auto [it, fresh] = min_seq_.emplace(owner, seq);
  if (!fresh) it->second = std::min(it->second, seq);
  ++rows_;
}

void BulkRows::AddEventRow(UserId owner, Seq seq, const MailboxEvent& event,
                           std::string packed_ids) {
  e_user_.push_back(owner);
  e_seq_.push_back(seq);
  e_kind_.push_back(static_cast<std::uint64_t>(event.type));
  e_ts_.push_back(U(event.ts_ms));
  e_ck_.push_back(static_cast<std::uint64_t>(event.conv.kind));
  e_ci_.push_back(event.conv.id);
  e_by_.push_back(event.by);
  e_status_.push_back(static_cast<std::uint64_t>(event.status));
  e_ids_.push_back(std::move(packed_ids));
  e_payload_.push_back(event.payload);
  auto [it, fresh] = min_seq_.emplace(owner, seq);
  if (!fresh) it->second = std::min(it->second, seq);
  ++rows_;
}

void BulkRows::AddIdem(UserId sender, const std::string& client_msg_id, IdemHit hit) {
  if (!idem_.emplace(IdemKey(sender, client_msg_id), hit).second) return;
  i_sender_.push_back(sender);
  i_cmid_.push_back(client_msg_id);
  i_msg_.push_back(hit.msg_id);
  i_seq_.push_back(hit.seq);
  i_ts_.push_back(U(hit.ts_ms));
  ++rows_;
}

void BulkRows::AddPeer(UserId user, UserId peer, bool wrote) {
  auto [it, fresh] = peers_.emplace(std::pair(user, peer), wrote);
  if (!fresh) it->second = it->second || wrote;
  ++rows_;
}

void BulkRows::AddCursor(UserId user, DeviceId device, Seq seq) {
  auto [it, fresh] = cursors_.emplace(std::pair(user, device), seq);
  if (!fresh) it->second = std::max(it->second, seq);
  ++rows_;
}

void BulkRows::AddDelivered(MsgId msg_id, UserId user, std::int64_t ts_ms) {
  delivered_.emplace(std::pair(msg_id, user), ts_ms);
  ++rows_;
}

std::optional<IdemHit> BulkRows::FindIdem(UserId sender, const std::string& client_msg_id) const {
  auto it = idem_.find(IdemKey(sender, client_msg_id));
  if (it == idem_.end()) return std::nullopt;
  return it->second;
}

std::optional<Seq> BulkRows::FindCursor(UserId user, DeviceId device) const {
  auto it = cursors_.find(std::pair(user, device));
  if (it == cursors_.end()) return std::nullopt;
  return it->second;
}

bool BulkRows::HasMailboxRow(UserId user, Seq up_to) const {
  auto it = min_seq_.find(user);
  return it != min_seq_.end() && it->second <= up_to;
}

void BulkRows::Merge(BulkRows&& o) {
  if (o.rows_ == 0) return;
  if (rows_ == 0) {
    *this = std::move(o);
    o.Clear();
    return;
  }
  const std::size_t rows = rows_ + o.rows_;
  Append(m_id_, o.m_id_);
  Append(m_sender_, o.m_sender_);
  Append(m_device_, o.m_device_);
  Append(m_ck_, o.m_ck_);
  Append(m_ci_, o.m_ci_);
  Append(m_ts_, o.m_ts_);
  Append(m_recipients_, o.m_recipients_);
  Append(m_cmid_, o.m_cmid_);
  Append(m_kind_, o.m_kind_);
  Append(m_body_, o.m_body_);
  Append(m_media_, o.m_media_);
  Append(r_user_, o.r_user_);
  Append(r_seq_, o.r_seq_);
  Append(r_ts_, o.r_ts_);
  Append(r_msg_, o.r_msg_);
  Append(r_out_, o.r_out_);
  Append(r_sender_, o.r_sender_);
  Append(r_ck_, o.r_ck_);
  Append(r_ci_, o.r_ci_);
  Append(e_user_, o.e_user_);
  Append(e_seq_, o.e_seq_);
  Append(e_kind_, o.e_kind_);
  Append(e_ts_, o.e_ts_);
  Append(e_ck_, o.e_ck_);
  Append(e_ci_, o.e_ci_);
  Append(e_by_, o.e_by_);
  Append(e_status_, o.e_status_);
  Append(e_ids_, o.e_ids_);
  Append(e_payload_, o.e_payload_);
  for (const auto& [user, seq] : o.min_seq_) {
    auto [it, fresh] = min_seq_.emplace(user, seq);
    if (!fresh) it->second = std::min(it->second, seq);
  }
  for (std::size_t i = 0; i < o.i_sender_.size(); ++i) {
    AddIdem(o.i_sender_[i], o.i_cmid_[i],
            IdemHit{.msg_id = o.i_msg_[i],
                    .seq = o.i_seq_[i],
                    .ts_ms = static_cast<std::int64_t>(o.i_ts_[i])});
  }
  for (const auto& [key, wrote] : o.peers_) AddPeer(key.first, key.second, wrote);
  for (const auto& [key, seq] : o.cursors_) AddCursor(key.first, key.second, seq);
  for (const auto& [key, ts] : o.delivered_) AddDelivered(key.first, key.second, ts);
  rows_ = rows;  // only its emptiness matters
  o.Clear();
}

Status BulkRows::SendTo(Conn& conn) {
  if (rows_ == 0) return Ok();
  if (!m_id_.empty()) {
    if (auto s = conn.Send(
            "INSERT INTO messages (msg_id, sender, sender_device, conv_kind, conv_id, "
            "client_msg_id, kind, body, media_id, ts_ms, recipients) SELECT id, s, d, ck::int2, "
            "ci, cm, k, b, md, ts, r FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], "
            "$5::int8[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bytea[], $10::int8[], "
            "$11::int8[]) AS v(id, s, d, ck, ci, cm, k, b, md, ts, r)",
            Params()
                .U64Array(m_id_)
                .U64Array(m_sender_)
                .U64Array(m_device_)
                .U64Array(m_ck_)
                .U64Array(m_ci_)
                .BytesArray(m_cmid_)
                .BytesArray(m_kind_)
                .BytesArray(m_body_)
                .BytesArray(m_media_)
                .U64Array(m_ts_)
                .U64Array(m_recipients_));
        !s) {
      return s;
    }
  }
  if (!r_user_.empty()) {
    if (auto s = conn.Send(
            "INSERT INTO mailbox (user_id, seq, kind, ts_ms, msg_id, outgoing, sender, conv_kind, "
            "conv_id) SELECT u, s, 1, ts, m, o = 1, snd, ck::int2, ci FROM unnest($1::int8[], "
            "$2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[]) "
            "AS v(u, s, ts, m, o, snd, ck, ci)",
            Params()
                .U64Array(r_user_)
                .U64Array(r_seq_)
                .U64Array(r_ts_)
                .U64Array(r_msg_)
                .U64Array(r_out_)
                .U64Array(r_sender_)
                .U64Array(r_ck_)
                .U64Array(r_ci_));
        !s) {
      return s;
    }
  }
  if (!e_user_.empty()) {
    if (auto s = conn.Send(
            "INSERT INTO mailbox (user_id, seq, kind, ts_ms, conv_kind, conv_id, by_user, status, "
            "msg_ids, payload) SELECT u, s, k::int2, ts, ck::int2, ci, b, st::int2, ids, p FROM "
            "unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], "
            "$7::int8[], $8::int8[], $9::bytea[], $10::bytea[]) AS v(u, s, k, ts, ck, ci, b, st, "
            "ids, p)",
            Params()
                .U64Array(e_user_)
                .U64Array(e_seq_)
                .U64Array(e_kind_)
                .U64Array(e_ts_)
                .U64Array(e_ck_)
                .U64Array(e_ci_)
                .U64Array(e_by_)
                .U64Array(e_status_)
                .BytesArray(e_ids_)
                .BytesArray(e_payload_));
        !s) {
      return s;
    }
  }
  if (!i_sender_.empty()) {
    if (auto s =
            conn.Send("INSERT INTO idem (sender, client_msg_id, msg_id, seq, ts_ms) SELECT * FROM "
                      "unnest($1::int8[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[])",
                      Params()
                          .U64Array(i_sender_)
                          .BytesArray(i_cmid_)
                          .U64Array(i_msg_)
                          .U64Array(i_seq_)
                          .U64Array(i_ts_));
        !s) {
      return s;
    }
  }
  if (!peers_.empty()) {
    std::vector<std::uint64_t> users, peers, wrote;
    for (const auto& [key, w] : peers_) {
      users.push_back(key.first);
      peers.push_back(key.second);
      wrote.push_back(w ? 1 : 0);
    }
    if (auto s = conn.Send(
            "INSERT INTO peers (user_id, peer_id, wrote) SELECT u, p, w = 1 FROM "
            "unnest($1::int8[], $2::int8[], $3::int8[]) AS v(u, p, w) ON CONFLICT (user_id, "
            "peer_id) DO UPDATE SET wrote = peers.wrote OR excluded.wrote",
            Params().U64Array(users).U64Array(peers).U64Array(wrote));
        !s) {
      return s;
    }
  }
  if (!cursors_.empty()) {
    std::vector<std::uint64_t> users, devices, seqs;
    for (const auto& [key, seq] : cursors_) {
      users.push_back(key.first);
      devices.push_back(key.second);
      seqs.push_back(seq);
    }
    if (auto s = conn.Send(
            "INSERT INTO cursors (user_id, device_id, seq) SELECT * FROM unnest($1::int8[], "
            "$2::int8[], $3::int8[]) ON CONFLICT (user_id, device_id) DO UPDATE SET seq = "
            "excluded.seq",
            Params().U64Array(users).U64Array(devices).U64Array(seqs));
        !s) {
      return s;
    }
  }
  if (!delivered_.empty()) {
    std::vector<std::uint64_t> ids, users, ts;
    for (const auto& [key, t] : delivered_) {
      ids.push_back(key.first);
      users.push_back(key.second);
      ts.push_back(U(t));
    }
    if (auto s = conn.Send(
            "INSERT INTO receipts (msg_id, user_id, delivered_ts, read_ts) SELECT id, u, ts, 0 "
            "FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS v(id, u, ts) ON CONFLICT "
            "(msg_id, user_id) DO UPDATE SET delivered_ts = excluded.delivered_ts WHERE "
            "receipts.delivered_ts = 0",
            Params().U64Array(ids).U64Array(users).U64Array(ts));
        !s) {
      return s;
    }
  }
  Clear();
  return Ok();
}

}  // namespace parley::store::pg
