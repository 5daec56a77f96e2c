// The retention half of the store contract (Store::Purge), run against every
// backend that instantiates StoreMessagingContractTest (see store_contract.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

// ---- Retention -------------------------------------------------------------------

class Retention {
 public:
  static constexpr std::int64_t kOld = kNow - 10 * kDay;
  static constexpr std::int64_t kNew = kNow + kDay;

  // Old and new rows of every kind, and how many of them are old.
  explicit Retention(Store& s) : s_(s) {
    SignUpCast(s, kYear2100);
    for (int i = 0; i < 3; ++i) {
      old_ids.push_back(SendAt(kAlice, kBob, "old" + std::to_string(i), kOld + i));
    }
    // Bob's ack at an old time: a delivered receipt row in Alice's mailbox,
    // and three receipt records.
    EXPECT_TRUE(Ack(s, kBob, kBobPhone, 3, kOld + 10));
    // Carol's whole mailbox is old.
    SendAt(kAlice, kCarol, "old-c", kOld + 20);
    EXPECT_TRUE(AppendEvents(s, {kCarol}, EventType::kKeysChanged, "{}", kOld + 21));
    for (int i = 0; i < 2; ++i) {
      new_ids.push_back(SendAt(kAlice, kBob, "new" + std::to_string(i), kNew + i));
    }
    // An expired refresh token (the replacement) next to a live one (the
    // used original, kept until 2100), an expired code and a live one.
    EXPECT_EQ(Rotate(s, "tok-alice", Replacement("tok-expired", 1000)).value().outcome,
              RotateResult::Outcome::kRotated);
    EXPECT_TRUE(PutOtp(s, OtpCode{.phone = "+15559000001", .code_hash = "h", .expires_ms = 1000}));
    EXPECT_TRUE(
        PutOtp(s, OtpCode{.phone = "+15559000002", .code_hash = "h", .expires_ms = kYear2100}));
  }

  // Mailbox rows: Alice 3 sent + 1 receipt + 1 sent to Carol, Bob 3,
  // Carol 2; messages 4; receipts 3; one token; one code.
  static constexpr std::size_t kOldRows = (5 + 3 + 2) + 4 + 3 + 1 + 1;

  std::vector<MsgId> old_ids, new_ids;

 private:
  MsgId SendAt(UserId from, UserId to, const std::string& cmid, std::int64_t ts) {
    Message m = Text(from, UserConv(to), cmid, 1, IdFloorForTime(ts) + next_++, ts);
    EXPECT_TRUE(Send(s_, m, {to}));
    return m.msg_id;
  }

  Store& s_;
  std::uint64_t next_ = 1;
};

TEST_P(StoreMessagingContractTest, PurgeDeletesOldRowsAndKeepsNewOnes) {
  Retention data(store());
  ASSERT_EQ(store().HeadSeq(kAlice).value(), 7u);
  ASSERT_EQ(store().HeadSeq(kBob).value(), 5u);
  ASSERT_EQ(store().HeadSeq(kCarol).value(), 2u);

  EXPECT_EQ(Purge(store(), kNow, 1000).value(), Retention::kOldRows);

  EXPECT_EQ(Seqs(store().ReadMailbox(kAlice, 0, 100).value()), (std::vector<Seq>{6, 7}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kBob, 0, 100).value()), (std::vector<Seq>{4, 5}));
  EXPECT_TRUE(store().ReadMailbox(kCarol, 0, 100).value().empty());
  for (MsgId id : data.old_ids) {
    EXPECT_EQ(store().GetMessage(id).value(), std::nullopt);
    EXPECT_TRUE(store().GetReceipts(id).value().delivered.empty());
  }
  for (MsgId id : data.new_ids) EXPECT_TRUE(store().GetMessage(id).value().has_value());
  EXPECT_EQ(Ids(store().History(kBob, UserConv(kAlice), 0, 100).value()),
            (std::vector<MsgId>{data.new_ids[1], data.new_ids[0]}));
  EXPECT_EQ(Ids(store().History(kAlice, UserConv(kBob), 0, 100).value()),
            (std::vector<MsgId>{data.new_ids[1], data.new_ids[0]}));
  EXPECT_TRUE(store().History(kCarol, UserConv(kAlice), 0, 100).value().empty());
  EXPECT_EQ(store().GetRefreshToken("tok-expired").value(), std::nullopt);
  EXPECT_TRUE(store().GetRefreshToken("tok-alice").value().has_value());
  EXPECT_EQ(store().GetOtp("+15559000001").value(), std::nullopt);
  EXPECT_TRUE(store().GetOtp("+15559000002").value().has_value());

  // Heads never go back, also for an emptied mailbox.
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 7u);
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 2u);
  // An old message's idempotency key went with it; a new one's stayed.
  EXPECT_FALSE(Send(store(), Text(kAlice, UserConv(kBob), "old0"), {kBob}).value().duplicate);
  EXPECT_TRUE(Send(store(), Text(kAlice, UserConv(kBob), "new0"), {kBob}).value().duplicate);

  EXPECT_EQ(Purge(store(), kNow, 1000).value(), 0u);
}

TEST_P(StoreMessagingContractTest, PurgeInSmallBatchesMakesProgress) {
  Retention data(store());
  std::size_t total = 0;
  std::vector<std::size_t> answers;
  for (int i = 0; i < 100; ++i) {
    auto n = Purge(store(), kNow, 4).value();
    answers.push_back(n);
    total += n;
    if (n < 4) break;
  }
  EXPECT_EQ(total, Retention::kOldRows);
  ASSERT_FALSE(answers.empty());
  EXPECT_LT(answers.back(), 4u);
  for (std::size_t i = 0; i + 1 < answers.size(); ++i) EXPECT_EQ(answers[i], 4u);
  EXPECT_EQ(Seqs(store().ReadMailbox(kBob, 0, 100).value()), (std::vector<Seq>{4, 5}));
  EXPECT_EQ(Purge(store(), kNow, 0).value(), 0u);
}

TEST_P(StoreMessagingContractTest, PurgedMailboxKeepsCountingAfterReopen) {
  Retention data(store());
  ASSERT_TRUE(Purge(store(), kNow, 1000));
  Reopen();
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 2u);
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 7u);
  auto r = SendText(store(), kAlice, kCarol, "after");
  EXPECT_EQ(Where(r.appended), (Rows{{kCarol, 3u}, {kAlice, 8u}}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kCarol, 0, 100).value()), (std::vector<Seq>{3}));
}

}  // namespace
}  // namespace parley::store::testing
