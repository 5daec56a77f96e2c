// The incoming message rows of each mailbox that its delivered watermark has
// not passed yet, kept by the writer, so that an ack finds the messages it
// delivers without a scan of the mailbox (writer thread only).
//
// Per user the index knows a seq `from` and every incoming message row above
// it: a user's entry starts at the mailbox head (nothing above it yet) and
// each incoming row appended from then on is noted (AppendMessageRow is the
// one place such rows are written). An ack whose range (delivered watermark,
// up_to] lies above `from` takes its rows from here; any other ack scans
// the mailbox as before and starts the user's entry at the head.
//
// It follows the batch like MailboxHeads does: a job's notes are taken back
// when the job is rolled back, rows the watermark passed leave only once
// their batch has committed, and a failed batch forgets everything (seqs are
// then handed out again). Bounded: past kMaxRowsPerUser a user's oldest rows
// leave and `from` moves up over them (those acks scan again); past
// kMaxUsers the index starts over. Either costs scans, never a receipt.
#pragma once

#include <cstddef>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/records.hpp"
#include "store/rocksdb/group_writer.hpp"

namespace parley::store::rocks {

class IncomingIndex final : public BatchObserver {
 public:
  static constexpr std::size_t kMaxRowsPerUser = 1024;
  static constexpr std::size_t kMaxUsers = 1 << 18;

  struct Row {
    Seq seq = 0;
    MsgId msg_id = 0;
    UserId sender = 0;
    Conversation conv;  // as the mailbox's owner sees it
  };

  // The current job appended an incoming message row at `row.seq` of
  // `user`'s mailbox; `head_before` is the mailbox's head before that row.
  void Note(UserId user, Seq head_before, const Row& row);

  // Whether the index knows every incoming row of `user` in (after, up_to];
  // if so they are appended to `out` in seq order.
  bool Collect(UserId user, Seq after, Seq up_to, std::vector<Row>& out) const;

  // The user's entry starts at `head` (the mailbox's current head) if it has
  // none: a scan up to the head has just seen everything below.
  void Track(UserId user, Seq head);

  // The current job moved `user`'s delivered watermark to `up_to`: the rows
  // at or below it leave once the batch commits.
  void Delivered(UserId user, Seq up_to);

  // Forgets everything (retention deleted rows).
  void Clear();

  void JobDone(bool kept) override;
  void BatchDone(bool committed) override;

  std::size_t users() const { return users_.size(); }

 private:
  struct Entry {
    Seq from = 0;
    std::vector<Row> rows;  // seq > from, ascending
  };

  std::unordered_map<UserId, Entry> users_;
  // This batch's notes in order (user), and where the current job's begin.
  std::vector<UserId> noted_;
  std::size_t job_noted_ = 0;
  // Watermarks to apply on commit: the batch's kept jobs', and the current job's.
  std::vector<std::pair<UserId, Seq>> delivered_;
  std::size_t job_delivered_ = 0;
};

}  // namespace parley::store::rocks
