// The messaging half of the store contract (src/store/store.hpp: mailboxes,
// messages, cursors, receipts), run against every backend that instantiates
// StoreMessagingContractTest (see store_contract.hpp). Retention is in
// store_retention_contract_test.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "unit/store_messaging_contract.hpp"

namespace parley::store::testing {
namespace {

// ---- Reads of nothing ----------------------------------------------------------

TEST_P(StoreMessagingContractTest, ReadsOfEmptyMailboxes) {
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 0u);
  EXPECT_TRUE(store().ReadMailbox(kAlice, 0, 100).value().empty());
  EXPECT_EQ(store().GetCursor(kAlice, kAlicePhone).value(), 0u);
  EXPECT_EQ(store().GetMessage(12345).value(), std::nullopt);
  EXPECT_TRUE(store().History(kAlice, UserConv(kBob), 0, 50).value().empty());
  auto receipts = store().GetReceipts(12345).value();
  EXPECT_TRUE(receipts.delivered.empty());
  EXPECT_TRUE(receipts.read.empty());
}

TEST_P(StoreMessagingContractTest, HeadSeqsAnswersEveryUserInTheOrderAsked) {
  EXPECT_TRUE(store().HeadSeqs({}).value().empty());
  SignUpCast(store());
  ASSERT_TRUE(Send(store(), Text(kAlice, UserConv(kBob), "c-1"), {kBob}));
  ASSERT_TRUE(Send(store(), Text(kAlice, UserConv(kBob), "c-2"), {kBob}));
  ASSERT_TRUE(Send(store(), Text(kBob, UserConv(kBob), "c-3"), {}));  // a note to self
  const std::vector<UserId> asked = {kBob, 987654321, kAlice, kBob};
  const std::vector<Seq> expected = {store().HeadSeq(kBob).value(), 0,
                                     store().HeadSeq(kAlice).value(),
                                     store().HeadSeq(kBob).value()};
  EXPECT_EQ(expected, (std::vector<Seq>{3, 0, 2, 3}));
  EXPECT_EQ(store().HeadSeqs(asked).value(), expected);
}

// ---- Sending -------------------------------------------------------------------

TEST_P(StoreMessagingContractTest, SendStoresBodyOnceAndAppendsToBothMailboxes) {
  SignUpCast(store());
  Message sent = Text(kAlice, UserConv(kBob), "c-1");
  sent.media_id = "777";
  auto r = Send(store(), sent, {kBob}).value();
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(r.msg_id, sent.msg_id);
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.ts_ms, kNow);
  EXPECT_EQ(Where(r.appended), (Rows{{kBob, 1u}, {kAlice, 1u}}));
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
  EXPECT_EQ(store().HeadSeq(kBob).value(), 1u);

  auto m = store().GetMessage(sent.msg_id).value();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->msg_id, sent.msg_id);
  EXPECT_EQ(m->sender, kAlice);
  EXPECT_EQ(m->sender_device, sent.sender_device);
  EXPECT_EQ(m->to, UserConv(kBob));
  EXPECT_EQ(m->client_msg_id, "c-1");
  EXPECT_EQ(m->kind, "text");
  EXPECT_EQ(m->body, sent.body);
  EXPECT_EQ(m->media_id, "777");
  EXPECT_EQ(m->ts_ms, kNow);
  EXPECT_EQ(m->recipients, 1u);

  auto bob = store().ReadMailbox(kBob, 0, 10).value();
  ASSERT_EQ(bob.size(), 1u);
  EXPECT_EQ(bob[0].seq, 1u);
  EXPECT_EQ(bob[0].type, EventType::kMessage);
  EXPECT_EQ(bob[0].ts_ms, kNow);
  EXPECT_EQ(bob[0].msg_id, sent.msg_id);
  EXPECT_FALSE(bob[0].outgoing);
  ASSERT_NE(bob[0].message, nullptr);
  EXPECT_EQ(bob[0].message->body, sent.body);
  EXPECT_EQ(bob[0].message->sender, kAlice);

  auto alice = store().ReadMailbox(kAlice, 0, 10).value();
  ASSERT_EQ(alice.size(), 1u);
  EXPECT_TRUE(alice[0].outgoing);
  ASSERT_NE(alice[0].message, nullptr);
  EXPECT_EQ(alice[0].message->msg_id, sent.msg_id);

  // Each side finds it under the conversation as it sees it.
  EXPECT_EQ(Ids(store().History(kBob, UserConv(kAlice), 0, 10).value()),
            std::vector<MsgId>{sent.msg_id});
  EXPECT_EQ(Ids(store().History(kAlice, UserConv(kBob), 0, 10).value()),
            std::vector<MsgId>{sent.msg_id});
  EXPECT_TRUE(store().History(kBob, UserConv(kBob), 0, 10).value().empty());
}

TEST_P(StoreMessagingContractTest, SeqsAreDensePerMailbox) {
  SignUpCast(store());
  SendText(store(), kAlice, kBob, "a1");             // alice 1, bob 1
  SendText(store(), kCarol, kBob, "c1");             // carol 1, bob 2
  SendText(store(), kBob, kAlice, "b1");             // bob 3, alice 2
  auto r = SendText(store(), kAlice, kCarol, "a2");  // carol 2, alice 3
  EXPECT_EQ(r.seq, 3u);
  EXPECT_EQ(Where(r.appended), (Rows{{kCarol, 2u}, {kAlice, 3u}}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kAlice, 0, 100).value()), (std::vector<Seq>{1, 2, 3}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kBob, 0, 100).value()), (std::vector<Seq>{1, 2, 3}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kCarol, 0, 100).value()), (std::vector<Seq>{1, 2}));
  EXPECT_EQ(store().HeadSeq(kBob).value(), 3u);
}

TEST_P(StoreMessagingContractTest, ReadMailboxPagesAfterASeq) {
  SignUpCast(store());
  for (int i = 0; i < 10; ++i) SendText(store(), kAlice, kBob, "m" + std::to_string(i));
  EXPECT_EQ(Seqs(store().ReadMailbox(kBob, 3, 4).value()), (std::vector<Seq>{4, 5, 6, 7}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kBob, 8, 100).value()), (std::vector<Seq>{9, 10}));
  EXPECT_TRUE(store().ReadMailbox(kBob, 10, 100).value().empty());
  EXPECT_TRUE(store().ReadMailbox(kBob, 0, 0).value().empty());
  // Another user's rows never leak in.
  EXPECT_TRUE(store().ReadMailbox(kCarol, 0, 100).value().empty());
}

TEST_P(StoreMessagingContractTest, DuplicateSendStoresNothingAndAnswersTheFirst) {
  SignUpCast(store());
  auto first = SendText(store(), kAlice, kBob, "same");
  Message retry = Text(kAlice, UserConv(kBob), "same");  // a new msg_id, as a retry would get
  auto again = Send(store(), retry, {kBob}).value();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.msg_id, first.msg_id);
  EXPECT_EQ(again.seq, first.seq);
  EXPECT_EQ(again.ts_ms, first.ts_ms);
  EXPECT_TRUE(again.appended.empty());
  EXPECT_EQ(store().GetMessage(retry.msg_id).value(), std::nullopt);
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
  EXPECT_EQ(store().HeadSeq(kBob).value(), 1u);

  // The key is (sender, client_msg_id): another sender may use the same one.
  auto other = SendText(store(), kCarol, kBob, "same");
  EXPECT_FALSE(other.duplicate);
  EXPECT_EQ(store().HeadSeq(kBob).value(), 2u);
}

TEST_P(StoreMessagingContractTest, DuplicateWithinOneBatchIsRecognised) {
  SignUpCast(store());
  Pending<SendResult> a, b;
  Message first = Text(kAlice, UserConv(kBob), "twice");
  {
    WriterHold hold(store());
    store().AppendMessage(first, {kBob}, a.callback());
    store().AppendMessage(Text(kAlice, UserConv(kBob), "twice"), {kBob}, b.callback());
  }
  auto ra = a.Get().value();
  auto rb = b.Get().value();
  EXPECT_FALSE(ra.duplicate);
  EXPECT_TRUE(rb.duplicate);
  EXPECT_EQ(rb.msg_id, first.msg_id);
  EXPECT_EQ(rb.seq, ra.seq);
  EXPECT_EQ(store().ReadMailbox(kBob, 0, 10).value().size(), 1u);
}

TEST_P(StoreMessagingContractTest, NoteToSelfIsOneOutgoingRow) {
  SignUpCast(store());
  Message note = Text(kAlice, UserConv(kAlice), "note", /*recipients=*/0);
  auto r = Send(store(), note, {}).value();
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(Where(r.appended), (Rows{{kAlice, 1u}}));
  auto rows = store().ReadMailbox(kAlice, 0, 10).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].outgoing);
  ASSERT_NE(rows[0].message, nullptr);
  EXPECT_EQ(rows[0].message->body, note.body);
  EXPECT_EQ(Ids(store().History(kAlice, UserConv(kAlice), 0, 10).value()),
            std::vector<MsgId>{note.msg_id});
  // The sender in `recipients` is not a second row either.
  auto again = Send(store(), Text(kAlice, UserConv(kAlice), "note2", 0), {kAlice}).value();
  EXPECT_EQ(Where(again.appended), (Rows{{kAlice, 2u}}));
}

// Group sends are in store_groups_contract_test.cpp: they need a group.

TEST_P(StoreMessagingContractTest, ManyQueuedSendsKeepTheirOrder) {
  SignUpCast(store());
  constexpr int kSends = 300;
  std::vector<Pending<SendResult>> sends(kSends);
  std::vector<MsgId> ids;
  for (int i = 0; i < kSends; ++i) {
    Message m = Text(kAlice, UserConv(kBob), "q" + std::to_string(i));
    ids.push_back(m.msg_id);
    store().AppendMessage(std::move(m), {kBob}, sends[i].callback());
  }
  for (int i = 0; i < kSends; ++i) {
    auto r = sends[i].Get().value();
    EXPECT_EQ(r.seq, static_cast<Seq>(i + 1));
  }
  auto rows = store().ReadMailbox(kBob, 0, 1000).value();
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kSends));
  for (int i = 0; i < kSends; ++i) {
    EXPECT_EQ(rows[i].seq, static_cast<Seq>(i + 1));
    EXPECT_EQ(rows[i].msg_id, ids[i]);
    ASSERT_NE(rows[i].message, nullptr);
  }
}

TEST_P(StoreMessagingContractTest, FailedJobsInABatchLeaveNoGapInSeqs) {
  SignUpCast(store());
  SendText(store(), kAlice, kBob, "before");  // alice 1, bob 1
  Pending<SendResult> s1, s2, s3;
  Pending<AckResult> bad_ack;
  Pending<std::vector<Appended>> bad_read, bad_events;
  Pending<SignInResult> at_limit;
  ASSERT_TRUE(PutOtp(store(), Code("+15551000002")));
  {
    WriterHold hold(store());
    store().AppendMessage(Text(kAlice, UserConv(kBob), "x1"), {kBob}, s1.callback());
    store().Ack(kBob, kBobPhone, 99, kNow, bad_ack.callback());
    store().MarkRead(kBob, UserConv(kAlice), 424242, kNow, bad_read.callback());
    store().AppendEvents({kAlice, kBob}, EventType::kMessage, "{}", kNow, bad_events.callback());
    store().SignIn(Request("+15551000002", 0, 7777, "tok-x", /*max_devices=*/1),
                   at_limit.callback());
    store().AppendMessage(Text(kBob, UserConv(kAlice), "x2"), {kAlice}, s2.callback());
    store().AppendMessage(Text(kAlice, UserConv(kBob), "x3"), {kBob}, s3.callback());
    // Reads see only what is committed.
    EXPECT_EQ(store().HeadSeq(kBob).value(), 1u);
  }
  EXPECT_EQ(s1.Get().value().seq, 2u);  // alice 2, bob 2
  EXPECT_EQ(bad_ack.Get().error().code, Errc::kInvalid);
  EXPECT_EQ(bad_read.Get().error().code, Errc::kNotFound);
  EXPECT_EQ(bad_events.Get().error().code, Errc::kInvalid);
  EXPECT_EQ(at_limit.Get().value().outcome, SignInResult::Outcome::kDeviceLimit);
  EXPECT_EQ(Where(s2.Get().value().appended), (Rows{{kAlice, 3u}, {kBob, 3u}}));
  EXPECT_EQ(Where(s3.Get().value().appended), (Rows{{kBob, 4u}, {kAlice, 4u}}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kBob, 0, 10).value()), (std::vector<Seq>{1, 2, 3, 4}));
  EXPECT_EQ(Seqs(store().ReadMailbox(kAlice, 0, 10).value()), (std::vector<Seq>{1, 2, 3, 4}));
  EXPECT_EQ(store().HeadSeq(kBob).value(), 4u);
}

// ---- Cursors and delivered receipts ----------------------------------------------

TEST_P(StoreMessagingContractTest, AckMovesTheCursorOnlyUp) {
  SignUpCast(store());
  for (int i = 0; i < 3; ++i) SendText(store(), kAlice, kBob, "m" + std::to_string(i));
  EXPECT_EQ(Ack(store(), kBob, kBobPhone, 2).value().cursor, 2u);
  EXPECT_EQ(Ack(store(), kBob, kBobPhone, 1).value().cursor, 2u);
  EXPECT_EQ(store().GetCursor(kBob, kBobPhone).value(), 2u);
  // Cursors are per device.
  EXPECT_EQ(store().GetCursor(kBob, kBobLaptop).value(), 0u);

  auto beyond = Ack(store(), kBob, kBobPhone, 4);
  ASSERT_FALSE(beyond.has_value());
  EXPECT_EQ(beyond.error().code, Errc::kInvalid);
  EXPECT_EQ(store().GetCursor(kBob, kBobPhone).value(), 2u);
  EXPECT_EQ(Ack(store(), kBob, kBobPhone, 3).value().cursor, 3u);
}

// hello's one read: what HeadSeq and GetCursor answer, and nothing for a
// device that does not exist or was removed.
TEST_P(StoreMessagingContractTest, ReadHelloIsHeadAndCursorOfAnExistingDevice) {
  SignUpCast(store());
  auto empty = store().ReadHello(kBob, kBobPhone);
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  ASSERT_TRUE(empty->has_value());
  EXPECT_EQ((*empty)->head, 0u);
  EXPECT_EQ((*empty)->cursor, 0u);

  for (int i = 0; i < 3; ++i) SendText(store(), kAlice, kBob, "h" + std::to_string(i));
  ASSERT_TRUE(Ack(store(), kBob, kBobPhone, 2).has_value());
  auto phone = store().ReadHello(kBob, kBobPhone);
  ASSERT_TRUE(phone.has_value() && phone->has_value());
  EXPECT_EQ((*phone)->head, store().HeadSeq(kBob).value());
  EXPECT_EQ((*phone)->head, 3u);
  EXPECT_EQ((*phone)->cursor, 2u);
  auto laptop = store().ReadHello(kBob, kBobLaptop);
  ASSERT_TRUE(laptop.has_value() && laptop->has_value());
  EXPECT_EQ((*laptop)->head, 3u);
  EXPECT_EQ((*laptop)->cursor, 0u);
  // The sender's mailbox holds her own copies.
  auto alice = store().ReadHello(kAlice, kAlicePhone);
  ASSERT_TRUE(alice.has_value() && alice->has_value());
  EXPECT_EQ((*alice)->head, store().HeadSeq(kAlice).value());

  auto unknown = store().ReadHello(kBob, kBobPhone + 777);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_FALSE(unknown->has_value());
  ASSERT_TRUE(RemoveDevice(store(), kBob, kBobLaptop).value());
  auto removed = store().ReadHello(kBob, kBobLaptop);
  ASSERT_TRUE(removed.has_value());
  EXPECT_FALSE(removed->has_value());
  auto still = store().ReadHello(kBob, kBobPhone);
  ASSERT_TRUE(still.has_value() && still->has_value());
  EXPECT_EQ((*still)->cursor, 2u);
}

TEST_P(StoreMessagingContractTest, DeliveredReceiptOncePerMessageGroupedBySender) {
  SignUpCast(store());
  auto m1 = SendText(store(), kAlice, kBob, "m1");  // bob 1, alice 1
  auto m2 = SendText(store(), kAlice, kBob, "m2");  // bob 2, alice 2
  auto m3 = SendText(store(), kCarol, kBob, "m3");  // bob 3, carol 1
  SendText(store(), kBob, kAlice, "own");           // bob 4 (outgoing), alice 3

  auto acked = Ack(store(), kBob, kBobPhone, 4, kNow + 5).value();
  EXPECT_EQ(acked.cursor, 4u);
  EXPECT_EQ(Where(acked.appended), (Rows{{kAlice, 4u}, {kCarol, 2u}}));

  auto alice = store().ReadMailbox(kAlice, 3, 10).value();
  ASSERT_EQ(alice.size(), 1u);
  EXPECT_EQ(alice[0].type, EventType::kReceipt);
  EXPECT_EQ(alice[0].status, ReceiptStatus::kDelivered);
  EXPECT_EQ(alice[0].by, kBob);
  EXPECT_EQ(alice[0].conv, UserConv(kBob));  // as Alice sees the chat
  EXPECT_EQ(alice[0].msg_ids, (std::vector<MsgId>{m1.msg_id, m2.msg_id}));
  EXPECT_EQ(alice[0].ts_ms, kNow + 5);
  auto carol = store().ReadMailbox(kCarol, 1, 10).value();
  ASSERT_EQ(carol.size(), 1u);
  EXPECT_EQ(carol[0].msg_ids, std::vector<MsgId>{m3.msg_id});

  // The other device acking the same events, less of them first, changes
  // only its cursor.
  auto lower = Ack(store(), kBob, kBobLaptop, 2, kNow + 8).value();
  EXPECT_EQ(lower.cursor, 2u);
  EXPECT_TRUE(lower.appended.empty());
  auto second = Ack(store(), kBob, kBobLaptop, 4, kNow + 9).value();
  EXPECT_EQ(second.cursor, 4u);
  EXPECT_TRUE(second.appended.empty());
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 4u);

  auto receipts = store().GetReceipts(m1.msg_id).value();
  ASSERT_EQ(receipts.delivered.size(), 1u);
  EXPECT_EQ(receipts.delivered[0].user, kBob);
  EXPECT_EQ(receipts.delivered[0].ts_ms, kNow + 5);
  EXPECT_TRUE(receipts.read.empty());

  // Receipts and one's own messages are not acknowledged to anyone.
  EXPECT_TRUE(Ack(store(), kCarol, kCarolPhone, 2).value().appended.empty());
}

// Acks that cover only one's own rows and receipts write no receipts (the
// RocksDB store skips its mailbox scan for them); a message arriving after
// them is still receipted by the next ack.
TEST_P(StoreMessagingContractTest, AcksOfOwnRowsThenAMessageStillReceiptIt) {
  SignUpCast(store());
  SendText(store(), kBob, kAlice, "b1");  // bob 1 (outgoing)
  EXPECT_TRUE(Ack(store(), kBob, kBobPhone, 1).value().appended.empty());
  SendText(store(), kBob, kAlice, "b2");  // bob 2 (outgoing)
  EXPECT_TRUE(Ack(store(), kBob, kBobPhone, 2).value().appended.empty());
  auto m = SendText(store(), kAlice, kBob, "a1");  // bob 3, alice 3
  SendText(store(), kBob, kCarol, "b3");           // bob 4 (outgoing)
  auto acked = Ack(store(), kBob, kBobPhone, 4, kNow + 7).value();
  EXPECT_EQ(Where(acked.appended), (Rows{{kAlice, 4u}}));
  auto alice = store().ReadMailbox(kAlice, 3, 10).value();
  ASSERT_EQ(alice.size(), 1u);
  EXPECT_EQ(alice[0].type, EventType::kReceipt);
  EXPECT_EQ(alice[0].msg_ids, std::vector<MsgId>{m.msg_id});
  EXPECT_EQ(store().GetReceipts(m.msg_id).value().delivered.size(), 1u);

  // Again after a reopen, which forgets what the writer knew.
  auto m2 = SendText(store(), kAlice, kBob, "a2");  // bob 5, alice 5
  Reopen();
  SendText(store(), kBob, kAlice, "b4");  // bob 6 (outgoing), alice 6
  acked = Ack(store(), kBob, kBobPhone, 6, kNow + 8).value();
  EXPECT_EQ(Where(acked.appended), (Rows{{kAlice, 7u}}));
  EXPECT_EQ(store().GetReceipts(m2.msg_id).value().delivered.size(), 1u);
}

// A long run of acks that cover only one's own rows (more than the RocksDB
// store lets its delivered watermark lag behind, 256 rows), then messages
// in between: each is receipted once, by whichever device acks it first,
// across a reopen too.
TEST_P(StoreMessagingContractTest, ManyAcksOfOwnRowsThenMessagesAreReceiptedOnce) {
  SignUpCast(store());
  Seq bob = 0;
  for (int i = 0; i < 300; ++i) {
    bob = SendText(store(), kBob, kCarol, "b" + std::to_string(i)).seq;
    ASSERT_TRUE(Ack(store(), kBob, kBobPhone, bob).value().appended.empty()) << i;
  }
  auto m1 = SendText(store(), kAlice, kBob, "a1");
  bob = store().HeadSeq(kBob).value();
  // The laptop, whose cursor is far behind, acks first.
  auto first = Ack(store(), kBob, kBobLaptop, bob, kNow + 1).value();
  ASSERT_EQ(first.appended.size(), 1u);
  EXPECT_EQ(first.appended[0].user, kAlice);
  EXPECT_TRUE(Ack(store(), kBob, kBobPhone, bob, kNow + 2).value().appended.empty());

  for (int i = 0; i < 10; ++i) {
    bob = SendText(store(), kBob, kCarol, "c" + std::to_string(i)).seq;
    ASSERT_TRUE(Ack(store(), kBob, kBobPhone, bob).value().appended.empty()) << i;
  }
  auto m2 = SendText(store(), kAlice, kBob, "a2");
  Reopen();
  bob = SendText(store(), kBob, kCarol, "d").seq;
  auto second = Ack(store(), kBob, kBobPhone, bob, kNow + 3).value();
  ASSERT_EQ(second.appended.size(), 1u);
  EXPECT_TRUE(Ack(store(), kBob, kBobLaptop, bob, kNow + 4).value().appended.empty());

  const auto alice_head = store().HeadSeq(kAlice).value();
  auto alice = store().ReadMailbox(kAlice, alice_head - 3, 10).value();
  std::vector<std::vector<MsgId>> receipted;
  for (const auto& e : alice) {
    if (e.type == EventType::kReceipt) receipted.push_back(e.msg_ids);
  }
  EXPECT_EQ(receipted, (std::vector<std::vector<MsgId>>{{m1.msg_id}, {m2.msg_id}}));
  for (const auto& m : {m1, m2}) {
    auto receipts = store().GetReceipts(m.msg_id).value();
    EXPECT_EQ(receipts.delivered.size(), 1u);
  }
}

// ---- Read receipts -----------------------------------------------------------------

TEST_P(StoreMessagingContractTest, MarkReadSendsReadReceiptsAndReadSync) {
  SignUpCast(store());
  auto m1 = SendText(store(), kAlice, kBob, "m1");    // bob 1, alice 1
  auto m2 = SendText(store(), kAlice, kBob, "m2");    // bob 2, alice 2
  auto own = SendText(store(), kBob, kAlice, "own");  // bob 3, alice 3
  auto m3 = SendText(store(), kAlice, kBob, "m3");    // bob 4, alice 4

  auto read = MarkRead(store(), kBob, UserConv(kAlice), m2.msg_id, kNow + 7).value();
  EXPECT_EQ(Where(read), (Rows{{kAlice, 5u}, {kBob, 5u}}));
  auto receipt = store().ReadMailbox(kAlice, 4, 10).value();
  ASSERT_EQ(receipt.size(), 1u);
  EXPECT_EQ(receipt[0].type, EventType::kReceipt);
  EXPECT_EQ(receipt[0].status, ReceiptStatus::kRead);
  EXPECT_EQ(receipt[0].by, kBob);
  EXPECT_EQ(receipt[0].conv, UserConv(kBob));
  EXPECT_EQ(receipt[0].msg_ids, (std::vector<MsgId>{m1.msg_id, m2.msg_id}));
  EXPECT_EQ(receipt[0].ts_ms, kNow + 7);
  auto sync = store().ReadMailbox(kBob, 4, 10).value();
  ASSERT_EQ(sync.size(), 1u);
  EXPECT_EQ(sync[0].type, EventType::kReadSync);
  EXPECT_EQ(sync[0].conv, UserConv(kAlice));
  EXPECT_EQ(sync[0].msg_ids, std::vector<MsgId>{m2.msg_id});

  // Read before any ack: delivered is implied.
  auto receipts = store().GetReceipts(m1.msg_id).value();
  ASSERT_EQ(receipts.read.size(), 1u);
  EXPECT_EQ(receipts.read[0].user, kBob);
  EXPECT_EQ(receipts.read[0].ts_ms, kNow + 7);
  ASSERT_EQ(receipts.delivered.size(), 1u);
  EXPECT_EQ(receipts.delivered[0].ts_ms, kNow + 7);
  EXPECT_TRUE(store().GetReceipts(m3.msg_id).value().read.empty());

  // A repeat, or an older point, changes nothing and still succeeds.
  EXPECT_TRUE(MarkRead(store(), kBob, UserConv(kAlice), m2.msg_id).value().empty());
  EXPECT_TRUE(MarkRead(store(), kBob, UserConv(kAlice), m1.msg_id).value().empty());
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 5u);

  // Further on: only what was not read yet, never the reader's own messages.
  read = MarkRead(store(), kBob, UserConv(kAlice), m3.msg_id, kNow + 8).value();
  EXPECT_EQ(Where(read), (Rows{{kAlice, 6u}, {kBob, 6u}}));
  EXPECT_EQ(store().ReadMailbox(kAlice, 5, 10).value().at(0).msg_ids,
            std::vector<MsgId>{m3.msg_id});
  EXPECT_TRUE(store().GetReceipts(own.msg_id).value().read.empty());
}

TEST_P(StoreMessagingContractTest, MarkReadOfOwnMessagesOnlySyncs) {
  SignUpCast(store());
  auto own = SendText(store(), kBob, kAlice, "own");  // bob 1
  auto read = MarkRead(store(), kBob, UserConv(kAlice), own.msg_id).value();
  EXPECT_EQ(Where(read), (Rows{{kBob, 2u}}));
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
}

TEST_P(StoreMessagingContractTest, MarkReadOfAForeignMessageIsNotFound) {
  SignUpCast(store());
  auto m = SendText(store(), kAlice, kBob, "m");
  for (auto [user, conv, id] : {std::tuple{kCarol, UserConv(kAlice), m.msg_id},  // not hers
                                std::tuple{kBob, UserConv(kCarol), m.msg_id},    // wrong chat
                                std::tuple{kBob, GroupConv(kAlice), m.msg_id},   // wrong kind
                                std::tuple{kBob, UserConv(kAlice), m.msg_id + 1}}) {
    auto r = MarkRead(store(), user, conv, id);
    ASSERT_FALSE(r.has_value()) << user << " " << id;
    EXPECT_EQ(r.error().code, Errc::kNotFound);
  }
  EXPECT_EQ(store().HeadSeq(kAlice).value(), 1u);
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 0u);
}

// ---- History -------------------------------------------------------------------

TEST_P(StoreMessagingContractTest, HistoryPagesNewestFirst) {
  SignUpCast(store());
  std::vector<MsgId> ids;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(i % 2 == 0 ? SendText(store(), kAlice, kBob, "a" + std::to_string(i)).msg_id
                             : SendText(store(), kBob, kAlice, "b" + std::to_string(i)).msg_id);
    SendText(store(), kAlice, kCarol, "other" + std::to_string(i));  // another chat
  }
  auto page = store().History(kAlice, UserConv(kBob), 0, 3).value();
  EXPECT_EQ(Ids(page), (std::vector<MsgId>{ids[6], ids[5], ids[4]}));
  page = store().History(kAlice, UserConv(kBob), ids[4], 3).value();
  EXPECT_EQ(Ids(page), (std::vector<MsgId>{ids[3], ids[2], ids[1]}));
  page = store().History(kAlice, UserConv(kBob), ids[1], 3).value();
  EXPECT_EQ(Ids(page), (std::vector<MsgId>{ids[0]}));
  EXPECT_TRUE(store().History(kAlice, UserConv(kBob), ids[0], 3).value().empty());
  // `before` need not be a message of the chat.
  page = store().History(kBob, UserConv(kAlice), ids[3] + 1, 2).value();
  EXPECT_EQ(Ids(page), (std::vector<MsgId>{ids[3], ids[2]}));
  EXPECT_EQ(page[0]->body, store().GetMessage(ids[3]).value()->body);
  EXPECT_TRUE(store().History(kAlice, UserConv(kBob), 0, 0).value().empty());
}

// ---- Other events ----------------------------------------------------------------

TEST_P(StoreMessagingContractTest, AppendEventsAddsOneRowPerUser) {
  SignUpCast(store());
  SendText(store(), kAlice, kBob, "m");  // alice 1, bob 1
  const std::string payload = R"({"type":"group","change":"created"})";
  auto r =
      AppendEvents(store(), {kAlice, kBob, kCarol}, EventType::kGroup, payload, kNow + 3).value();
  EXPECT_EQ(Where(r), (Rows{{kAlice, 2u}, {kBob, 2u}, {kCarol, 1u}}));
  auto rows = store().ReadMailbox(kCarol, 0, 10).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].type, EventType::kGroup);
  EXPECT_EQ(rows[0].payload, payload);
  EXPECT_EQ(rows[0].ts_ms, kNow + 3);
  EXPECT_EQ(rows[0].message, nullptr);

  for (auto type : {EventType::kKeysChanged, EventType::kDevice}) {
    ASSERT_TRUE(AppendEvents(store(), {kCarol}, type, "{}"));
  }
  rows = store().ReadMailbox(kCarol, 1, 10).value();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].type, EventType::kKeysChanged);
  EXPECT_EQ(rows[1].type, EventType::kDevice);

  for (auto type : {EventType::kMessage, EventType::kReceipt, EventType::kReadSync}) {
    auto bad = AppendEvents(store(), {kCarol}, type, "{}");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code, Errc::kInvalid);
  }
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 3u);
  EXPECT_TRUE(AppendEvents(store(), {}, EventType::kGroup, "{}").value().empty());
}

// ---- Devices and cursors ---------------------------------------------------------

TEST_P(StoreMessagingContractTest, NewDeviceCursorStartsAtTheHead) {
  SignUpCast(store());
  EXPECT_EQ(store().GetCursor(kAlice, kAlicePhone).value(), 0u);
  for (int i = 0; i < 3; ++i) SendText(store(), kBob, kAlice, "m" + std::to_string(i));
  ASSERT_TRUE(PutOtp(store(), Code("+15551000001")));
  ASSERT_EQ(SignIn(store(), Request("+15551000001", 0, 2101, "tok-a2")).value().outcome,
            SignInResult::Outcome::kOk);
  EXPECT_EQ(store().GetCursor(kAlice, 2101).value(), 3u);

  // Rows appended earlier in the same batch count as existing.
  Pending<SendResult> sent;
  Pending<SignInResult> signed_in;
  ASSERT_TRUE(PutOtp(store(), Code("+15551000001")));
  {
    WriterHold hold(store());
    store().AppendMessage(Text(kBob, UserConv(kAlice), "m3"), {kAlice}, sent.callback());
    store().SignIn(Request("+15551000001", 0, 2102, "tok-a3"), signed_in.callback());
  }
  ASSERT_TRUE(sent.Get());
  ASSERT_EQ(signed_in.Get().value().outcome, SignInResult::Outcome::kOk);
  EXPECT_EQ(store().GetCursor(kAlice, 2102).value(), 4u);
  EXPECT_EQ(store().GetCursor(kAlice, kAlicePhone).value(), 0u);
}

TEST_P(StoreMessagingContractTest, RemoveDeviceDeletesItsCursor) {
  SignUpCast(store());
  SendText(store(), kAlice, kBob, "m");
  ASSERT_TRUE(Ack(store(), kBob, kBobLaptop, 1));
  EXPECT_EQ(store().GetCursor(kBob, kBobLaptop).value(), 1u);
  ASSERT_TRUE(RemoveDevice(store(), kBob, kBobLaptop).value());
  EXPECT_EQ(store().GetCursor(kBob, kBobLaptop).value(), 0u);
  // A late ack from the removed device does not bring it back.
  auto late = Ack(store(), kBob, kBobLaptop, 1);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, Errc::kNotFound);
  EXPECT_EQ(store().GetCursor(kBob, kBobLaptop).value(), 0u);
  EXPECT_EQ(store().GetCursor(kBob, kBobPhone).value(), 0u);
}

// ---- Durability ------------------------------------------------------------------

TEST_P(StoreMessagingContractTest, ReopenKeepsMailboxesCursorsAndReceipts) {
  SignUpCast(store());
  auto m1 = SendText(store(), kAlice, kBob, "m1");
  auto m2 = SendText(store(), kAlice, kBob, "m2");
  ASSERT_TRUE(Ack(store(), kBob, kBobPhone, 1, kNow + 1));
  ASSERT_TRUE(MarkRead(store(), kBob, UserConv(kAlice), m1.msg_id, kNow + 2));
  ASSERT_TRUE(AppendEvents(store(), {kCarol}, EventType::kDevice, "{}"));
  Reopen();

  EXPECT_EQ(store().HeadSeq(kAlice).value(), 4u);  // 2 sent, delivered, read
  EXPECT_EQ(store().HeadSeq(kBob).value(), 3u);    // 2 received, read_sync
  EXPECT_EQ(store().HeadSeq(kCarol).value(), 1u);
  EXPECT_EQ(store().GetCursor(kBob, kBobPhone).value(), 1u);
  EXPECT_EQ(store().ReadMailbox(kBob, 0, 10).value().at(1).message->body,
            Text(kAlice, UserConv(kBob), "m2").body);
  auto receipts = store().GetReceipts(m1.msg_id).value();
  EXPECT_EQ(receipts.delivered.size(), 1u);
  EXPECT_EQ(receipts.read.size(), 1u);
  EXPECT_EQ(Ids(store().History(kBob, UserConv(kAlice), 0, 10).value()),
            (std::vector<MsgId>{m2.msg_id, m1.msg_id}));

  // Everything goes on where it stopped: seqs, duplicates, watermarks.
  auto dup = Send(store(), Text(kAlice, UserConv(kBob), "m2"), {kBob}).value();
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.msg_id, m2.msg_id);
  auto m3 = SendText(store(), kAlice, kBob, "m3");
  EXPECT_EQ(m3.seq, 5u);
  EXPECT_EQ(Where(m3.appended), (Rows{{kBob, 4u}, {kAlice, 5u}}));
  EXPECT_TRUE(Ack(store(), kBob, kBobLaptop, 1).value().appended.empty());
  EXPECT_TRUE(MarkRead(store(), kBob, UserConv(kAlice), m1.msg_id).value().empty());
  auto delivered = Ack(store(), kBob, kBobPhone, 4, kNow + 3).value();
  ASSERT_EQ(delivered.appended.size(), 1u);
  auto event = store().ReadMailbox(kAlice, 5, 10).value();
  ASSERT_EQ(event.size(), 1u);
  EXPECT_EQ(event[0].msg_ids, (std::vector<MsgId>{m2.msg_id, m3.msg_id}));
}

TEST_P(StoreMessagingContractTest, MessagingWritesAfterCloseAreUnavailable) {
  SignUpCast(store());
  store().Close();
  auto r = Send(store(), Text(kAlice, UserConv(kBob), "late"), {kBob});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  auto p = Purge(store(), kNow, 10);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Errc::kUnavailable);
}

}  // namespace
}  // namespace parley::store::testing
