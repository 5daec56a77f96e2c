// Groups with their members, as the writer last saw them. Every group send
// needs the whole membership (up to 256 members) inside the writer; this
// spares each of them a prefix scan and 256 decodes.
//
// Two layers, like MailboxHeads:
//   * committed: groups as they are in the database, bounded (LRU). Readers
//     (GetGroup) may look here; only the writer thread fills it, either with
//     a group it loaded inside a job (which is the committed state, since a
//     group that no job of the batch changed has no writes in the batch) or
//     with what a batch changed, once that batch committed. Readers never
//     fill it: a read racing a commit could otherwise put back an old version.
//   * pending (writer thread only): the versions jobs of the batch being
//     built produced, so that a later job of the batch sees them. A job's
//     versions vanish when it is rolled back; the layer replaces the committed
//     entries when the batch commits and is dropped when it fails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/records.hpp"
#include "store/rocksdb/group_writer.hpp"

namespace parley::store::rocks {

// A group as the writer works with it.
struct GroupState {
  std::shared_ptr<const Group> group;  // null: there is no such group (now)
  std::uint64_t next_join_order = 1;
};

class GroupCache final : public BatchObserver {
 public:
  explicit GroupCache(std::size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // Any thread: the committed group if it is cached (null otherwise, which
  // says nothing about whether it exists).
  std::shared_ptr<const Group> Committed(GroupId id);

  // ---- Writer thread, inside a job ----
  // The group as earlier jobs of this batch left it, or as committed;
  // nullopt when neither layer knows it (load it from the database).
  std::optional<GroupState> Current(GroupId id);
  // Records a group the job read from the database; only existing groups are kept.
  void Loaded(GroupId id, const GroupState& state);
  // The job's new version of the group (state.group null: deleted).
  void Stage(GroupId id, GroupState state);

  void JobDone(bool kept) override;
  void BatchDone(bool committed) override;

 private:
  void Insert(GroupId id, const GroupState& state);  // mu_ held
  void Erase(GroupId id);                            // mu_ held

  const std::size_t capacity_;
  std::mutex mu_;
  struct Entry {
    GroupState state;
    std::list<GroupId>::iterator pos;
  };
  std::unordered_map<GroupId, Entry> committed_;  // guarded by mu_
  std::list<GroupId> lru_;                        // guarded by mu_; most recent first

  std::unordered_map<GroupId, GroupState> pending_;
  // (group, its pending version before this job; nullopt when it had none).
  std::vector<std::pair<GroupId, std::optional<GroupState>>> undo_;
};

}  // namespace parley::store::rocks
