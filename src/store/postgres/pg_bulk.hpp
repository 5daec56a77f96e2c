// Rows of a batch written set-based (private to src/store/postgres/).
//
// The hot rows of a batch (a send's message, mailbox rows and idempotency
// key, the peers index, an ack's cursor and delivered receipts, a single
// mailbox event) are not one statement each: a job adds them here, and the
// writer sends them as ONE `INSERT ... SELECT FROM unnest(...)` per kind of
// row for all the jobs that added them since the last flush (issue 12 item
// 2). Rows are kept per job until the job succeeds (Tx::EndJob merges them
// into the batch's), so a failed job still changes nothing.
//
// What a flush may reorder, and why that is safe: rows are flushed before
// any statement that could read or change them (Tx::Read, a job's plain
// writes, the commit; see pg_writer.hpp), so every statement sees what it
// saw before. Kinds whose upsert could meet the same key twice in one
// statement (peers, cursors, receipts) are merged here first, the way
// their one-by-one upserts would have ended.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "store/records.hpp"

namespace parley::store::pg {

class Conn;

// An idempotency key's first send.
struct IdemHit {
  MsgId msg_id = 0;
  Seq seq = 0;
  std::int64_t ts_ms = 0;
};

class BulkRows {
 public:
  void AddMessage(const Message& m);
  // A kMessage mailbox row.
  void AddMessageRow(UserId owner, Seq seq, std::int64_t ts_ms, MsgId msg_id, bool outgoing,
                     UserId sender, Conversation conv);
  // Any other mailbox event (receipt, read_sync, ...): msg_ids packed.
  void AddEventRow(UserId owner, Seq seq, const MailboxEvent& event, std::string packed_ids);
  void AddIdem(UserId sender, const std::string& client_msg_id, IdemHit hit);
  // Sets `wrote` if any row of the pair sets it.
  void AddPeer(UserId user, UserId peer, bool wrote);
  // The highest seq of the device wins.
  void AddCursor(UserId user, DeviceId device, Seq seq);
  // A delivered receipt (kept as the first one if the same message comes twice).
  void AddDelivered(MsgId msg_id, UserId user, std::int64_t ts_ms);

  // An idempotency key added (by an earlier job of the batch).
  std::optional<IdemHit> FindIdem(UserId sender, const std::string& client_msg_id) const;
  // A cursor added for the device.
  std::optional<Seq> FindCursor(UserId user, DeviceId device) const;
  // Whether a mailbox row of `user` with a seq at most `up_to` is here.
  bool HasMailboxRow(UserId user, Seq up_to) const;

  bool empty() const { return rows_ == 0; }
  // Moves `other`'s rows after this one's.
  void Merge(BulkRows&& other);
  // Sends one statement per kind (pipelined: Conn::Send) and empties this.
  Status SendTo(Conn& conn);
  void Clear() { *this = BulkRows(); }

  static std::string IdemKey(UserId sender, const std::string& client_msg_id);

 private:
  std::size_t rows_ = 0;
  // messages
  std::vector<std::uint64_t> m_id_, m_sender_, m_device_, m_ck_, m_ci_, m_ts_, m_recipients_;
  std::vector<std::string> m_cmid_, m_kind_, m_body_, m_media_;
  // kMessage mailbox rows
  std::vector<std::uint64_t> r_user_, r_seq_, r_ts_, r_msg_, r_out_, r_sender_, r_ck_, r_ci_;
  // other mailbox events
  std::vector<std::uint64_t> e_user_, e_seq_, e_kind_, e_ts_, e_ck_, e_ci_, e_by_, e_status_;
  std::vector<std::string> e_ids_, e_payload_;
  // the lowest seq buffered per mailbox
  std::unordered_map<UserId, Seq> min_seq_;
  // idempotency keys
  std::vector<std::uint64_t> i_sender_, i_msg_, i_seq_, i_ts_;
  std::vector<std::string> i_cmid_;
  std::unordered_map<std::string, IdemHit> idem_;
  // merged upserts (ordered maps: a deterministic statement)
  std::map<std::pair<UserId, UserId>, bool> peers_;
  std::map<std::pair<UserId, DeviceId>, Seq> cursors_;
  std::map<std::pair<MsgId, UserId>, std::int64_t> delivered_;
};

}  // namespace parley::store::pg
