// The head (highest seq) of each user's mailbox, so that appending a row
// needs no read of the mailbox.
//
// Two layers:
//   * committed: the head of what is durably in the database. Shared by the
//     readers (HeadSeq) and the writer; loaded on first use by the injected
//     loader and afterwards only ever raised (max), so a load racing a commit
//     cannot lower it.
//   * pending (writer thread only): heads raised by the jobs of the batch
//     being built, so that a later job of the same batch continues from them.
//     Each job's raises are undone if the job is rolled back; the whole layer
//     becomes committed when the batch commits and is dropped when it fails.
#pragma once

#include <functional>
#include <mutex>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "store/records.hpp"
#include "store/rocksdb/group_writer.hpp"

namespace parley::store::rocks {

class MailboxHeads final : public BatchObserver {
 public:
  // Reads the committed head of a user's mailbox from the database.
  using Loader = std::function<Result<Seq>(UserId)>;
  explicit MailboxHeads(Loader load) : load_(std::move(load)) {}

  // Any thread: the committed head, never a pending one.
  Result<Seq> Committed(UserId user);

  // ---- Writer thread, inside a job ----
  // The head including rows earlier jobs of this batch appended.
  Result<Seq> Current(UserId user);
  // Reserves the next seq of the user's mailbox for a row this job appends.
  Result<Seq> Allocate(UserId user);

  void JobDone(bool kept) override;
  void BatchDone(bool committed) override;

 private:
  void Raise(UserId user, Seq seq);

  Loader load_;
  std::mutex mu_;
  std::unordered_map<UserId, Seq> committed_;  // guarded by mu_

  std::unordered_map<UserId, Seq> pending_;
  // (user, its pending head before this job; 0 when it had none).
  std::vector<std::pair<UserId, Seq>> undo_;
};

}  // namespace parley::store::rocks
