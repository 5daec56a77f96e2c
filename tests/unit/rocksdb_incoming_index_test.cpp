// The RocksDB writer's index of undelivered incoming rows (incoming_index.hpp):
// its bookkeeping across jobs and batches, and that the store's acks use it
// (no mailbox scan) while writing the same receipts, whose events reach the
// wake with the event itself.
#include "store/rocksdb/incoming_index.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/rocksdb/rocksdb_store.hpp"
#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

using rocks::IncomingIndex;

IncomingIndex::Row RowAt(Seq seq, MsgId msg_id = 0) {
  return {.seq = seq, .msg_id = msg_id != 0 ? msg_id : seq * 10, .sender = 7, .conv = UserConv(7)};
}

std::vector<Seq> Collected(const IncomingIndex& index, UserId user, Seq after, Seq up_to,
                           bool* known = nullptr) {
  std::vector<IncomingIndex::Row> rows;
  const bool ok = index.Collect(user, after, up_to, rows);
  if (known != nullptr) *known = ok;
  std::vector<Seq> seqs;
  for (const auto& r : rows) seqs.push_back(r.seq);
  return seqs;
}

TEST(IncomingIndexTest, KnowsOnlyWhatLiesAboveWhereItStarted) {
  IncomingIndex index;
  bool known = true;
  EXPECT_TRUE(Collected(index, 1, 0, 10, &known).empty());
  EXPECT_FALSE(known);  // never seen: scan

  index.Note(1, 4, RowAt(5));
  index.Note(1, 6, RowAt(7));
  index.JobDone(true);
  index.BatchDone(true);
  EXPECT_EQ(Collected(index, 1, 4, 10, &known), (std::vector<Seq>{5, 7}));
  EXPECT_TRUE(known);
  EXPECT_EQ(Collected(index, 1, 5, 6), std::vector<Seq>{});
  EXPECT_EQ(Collected(index, 1, 6, 7), std::vector<Seq>{7});
  Collected(index, 1, 3, 10, &known);
  EXPECT_FALSE(known);  // seq 4 and below were never seen

  index.Track(2, 9);
  EXPECT_TRUE(Collected(index, 2, 9, 20, &known).empty());
  EXPECT_TRUE(known);
  Collected(index, 2, 8, 20, &known);
  EXPECT_FALSE(known);
}

TEST(IncomingIndexTest, RolledBackJobsAndFailedBatchesTakeTheirRowsBack) {
  IncomingIndex index;
  index.Note(1, 0, RowAt(1));
  index.JobDone(true);
  index.Note(1, 1, RowAt(2));
  index.Note(2, 0, RowAt(1));
  index.JobDone(false);  // rolled back
  EXPECT_EQ(Collected(index, 1, 0, 10), std::vector<Seq>{1});
  EXPECT_TRUE(Collected(index, 2, 0, 10).empty());
  index.Note(1, 1, RowAt(2, 99));  // the seq is handed out again
  index.JobDone(true);
  index.BatchDone(true);
  std::vector<IncomingIndex::Row> rows;
  ASSERT_TRUE(index.Collect(1, 0, 10, rows));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].msg_id, 99u);

  index.Note(1, 2, RowAt(3));
  index.JobDone(true);
  index.BatchDone(false);  // its seqs may be reused: nothing is vouched for
  bool known = true;
  Collected(index, 1, 0, 10, &known);
  EXPECT_FALSE(known);
}

TEST(IncomingIndexTest, DeliveredRowsLeaveOnlyOnceTheirBatchCommitted) {
  IncomingIndex index;
  for (Seq s = 1; s <= 4; ++s) index.Note(1, s - 1, RowAt(s));
  index.JobDone(true);
  index.BatchDone(true);

  index.Delivered(1, 2);
  index.JobDone(false);  // that ack was rolled back
  index.BatchDone(true);
  EXPECT_EQ(Collected(index, 1, 0, 10), (std::vector<Seq>{1, 2, 3, 4}));

  index.Delivered(1, 2);
  index.JobDone(true);
  EXPECT_EQ(Collected(index, 1, 0, 10), (std::vector<Seq>{1, 2, 3, 4}));  // not committed yet
  index.BatchDone(false);
  index.Note(1, 0, RowAt(1));  // after a failed batch it starts over
  index.JobDone(true);
  index.Delivered(1, 0);
  index.JobDone(true);
  index.BatchDone(true);
  EXPECT_EQ(Collected(index, 1, 0, 10), std::vector<Seq>{1});

  for (Seq s = 2; s <= 4; ++s) index.Note(1, s - 1, RowAt(s));
  index.Delivered(1, 3);
  index.JobDone(true);
  index.BatchDone(true);
  EXPECT_EQ(Collected(index, 1, 3, 10), std::vector<Seq>{4});
}

TEST(IncomingIndexTest, AUserPastTheBoundForgetsItsOldestRows) {
  IncomingIndex index;
  const Seq n = IncomingIndex::kMaxRowsPerUser + 10;
  for (Seq s = 1; s <= n; ++s) index.Note(1, s - 1, RowAt(s));
  index.JobDone(true);
  index.BatchDone(true);
  bool known = true;
  Collected(index, 1, 0, n, &known);
  EXPECT_FALSE(known);
  EXPECT_EQ(Collected(index, 1, 10, 12, &known), (std::vector<Seq>{11, 12}));
  EXPECT_TRUE(known);
}

// ---- The store's acks ------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/parley-incoming-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(RocksAckTest, AcksAfterTheFirstFindTheirMessagesWithoutAScan) {
  TempDir dir;
  auto scans = std::make_shared<std::atomic<int>>(0);
  auto opened =
      OpenRocksStore({.path = dir.path() + "/db", .observer = [scans](std::string_view op, double) {
                        if (op == "ack_scan") scans->fetch_add(1);
                      }});
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  Store& store = **opened;
  SignUpCast(store);

  auto m1 = SendText(store, kAlice, kBob, "m1");  // bob 1
  // The send started bob's entry: its first ack already needs no scan.
  auto first = Ack(store, kBob, kBobPhone, 1).value();
  EXPECT_EQ(scans->load(), 0);
  ASSERT_EQ(first.appended.size(), 1u);

  auto m2 = SendText(store, kAlice, kBob, "m2");  // bob 2
  SendText(store, kBob, kAlice, "own");           // bob 3 (outgoing)
  auto m3 = SendText(store, kCarol, kBob, "m3");  // bob 4
  auto acked = Ack(store, kBob, kBobPhone, 4, kNow + 5).value();
  EXPECT_EQ(scans->load(), 0);  // from the writer's index
  ASSERT_EQ(acked.appended.size(), 2u);
  // The receipt events come with the wake: sessions need not read them back.
  for (const auto& a : acked.appended) {
    ASSERT_NE(a.event, nullptr);
    EXPECT_EQ(a.event->seq, a.seq);
    EXPECT_EQ(a.event->type, EventType::kReceipt);
    EXPECT_EQ(a.event->by, kBob);
    auto stored = store.ReadMailbox(a.user, a.seq - 1, 1).value();
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(stored[0].msg_ids, a.event->msg_ids);
    EXPECT_EQ(stored[0].conv, a.event->conv);
  }
  EXPECT_EQ(acked.appended[0].event->msg_ids, std::vector<MsgId>{m2.msg_id});
  EXPECT_EQ(acked.appended[1].event->msg_ids, std::vector<MsgId>{m3.msg_id});
  EXPECT_EQ(store.GetReceipts(m2.msg_id).value().delivered.size(), 1u);
  EXPECT_EQ(store.GetReceipts(m1.msg_id).value().delivered.size(), 1u);

  // The other device acking the same rows writes nothing again.
  EXPECT_TRUE(Ack(store, kBob, kBobLaptop, 4).value().appended.empty());
  EXPECT_EQ(scans->load(), 0);
}

// A store opened again knows nothing: its first ack scans, and one that
// covers rows from before the restart still finds them.
TEST(RocksAckTest, AfterARestartTheFirstAckScans) {
  TempDir dir;
  auto scans = std::make_shared<std::atomic<int>>(0);
  auto observer = [scans](std::string_view op, double) {
    if (op == "ack_scan") scans->fetch_add(1);
  };
  MsgId m1 = 0;
  {
    auto opened = OpenRocksStore({.path = dir.path() + "/db", .observer = observer});
    ASSERT_TRUE(opened.has_value()) << opened.error().message;
    SignUpCast(**opened);
    m1 = SendText(**opened, kAlice, kBob, "m1").msg_id;  // bob 1
  }
  auto opened = OpenRocksStore({.path = dir.path() + "/db", .observer = observer});
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  auto m2 = SendText(**opened, kAlice, kBob, "m2");  // bob 2: noted, but 1 is not known
  auto acked = Ack(**opened, kBob, kBobPhone, 2).value();
  EXPECT_EQ(scans->load(), 1);
  ASSERT_EQ(acked.appended.size(), 1u);
  ASSERT_NE(acked.appended[0].event, nullptr);
  EXPECT_EQ(acked.appended[0].event->msg_ids, (std::vector<MsgId>{m1, m2.msg_id}));
}

}  // namespace
}  // namespace parley::store::testing
