// Retention: deleting what is older than the cutoff, in bounded writer jobs.
//
// Which family is walked how:
//   * mailbox: per user, from its oldest row while rows are older than the
//     cutoff (a user's rows are appended in time order), then a seek to the
//     next user. A kMessage row takes its conv_index row with it (the row
//     holds everything that key is made of), so conv_index is never walked.
//   * messages, receipts: keyed by msg_id, which starts with its time, so the
//     old ones are one key range at the front. A message takes its idem row
//     with it (the body names its sender and client_msg_id).
//   * refresh_tokens, otp: keyed by hash and phone, walked whole, deleting
//     what is past its own expiry.
//
// A row and the index entry that goes with it count as one row.
//
// Each job does at most max_rows deletions and visits at most
// kVisitsPerRow * max_rows keys, so the writer is never held for long. One
// Purge call runs jobs one after another (other writes queue in between)
// until it has deleted max_rows rows or every family has been walked once;
// so an answer below max_rows means the pass is complete, as the contract
// says, even when the pass had many live rows to step over.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "common/ids.hpp"
#include "store/rocksdb/rocksdb_store_impl.hpp"

namespace parley::store::rocks {
namespace {

constexpr std::size_t kVisitsPerRow = 4;
constexpr std::size_t kMinVisits = 1024;

}  // namespace

void RocksStore::Purge(std::int64_t cutoff_ms, std::size_t max_rows, Callback<std::size_t> done) {
  if (max_rows == 0) {
    Submit<std::size_t>("purge", std::move(done),
                        [](WriteTxn&) -> Result<std::size_t> { return std::size_t{0}; });
    return;
  }
  PurgeSteps(cutoff_ms, max_rows, 0, std::move(done));
}

void RocksStore::PurgeSteps(std::int64_t cutoff_ms, std::size_t max_rows, std::size_t total,
                            Callback<std::size_t> done) {
  // Runs on the writer thread after the step's commit; submitting the next
  // step from there queues it behind whatever arrived meanwhile.
  Callback<PurgeProgress> next = [this, cutoff_ms, max_rows, total,
                                  done = std::move(done)](Result<PurgeProgress> r) mutable {
    if (!r) {
      if (done) done(std::unexpected(r.error()));
      return;
    }
    total += r->deleted;
    if (total >= max_rows || r->pass_done) {
      if (done) done(total);
      return;
    }
    PurgeSteps(cutoff_ms, max_rows, total, std::move(done));
  };
  Submit<PurgeProgress>("purge", std::move(next),
                        [this, cutoff_ms, max_rows, total](WriteTxn& txn) {
                          return ApplyPurgeStep(txn, cutoff_ms, max_rows, max_rows - total);
                        });
}

Result<RocksStore::PurgeProgress> RocksStore::ApplyPurgeStep(WriteTxn& txn, std::int64_t cutoff_ms,
                                                             std::size_t max_rows,
                                                             std::size_t remaining) {
  const std::size_t rows = std::max(max_rows, kMinVisits);
  PurgeBudget budget{
      .max_deleted = remaining,
      .max_visited = rows > SIZE_MAX / kVisitsPerRow ? SIZE_MAX : rows * kVisitsPerRow};
  // Positions move only if the step succeeds; a failed step is redone.
  auto cursors = purge_;
  const MsgId floor = IdFloorForTime(cutoff_ms);
  const std::int64_t now_ms = NowMs();
  for (std::size_t phase = 0; phase < kPurgePhases && !budget.spent(); ++phase) {
    auto& cursor = cursors[phase];
    if (cursor.done) continue;
    Status s = Ok();
    switch (phase) {
      case kPurgeMailbox:
        s = PurgeMailbox(txn, cutoff_ms, cursor, budget);
        break;
      case kPurgeMessages:
        s = PurgeMessages(txn, floor, cursor, budget);
        break;
      case kPurgeReceipts:
        s = PurgeReceipts(txn, floor, cursor, budget);
        break;
      case kPurgeTokens:
        s = PurgeExpiredCredentials(txn, Cf::kRefreshTokens, now_ms, cursor, budget);
        break;
      case kPurgeOtp:
        s = PurgeExpiredCredentials(txn, Cf::kOtp, now_ms, cursor, budget);
        break;
      default:
        break;
    }
    if (!s) return std::unexpected(s.error());
  }
  PurgeProgress progress{.deleted = budget.deleted};
  progress.pass_done =
      std::all_of(cursors.begin(), cursors.end(), [](const PurgeCursor& c) { return c.done; });
  if (progress.pass_done) {
    for (std::size_t phase = 0; phase < kPurgePhases; ++phase) {
      cursors[phase].done = false;
      // Ids only grow: what lies before the last deletion in an id-keyed
      // family is gone for good, and starting over would wade through tombstones.
      if (phase != kPurgeMessages && phase != kPurgeReceipts) cursors[phase].resume.clear();
    }
  }
  purge_ = std::move(cursors);
  return progress;
}

Status RocksStore::PurgeMailbox(WriteTxn& txn, std::int64_t cutoff_ms, PurgeCursor& cursor,
                                PurgeBudget& budget) {
  struct Doomed {
    UserId user;
    Seq seq;
    RowHeader header;
  };
  std::vector<Doomed> doomed;
  // Users whose mailbox this step empties, with the last seq they had.
  std::vector<std::pair<UserId, Seq>> emptied;
  bool finished = false;
  {
    rocksdb::ReadOptions ro;
    auto it = txn.NewIterator(cf(Cf::kMailbox), ro);
    it->Seek(cursor.resume);
    for (;;) {
      if (!it->Valid()) {
        finished = true;
        break;
      }
      if (budget.spent()) {
        cursor.resume = it->key().ToString();
        break;
      }
      ++budget.visited;
      auto key = ParseU64PairKey(it->key().ToStringView());
      if (!key) return Fail(Errc::kCorruption, "malformed mailbox key");
      auto header = DecodeRowHeader(it->value().ToStringView());
      if (!header) return std::unexpected(header.error());
      if (header->message.ts_ms < cutoff_ms) {
        doomed.push_back({key->first, key->second, *header});
        ++budget.deleted;
        it->Next();
        if (!it->Valid() || !it->key().starts_with(IdKey(key->first).view())) {
          emptied.emplace_back(key->first, key->second);
        }
        continue;
      }
      // The rest of this user's rows are newer: on to the next user.
      if (key->first == std::numeric_limits<UserId>::max()) {
        finished = true;
        break;
      }
      it->Seek(IdKey(key->first + 1).view());
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "purge mailbox"));
  }
  if (finished) {
    cursor.done = true;
    cursor.resume.clear();
  }

  // The writer's index of undelivered incoming rows must not name a row
  // that is gone: it starts over (acks scan until it has caught up).
  if (!doomed.empty()) incoming_.Clear();
  for (const auto& d : doomed) {
    if (auto s = txn.Delete(cf(Cf::kMailbox), MailboxKey(d.user, d.seq)); !s) return s;
    if (d.header.type == EventType::kMessage) {
      const auto& m = d.header.message;
      if (auto s = txn.Delete(cf(Cf::kConvIndex), ConvIndexKey(d.user, m.conv, m.msg_id)); !s) {
        return s;
      }
    }
  }
  // An empty mailbox must not restart at seq 1 after a restart: remember its head.
  for (const auto& [user, seq] : emptied) {
    auto state = TxnUserState(txn, user);
    if (!state) return std::unexpected(state.error());
    state->purged_seq = std::max(state->purged_seq, seq);
    if (auto s = txn.Put(cf(Cf::kUserState), IdKey(user), EncodeUserState(*state)); !s) return s;
  }
  return Ok();
}

Status RocksStore::PurgeMessages(WriteTxn& txn, MsgId floor, PurgeCursor& cursor,
                                 PurgeBudget& budget) {
  struct Doomed {
    MsgId msg_id;
    std::string idem_key;  // "" when the message had no client_msg_id
  };
  std::vector<Doomed> doomed;
  bool finished = false;
  {
    const auto upper = IdKey(floor);
    const rocksdb::Slice upper_slice(upper.bytes.data(), upper.bytes.size());
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    auto it = txn.NewIterator(cf(Cf::kMessages), ro);
    for (it->Seek(cursor.resume);; it->Next()) {
      if (!it->Valid() || it->key().compare(upper_slice) >= 0) {
        finished = true;
        break;
      }
      if (budget.spent()) {
        cursor.resume = it->key().ToString();
        break;
      }
      ++budget.visited;
      auto msg_id = ParseU64Key(it->key().ToStringView());
      if (!msg_id) return Fail(Errc::kCorruption, "malformed message key");
      auto idem = PeekMessageIdem(it->value().ToStringView());
      if (!idem) return std::unexpected(idem.error());
      doomed.push_back({*msg_id, idem->client_msg_id.empty()
                                     ? std::string()
                                     : IdemKey(idem->sender, idem->client_msg_id)});
      ++budget.deleted;
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "purge messages"));
  }
  if (finished) cursor.done = true;
  if (finished && !doomed.empty()) cursor.resume = U64Key(doomed.back().msg_id);

  for (const auto& d : doomed) {
    if (auto s = txn.Delete(cf(Cf::kMessages), IdKey(d.msg_id)); !s) return s;
    messages_.Erase(d.msg_id);
    if (d.idem_key.empty()) continue;
    // Only if it still names this message; a later send may have reused the
    // client_msg_id once this one's key was gone.
    auto value = txn.Get(cf(Cf::kIdem), d.idem_key);
    if (!value) return std::unexpected(value.error());
    if (!*value) continue;
    auto entry = DecodeIdem(**value);
    if (!entry) return std::unexpected(entry.error());
    if (entry->msg_id != d.msg_id) continue;
    if (auto s = txn.Delete(cf(Cf::kIdem), d.idem_key); !s) return s;
  }
  return Ok();
}

Status RocksStore::PurgeReceipts(WriteTxn& txn, MsgId floor, PurgeCursor& cursor,
                                 PurgeBudget& budget) {
  std::vector<std::string> doomed;
  bool finished = false;
  {
    // Receipt keys start with the msg_id: everything below IdKey(floor) is older.
    const auto upper = IdKey(floor);
    const rocksdb::Slice upper_slice(upper.bytes.data(), upper.bytes.size());
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    auto it = txn.NewIterator(cf(Cf::kReceipts), ro);
    for (it->Seek(cursor.resume);; it->Next()) {
      if (!it->Valid() || it->key().compare(upper_slice) >= 0) {
        finished = true;
        break;
      }
      if (budget.spent()) {
        cursor.resume = it->key().ToString();
        break;
      }
      ++budget.visited;
      doomed.push_back(it->key().ToString());
      ++budget.deleted;
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "purge receipts"));
  }
  if (finished) cursor.done = true;
  if (finished && !doomed.empty()) cursor.resume = doomed.back();
  for (const auto& key : doomed) {
    if (auto s = txn.Delete(cf(Cf::kReceipts), key); !s) return s;
  }
  return Ok();
}

Status RocksStore::PurgeExpiredCredentials(WriteTxn& txn, Cf which, std::int64_t now_ms,
                                           PurgeCursor& cursor, PurgeBudget& budget) {
  std::vector<std::string> doomed;
  bool finished = false;
  {
    rocksdb::ReadOptions ro;
    auto it = txn.NewIterator(cf(which), ro);
    for (it->Seek(cursor.resume);; it->Next()) {
      if (!it->Valid()) {
        finished = true;
        break;
      }
      if (budget.spent()) {
        cursor.resume = it->key().ToString();
        break;
      }
      ++budget.visited;
      const auto key = it->key().ToStringView();
      const auto value = it->value().ToStringView();
      std::int64_t expires_ms = 0;
      if (which == Cf::kRefreshTokens) {
        auto token = DecodeRefreshToken(key, value);
        if (!token) return std::unexpected(token.error());
        expires_ms = token->expires_ms;
      } else {
        auto code = DecodeOtp(key, value);
        if (!code) return std::unexpected(code.error());
        expires_ms = code->expires_ms;
      }
      // The same test as RotateRefreshToken's: expired at expires_ms itself.
      if (expires_ms <= now_ms) {
        doomed.emplace_back(key);
        ++budget.deleted;
      }
    }
    if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "purge"));
  }
  if (finished) {
    cursor.done = true;
    cursor.resume.clear();
  }
  for (const auto& key : doomed) {
    if (auto s = txn.Delete(cf(which), key); !s) return s;
  }
  return Ok();
}

}  // namespace parley::store::rocks
