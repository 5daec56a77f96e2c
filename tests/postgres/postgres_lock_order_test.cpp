// Two nodes' writers on one database, each locking users the other also
// locks, in opposite orders: the receipts of an ack and of a read go to
// senders found only while the job runs, so node A (acking for the higher
// user of each pair) finds the lower one mid-job while node B (acking for
// the lower) finds the higher. Without the lock order of pg_writer.hpp
// these batches deadlock and PostgreSQL fails one of them; with it every
// write succeeds and every mailbox stays dense.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/postgres/postgres_store.hpp"
#include "support/postgres.hpp"
#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

constexpr int kPairs = 24;
constexpr int kRounds = 6;

UserId Low(int i) { return 5000 + static_cast<UserId>(i); }
UserId High(int i) { return 9000 + static_cast<UserId>(i); }
DeviceId DeviceOf(UserId u) { return u + 100000; }

// Waits for a number of callbacks and counts the failures.
class Outcomes {
 public:
  template <class T>
  Callback<T> Track() {
    {
      std::lock_guard lock(mu_);
      ++pending_;
    }
    return [this](Result<T> r) {
      std::lock_guard lock(mu_);
      if (!r) {
        ++failed_;
        if (first_error_.empty()) first_error_ = r.error().message;
      }
      if (--pending_ == 0) cv_.notify_all();
    };
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return pending_ == 0; });
  }
  int failed() const { return failed_; }
  const std::string& first_error() const { return first_error_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
  int failed_ = 0;
  std::string first_error_;
};

TEST(PostgresLockOrder, TwoNodesLockingOverlappingUsersInOppositeOrdersNeverDeadlock) {
  const std::string url =
      test::SharedPostgres().CreateDatabase("lockorder" + std::to_string(getpid()));
  auto a = OpenPostgresStore({.url = url, .readers = 1});
  ASSERT_TRUE(a.has_value()) << a.error().message;
  auto b = OpenPostgresStore({.url = url, .readers = 1});
  ASSERT_TRUE(b.has_value()) << b.error().message;
  Store& node_a = **a;
  Store& node_b = **b;
  for (int i = 0; i < kPairs; ++i) {
    for (UserId u : {Low(i), High(i)}) {
      SignUp(node_a, "+1555" + std::to_string(u), u, DeviceOf(u), "tok" + std::to_string(u));
    }
  }

  int failed = 0;
  std::string first_error;
  for (int round = 0; round < kRounds; ++round) {
    // Each pair writes to each other (node A sends; its batch locks in order).
    std::vector<MsgId> to_high(kPairs), to_low(kPairs);
    {
      Outcomes sends;
      for (int i = 0; i < kPairs; ++i) {
        const std::string id = std::to_string(round) + "-" + std::to_string(i);
        Message up = Text(Low(i), UserConv(High(i)), "u" + id);
        Message down = Text(High(i), UserConv(Low(i)), "d" + id);
        to_high[static_cast<std::size_t>(i)] = up.msg_id;
        to_low[static_cast<std::size_t>(i)] = down.msg_id;
        node_a.AppendMessage(up, {High(i)}, sends.Track<SendResult>());
        node_a.AppendMessage(down, {Low(i)}, sends.Track<SendResult>());
      }
      sends.Wait();
      ASSERT_EQ(sends.failed(), 0) << sends.first_error();
    }
    // Node A acks and reads for the higher user of each pair, node B for the
    // lower, at the same time: each job locks its own user (hint), then the
    // sender it finds in the mailbox.
    Outcomes acks;
    std::thread ta([&] {
      for (int i = 0; i < kPairs; ++i) {
        auto head = node_a.HeadSeq(High(i));
        ASSERT_TRUE(head.has_value());
        node_a.Ack(High(i), DeviceOf(High(i)), *head, kNow, acks.Track<AckResult>());
        node_a.MarkRead(High(i), UserConv(Low(i)), to_high[static_cast<std::size_t>(i)], kNow,
                        acks.Track<std::vector<Appended>>());
      }
    });
    std::thread tb([&] {
      for (int i = kPairs - 1; i >= 0; --i) {
        auto head = node_b.HeadSeq(Low(i));
        ASSERT_TRUE(head.has_value());
        node_b.Ack(Low(i), DeviceOf(Low(i)), *head, kNow, acks.Track<AckResult>());
        node_b.MarkRead(Low(i), UserConv(High(i)), to_low[static_cast<std::size_t>(i)], kNow,
                        acks.Track<std::vector<Appended>>());
      }
    });
    ta.join();
    tb.join();
    acks.Wait();
    failed += acks.failed();
    if (first_error.empty()) first_error = acks.first_error();
  }
  EXPECT_EQ(failed, 0) << "first failure: " << first_error;

  // Every receipt landed, and every mailbox is dense: seqs 1..head, no gap.
  for (int i = 0; i < kPairs; ++i) {
    for (UserId u : {Low(i), High(i)}) {
      auto head = node_b.HeadSeq(u);
      ASSERT_TRUE(head.has_value());
      auto events = node_b.ReadMailbox(u, 0, 10000);
      ASSERT_TRUE(events.has_value());
      ASSERT_EQ(events->size(), *head) << "user " << u;
      for (std::size_t k = 0; k < events->size(); ++k) {
        ASSERT_EQ((*events)[k].seq, k + 1) << "user " << u;
      }
      std::size_t receipts = 0;
      for (const auto& e : *events) receipts += e.type == EventType::kReceipt ? 1 : 0;
      // Each round: a delivered and a read receipt from the peer.
      EXPECT_EQ(receipts, 2u * kRounds) << "user " << u;
    }
  }
  node_a.Close();
  node_b.Close();
}

// Another node's batch holding a head (here: an open transaction of our
// own, which `hold` makes hold the row) must not hold up the jobs of this
// node's batch that do not touch that head: the job that does goes to a
// later batch (pg_writer.hpp, "Heads held by another node are not waited
// for"). Before, the whole batch waited at BEGIN for the lock, up to
// lock_timeout (2 s).
void HeldHeadHoldsUpOnlyTheJobsThatNeedIt(const std::string& name, const char* hold) {
  const std::string url = test::SharedPostgres().CreateDatabase(name + std::to_string(getpid()));
  auto opened = OpenPostgresStore({.url = url, .readers = 1});
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  Store& store = **opened;
  const UserId held = 7001, a = 7002, b = 7003, c = 7004;
  for (UserId u : {held, a, b, c}) {
    SignUp(store, "+1555" + std::to_string(u), u, DeviceOf(u), "tok" + std::to_string(u));
  }
  PGconn* other = PQconnectdb(url.c_str());
  ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
  auto exec = [&](const char* sql) {
    PGresult* r = PQexec(other, sql);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    EXPECT_TRUE(ok) << sql << ": " << PQerrorMessage(other);
    PQclear(r);
  };
  exec("INSERT INTO mailbox_head (user_id) VALUES (7001) ON CONFLICT DO NOTHING");
  exec("BEGIN");
  exec(hold);

  std::promise<Result<SendResult>> to_held, free;
  store.AppendMessage(Text(a, UserConv(held), "to-held"), {held},
                      [&](Result<SendResult> r) { to_held.set_value(std::move(r)); });
  store.AppendMessage(Text(b, UserConv(c), "free"), {c},
                      [&](Result<SendResult> r) { free.set_value(std::move(r)); });
  auto free_done = free.get_future();
  auto held_done = to_held.get_future();
  // Well under lock_timeout: the free send did not wait for the lock.
  ASSERT_EQ(free_done.wait_for(std::chrono::milliseconds(1500)), std::future_status::ready);
  auto free_result = free_done.get();
  ASSERT_TRUE(free_result.has_value()) << free_result.error().message;
  EXPECT_EQ(free_result->seq, store.HeadSeq(b).value());
  // The other one needs the held head: it waits for it.
  EXPECT_EQ(held_done.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);

  exec("COMMIT");
  ASSERT_EQ(held_done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto held_result = held_done.get();
  ASSERT_TRUE(held_result.has_value()) << held_result.error().message;
  // Dense: the held user's mailbox gained exactly the one row, after the rest.
  auto events = store.ReadMailbox(held, 0, 100).value();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().seq, store.HeadSeq(held).value());
  EXPECT_EQ(events.back().seq, events.size());
  PQfinish(other);
  store.Close();
}

TEST(PostgresLockOrder, AHeadLockedElsewhereHoldsUpOnlyTheJobsThatNeedIt) {
  HeldHeadHoldsUpOnlyTheJobsThatNeedIt(
      "heldhead", "SELECT 1 FROM mailbox_head WHERE user_id = 7001 FOR UPDATE");
}

// What another node's batch does between its heads' UPDATE and its COMMIT.
// The heads' INSERT ... ON CONFLICT DO NOTHING used to wait for such a
// transaction (its conflict check waits for an uncommitted update of the
// row), whichever jobs the batch held.
TEST(PostgresLockOrder, AHeadUpdatedElsewhereHoldsUpOnlyTheJobsThatNeedIt) {
  HeldHeadHoldsUpOnlyTheJobsThatNeedIt("updatedhead",
                                       "UPDATE mailbox_head SET head = head WHERE user_id = 7001");
}

}  // namespace
}  // namespace parley::store::testing
