// One batch (one group commit) mixing many users and every kind of
// messaging row: sends (with a duplicate inside the batch and the same pair
// twice), acks of committed rows and of a row sent earlier in the same
// batch, two acks of one device, a failing job in the middle, a mark-read,
// appended events and a note to self. Run against every backend (the
// StoreMessagingContractTest instantiations): the PostgreSQL writer gathers
// these rows and sends them set-based (src/store/postgres/pg_bulk.hpp), and
// the result must be exactly what one-by-one writes give.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

constexpr UserId kDave = 1004;
constexpr UserId kErin = 1005;
constexpr DeviceId kDavePhone = 2004;
constexpr DeviceId kErinPhone = 2005;

std::vector<Seq> Dense(Seq n) {
  std::vector<Seq> seqs;
  for (Seq s = 1; s <= n; ++s) seqs.push_back(s);
  return seqs;
}

bool Has(const std::vector<ReceiptEntry>& entries, UserId user) {
  return std::any_of(entries.begin(), entries.end(),
                     [&](const ReceiptEntry& e) { return e.user == user; });
}

TEST_P(StoreMessagingContractTest, MixedBatchGivesWhatOneByOneWritesGive) {
  SignUpCast(store());
  ASSERT_TRUE(PutOtp(store(), Code("+15551000004")));
  ASSERT_TRUE(SignIn(store(), Request("+15551000004", kDave, kDavePhone, "tok-dave")).has_value());
  ASSERT_TRUE(PutOtp(store(), Code("+15551000005")));
  ASSERT_TRUE(SignIn(store(), Request("+15551000005", kErin, kErinPhone, "tok-erin")).has_value());

  // Committed before the batch.
  auto p1 = SendText(store(), kAlice, kBob, "p1");  // alice 1, bob 1
  auto p2 = SendText(store(), kCarol, kBob, "p2");  // carol 1, bob 2
  auto p3 = SendText(store(), kBob, kDave, "p3");   // dave 1, bob 3

  Pending<SendResult> b1, b2, dup, b3, b4, note;
  Pending<AckResult> ack_committed, ack_in_batch, ack_laptop, ack_bad, ack_dave;
  Pending<std::vector<Appended>> read, events;
  Message b1_msg = Text(kAlice, UserConv(kBob), "b1");
  {
    WriterHold hold(store());
    store().AppendMessage(b1_msg, {kBob}, b1.callback());  // bob 4, alice 2
    store().AppendMessage(Text(kDave, UserConv(kErin), "b2"), {kErin},
                          b2.callback());                             // erin 1, dave 2
    store().Ack(kBob, kBobPhone, 2, kNow, ack_committed.callback());  // receipts: alice 3, carol 2
    store().AppendMessage(Text(kAlice, UserConv(kBob), "b1"), {kBob}, dup.callback());
    store().Ack(kBob, kBobPhone, 4, kNow, ack_in_batch.callback());  // b1's receipt: alice 4
    store().Ack(kBob, kBobLaptop, 1, kNow, ack_laptop.callback());
    store().Ack(kErin, kErinPhone, 5, kNow, ack_bad.callback());  // beyond erin's head: fails
    store().AppendMessage(Text(kBob, UserConv(kAlice), "b3"), {kAlice},
                          b3.callback());  // alice 5, bob 5
    store().AppendMessage(Text(kAlice, UserConv(kBob), "b4"), {kBob},
                          b4.callback());  // bob 6, alice 6
    store().MarkRead(kBob, UserConv(kAlice), b1_msg.msg_id, kNow,
                     read.callback());  // alice 7, bob 7
    store().AppendEvents({kCarol, kErin}, EventType::kKeysChanged, R"({"k":1})", kNow,
                         events.callback());  // carol 3, erin 2
    store().AppendMessage(Text(kErin, UserConv(kErin), "n", 0), {}, note.callback());  // erin 3
    store().Ack(kDave, kDavePhone, 1, kNow, ack_dave.callback());  // p3's receipt: bob 8
  }

  EXPECT_EQ(Where(b1.Get().value().appended), (Rows{{kBob, 4u}, {kAlice, 2u}}));
  EXPECT_EQ(Where(b2.Get().value().appended), (Rows{{kErin, 1u}, {kDave, 2u}}));
  auto committed = ack_committed.Get().value();
  EXPECT_EQ(committed.cursor, 2u);
  EXPECT_EQ(Where(committed.appended), (Rows{{kAlice, 3u}, {kCarol, 2u}}));
  auto d = dup.Get().value();
  EXPECT_TRUE(d.duplicate);
  EXPECT_EQ(d.msg_id, b1_msg.msg_id);
  EXPECT_EQ(d.seq, 2u);
  auto in_batch = ack_in_batch.Get().value();
  EXPECT_EQ(in_batch.cursor, 4u);
  EXPECT_EQ(Where(in_batch.appended), (Rows{{kAlice, 4u}}));
  EXPECT_EQ(ack_laptop.Get().value().cursor, 1u);
  EXPECT_EQ(ack_bad.Get().error().code, Errc::kInvalid);
  EXPECT_EQ(Where(b3.Get().value().appended), (Rows{{kAlice, 5u}, {kBob, 5u}}));
  EXPECT_EQ(Where(b4.Get().value().appended), (Rows{{kBob, 6u}, {kAlice, 6u}}));
  EXPECT_EQ(Where(read.Get().value()), (Rows{{kAlice, 7u}, {kBob, 7u}}));
  EXPECT_EQ(Where(events.Get().value()), (Rows{{kCarol, 3u}, {kErin, 2u}}));
  EXPECT_EQ(Where(note.Get().value().appended), (Rows{{kErin, 3u}}));
  EXPECT_EQ(Where(ack_dave.Get().value().appended), (Rows{{kBob, 8u}}));

  // Every mailbox dense, with the rows the answers named.
  const std::vector<std::pair<UserId, Seq>> heads = {
      {kAlice, 7}, {kBob, 8}, {kCarol, 3}, {kDave, 2}, {kErin, 3}};
  for (const auto& [user, head] : heads) {
    EXPECT_EQ(store().HeadSeq(user).value(), head) << user;
    EXPECT_EQ(Seqs(store().ReadMailbox(user, 0, 100).value()), Dense(head)) << user;
  }
  auto alice = store().ReadMailbox(kAlice, 0, 100).value();
  ASSERT_EQ(alice.size(), 7u);
  EXPECT_EQ(alice[1].msg_id, b1_msg.msg_id);
  EXPECT_TRUE(alice[1].outgoing);
  EXPECT_EQ(alice[2].type, EventType::kReceipt);
  EXPECT_EQ(alice[2].status, ReceiptStatus::kDelivered);
  EXPECT_EQ(alice[2].msg_ids, std::vector<MsgId>{p1.msg_id});
  EXPECT_EQ(alice[3].type, EventType::kReceipt);
  EXPECT_EQ(alice[3].msg_ids, std::vector<MsgId>{b1_msg.msg_id});
  EXPECT_EQ(alice[3].conv, UserConv(kBob));
  EXPECT_FALSE(alice[4].outgoing);
  ASSERT_NE(alice[4].message, nullptr);
  EXPECT_EQ(alice[4].message->client_msg_id, "b3");
  EXPECT_EQ(alice[6].type, EventType::kReceipt);
  EXPECT_EQ(alice[6].status, ReceiptStatus::kRead);
  EXPECT_EQ(alice[6].msg_ids, (std::vector<MsgId>{p1.msg_id, b1_msg.msg_id}));
  auto bob = store().ReadMailbox(kBob, 0, 100).value();
  ASSERT_EQ(bob.size(), 8u);
  ASSERT_NE(bob[3].message, nullptr);
  EXPECT_EQ(bob[3].message->body, b1_msg.body);
  EXPECT_EQ(bob[6].type, EventType::kReadSync);
  EXPECT_EQ(bob[7].type, EventType::kReceipt);
  EXPECT_EQ(bob[7].by, kDave);
  EXPECT_EQ(bob[7].msg_ids, std::vector<MsgId>{p3.msg_id});
  auto carol = store().ReadMailbox(kCarol, 0, 100).value();
  ASSERT_EQ(carol.size(), 3u);
  EXPECT_EQ(carol[1].msg_ids, std::vector<MsgId>{p2.msg_id});
  EXPECT_EQ(carol[2].type, EventType::kKeysChanged);
  EXPECT_EQ(carol[2].payload, R"({"k":1})");
  auto erin = store().ReadMailbox(kErin, 0, 100).value();
  ASSERT_EQ(erin.size(), 3u);
  EXPECT_EQ(erin[1].payload, R"({"k":1})");
  EXPECT_TRUE(erin[2].outgoing);

  // Cursors: the later ack of one device wins; the failed ack moved nothing.
  EXPECT_EQ(store().GetCursor(kBob, kBobPhone).value(), 4u);
  EXPECT_EQ(store().GetCursor(kBob, kBobLaptop).value(), 1u);
  EXPECT_EQ(store().GetCursor(kErin, kErinPhone).value(), 0u);
  EXPECT_EQ(store().GetCursor(kDave, kDavePhone).value(), 1u);

  // Receipts, once per message.
  auto r1 = store().GetReceipts(p1.msg_id).value();
  EXPECT_TRUE(Has(r1.delivered, kBob));
  EXPECT_TRUE(Has(r1.read, kBob));
  auto rb1 = store().GetReceipts(b1_msg.msg_id).value();
  EXPECT_EQ(rb1.delivered.size(), 1u);
  EXPECT_TRUE(Has(rb1.read, kBob));
  auto r2 = store().GetReceipts(p2.msg_id).value();
  EXPECT_TRUE(Has(r2.delivered, kBob));
  EXPECT_TRUE(r2.read.empty());
  EXPECT_TRUE(Has(store().GetReceipts(p3.msg_id).value().delivered, kDave));

  // The peers index, with the same pair written twice in the batch.
  EXPECT_TRUE(store().HasWrittenTo(kAlice, kBob).value());
  EXPECT_TRUE(store().HasWrittenTo(kBob, kAlice).value());
  EXPECT_TRUE(store().HasWrittenTo(kDave, kErin).value());
  EXPECT_FALSE(store().HasWrittenTo(kErin, kDave).value());
  auto contacts = store().ListContacts(kErin).value();
  EXPECT_NE(std::find(contacts.begin(), contacts.end(), kDave), contacts.end());

  // The duplicate stored nothing; a retry after the batch is still one.
  auto again = Send(store(), Text(kAlice, UserConv(kBob), "b4"), {kBob}).value();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(store().HeadSeq(kBob).value(), 8u);
}

// Acks in one batch read what the batch did before them: a device removed
// earlier in the batch cannot ack (nor bring its cursor back), and a
// second ack of a mailbox receipts only what the first did not.
TEST_P(StoreMessagingContractTest, AcksInABatchSeeTheBatchBeforeThem) {
  SignUpCast(store());
  auto m1 = SendText(store(), kAlice, kBob, "m1");  // bob 1
  auto m2 = SendText(store(), kCarol, kBob, "m2");  // bob 2
  auto m3 = SendText(store(), kAlice, kBob, "m3");  // bob 3

  Pending<AckResult> first, second, laptop_before, laptop_after;
  Pending<RemoveDeviceResult> removed;
  {
    WriterHold hold(store());
    store().Ack(kBob, kBobLaptop, 1, kNow, laptop_before.callback());  // m1's receipt
    store().Ack(kBob, kBobPhone, 1, kNow, first.callback());           // none: sent already
    store().RemoveDevice(kBob, kBobLaptop, kNow, {}, removed.callback());
    store().Ack(kBob, kBobLaptop, 3, kNow, laptop_after.callback());
    store().Ack(kBob, kBobPhone, 3, kNow, second.callback());  // m2's and m3's receipts
  }
  auto before = laptop_before.Get().value();
  EXPECT_EQ(before.cursor, 1u);
  ASSERT_EQ(before.appended.size(), 1u);
  EXPECT_EQ(before.appended[0].user, kAlice);
  EXPECT_TRUE(removed.Get().value().removed);
  EXPECT_EQ(laptop_after.Get().error().code, Errc::kNotFound);
  auto f = first.Get().value();
  EXPECT_EQ(f.cursor, 1u);
  EXPECT_TRUE(f.appended.empty());
  auto s = second.Get().value();
  EXPECT_EQ(s.cursor, 3u);
  std::vector<UserId> receipted;
  for (const auto& a : s.appended) receipted.push_back(a.user);
  std::sort(receipted.begin(), receipted.end());
  EXPECT_EQ(receipted, (std::vector<UserId>{kAlice, kCarol}));

  // Alice has one receipt per ack, each naming only its own messages.
  std::vector<std::vector<MsgId>> alice_receipts;
  const auto alice = store().ReadMailbox(kAlice, 0, 100).value();
  for (const auto& e : alice) {
    if (e.type == EventType::kReceipt) alice_receipts.push_back(e.msg_ids);
  }
  EXPECT_EQ(alice_receipts, (std::vector<std::vector<MsgId>>{{m1.msg_id}, {m3.msg_id}}));
  EXPECT_EQ(store().GetReceipts(m2.msg_id).value().delivered.size(), 1u);
  EXPECT_EQ(store().GetCursor(kBob, kBobPhone).value(), 3u);
  // The removed device's cursor did not come back.
  EXPECT_EQ(store().GetCursor(kBob, kBobLaptop).value(), 0u);
}

}  // namespace
}  // namespace parley::store::testing
