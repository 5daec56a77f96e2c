// 1:1 messaging through the SDK against a real parleyd: two users with two
// devices each, live and offline delivery, dedupe across forced reconnects,
// receipts, history, typing and presence.
#include <map>
#include <set>

#include "parley/store.hpp"
#include "sdk_helpers.hpp"

namespace parley::sdk::testing {
namespace {

class MessagingTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }

  // Two users with two devices each, all online and synced.
  void SetUpPair() {
    const std::string pa = NextPhone(), pb = NextPhone();
    a1_ = Login(pa, "a1");
    a2_ = Login(pa, "a2");
    b1_ = Login(pb, "b1");
    b2_ = Login(pb, "b2");
    ASSERT_TRUE(a1_ && a2_ && b1_ && b2_);
    for (auto* c : {a1_.get(), a2_.get(), b1_.get(), b2_.get()}) ASSERT_TRUE(StartSynced(*c));
    a_ = a1_->account()->user_id;
    b_ = b1_->account()->user_id;
    ASSERT_EQ(a2_->account()->user_id, a_);
    ASSERT_NE(a2_->account()->device_id, a1_->account()->device_id);
  }

  std::unique_ptr<Client> a1_, a2_, b1_, b2_;
  std::string a_, b_;
};

TEST_F(MessagingTest, LiveMessagesReachEveryDeviceOfBothUsers) {
  SetUpPair();
  auto sent = a1_->SendText(Conv::User(b_), "hello b").get();
  ASSERT_TRUE(sent) << sent.error().ToString();
  EXPECT_FALSE(sent->msg_id.empty());
  EXPECT_GT(sent->seq, 0u);
  EXPECT_FALSE(sent->duplicate);

  for (auto* c : {b1_.get(), b2_.get()}) {
    auto m = WaitFor<MessageEvent>(*c);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->message.msg_id, sent->msg_id);
    EXPECT_EQ(m->message.text, "hello b");
    EXPECT_EQ(m->message.conv, Conv::User(a_));
    EXPECT_EQ(m->message.from.user, a_);
    EXPECT_EQ(m->message.from.device, a1_->account()->device_id);
    EXPECT_FALSE(m->message.outgoing);
    EXPECT_EQ(m->message.status, MessageStatus::kReceived);
  }
  // The sender's other device gets the sent copy.
  auto copy = WaitFor<MessageEvent>(*a2_);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->message.msg_id, sent->msg_id);
  EXPECT_TRUE(copy->message.outgoing);
  EXPECT_EQ(copy->message.conv, Conv::User(b_));
  // The sending device sees its own message only as a status change.
  auto events = Drain(*a1_, 500ms);
  EXPECT_TRUE(OfType<MessageEvent>(events).empty());

  // And back.
  auto reply = b2_->SendText(Conv::User(a_), "hi a").get();
  ASSERT_TRUE(reply);
  for (auto* c : {a1_.get(), a2_.get()}) {
    auto m = WaitFor<MessageEvent>(
        *c, [&](const MessageEvent& e) { return e.message.msg_id == reply->msg_id; });
    ASSERT_TRUE(m);
    EXPECT_EQ(m->message.text, "hi a");
    EXPECT_EQ(m->message.conv, Conv::User(b_));
  }
  // b1 gets b2's reply as a sent copy; only then is it in b1's store.
  auto copy_b1 = WaitFor<MessageEvent>(
      *b1_, [&](const MessageEvent& e) { return e.message.msg_id == reply->msg_id; });
  ASSERT_TRUE(copy_b1);
  EXPECT_TRUE(copy_b1->message.outgoing);
  // Both ends keep it in their store.
  auto local = b1_->LocalMessages(Conv::User(a_)).get();
  ASSERT_TRUE(local);
  ASSERT_EQ(local->size(), 2u);
  EXPECT_EQ((*local)[0].msg_id, reply->msg_id);  // newest first
  EXPECT_EQ((*local)[1].msg_id, sent->msg_id);
}

// More sends at once than the outbox keeps in flight (64): each answer
// makes room for the next, and every one goes out (they stalled at 64).
TEST_F(MessagingTest, MoreSendsAtOnceThanTheOutboxKeepsInFlightAllGoOut) {
  SetUpPair();
  constexpr int kSends = 200;
  std::vector<std::future<Result<SentMessage>>> sends;
  for (int i = 0; i < kSends; ++i) {
    sends.push_back(a1_->SendText(Conv::User(b_), "burst " + std::to_string(i)));
  }
  std::set<std::string> ids;
  for (int i = 0; i < kSends; ++i) {
    ASSERT_EQ(sends[static_cast<std::size_t>(i)].wait_for(30s), std::future_status::ready)
        << "send " << i << " of " << kSends << " never answered";
    auto sent = sends[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(sent) << sent.error().ToString();
    ids.insert(sent->msg_id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kSends));
  std::set<std::string> got;
  auto last = WaitFor<MessageEvent>(
      *b1_,
      [&](const MessageEvent& e) {
        got.insert(e.message.msg_id);
        return got.size() == static_cast<std::size_t>(kSends);
      },
      30s);
  ASSERT_TRUE(last) << got.size() << " of " << kSends << " reached b1";
  EXPECT_EQ(got, ids);
}

TEST_F(MessagingTest, OfflineDeviceGetsEverythingInOrderOnReconnect) {
  SetUpPair();
  b1_->Stop();
  ASSERT_TRUE(b1_->WaitForState(ConnectionEvent::State::kStopped, 5s));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto sent = a1_->SendText(Conv::User(b_), "offline " + std::to_string(i)).get();
    ASSERT_TRUE(sent);
    ids.push_back(sent->msg_id);
  }
  Drain(*b1_, 100ms);
  b1_->Start();
  std::vector<std::string> got;
  while (got.size() < ids.size()) {
    auto m = WaitFor<MessageEvent>(*b1_);
    ASSERT_TRUE(m) << "got " << got.size() << " of " << ids.size();
    got.push_back(m->message.msg_id);
  }
  EXPECT_EQ(got, ids);
  EXPECT_TRUE(b1_->WaitForState(ConnectionEvent::State::kSynced, 5s));
  EXPECT_TRUE(OfType<MessageEvent>(Drain(*b1_, 500ms)).empty());
}

TEST_F(MessagingTest, NoDuplicatesAfterTheSocketIsKilledMidStream) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Login(pa, "a");
  // Acks held back, so that the server has to send everything again after
  // the drop.
  auto b = Login(pb, "b", [](ClientOptions& o) {
    o.ack_delay = 60s;
    o.ack_batch = 100000;
  });
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(StartSynced(*a));
  const std::string bu = b->account()->user_id;
  constexpr int kCount = 60;
  std::vector<Future<SentMessage>> futures;
  for (int i = 0; i < kCount; ++i) {
    futures.push_back(a->SendText(Conv::User(bu), "burst " + std::to_string(i)));
  }
  std::vector<std::string> ids;
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error().ToString();
    ids.push_back(r->msg_id);
  }

  b->Start();
  std::map<std::string, int> seen;
  std::vector<std::uint64_t> seqs;
  while (seen.size() < 10) {
    auto m = WaitFor<MessageEvent>(*b);
    ASSERT_TRUE(m);
    ++seen[m->message.msg_id];
    seqs.push_back(m->message.seq);
  }
  b->DropConnection();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  // Messages the old socket delivered before it died may all be queued
  // already, so wait for the reconnect's own sync too: only then has the
  // server replayed every unacked event, and a duplicate would show.
  bool dropped = false, reconnected = false;
  while ((seen.size() < static_cast<std::size_t>(kCount) || !reconnected) &&
         std::chrono::steady_clock::now() < deadline) {
    auto e = b->WaitEvent(1s);
    if (!e) continue;
    if (auto* c = std::get_if<ConnectionEvent>(&*e)) {
      if (c->state == ConnectionEvent::State::kOffline) dropped = true;
      if (dropped && c->state == ConnectionEvent::State::kSynced) reconnected = true;
    }
    if (auto* m = std::get_if<MessageEvent>(&*e)) {
      ++seen[m->message.msg_id];
      seqs.push_back(m->message.seq);
    }
  }
  EXPECT_TRUE(reconnected);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kCount));
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << "msg " << id << " seen " << n << " times";
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_TRUE(OfType<MessageEvent>(Drain(*b, 500ms)).empty());
  auto local = b->LocalMessages(Conv::User(a->account()->user_id), 100).get();
  ASSERT_TRUE(local);
  EXPECT_EQ(local->size(), static_cast<std::size_t>(kCount));
}

TEST_F(MessagingTest, MessagesAlreadyStoredAreDroppedByMsgIdWhenTheMailboxReplays) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Login(pa, "a");
  auto b = Login(pb, "b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(StartSynced(*a));
  ASSERT_TRUE(StartSynced(*b));
  const std::string bu = b->account()->user_id;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->SendText(Conv::User(bu), std::to_string(i)).get());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(WaitFor<MessageEvent>(*b));
  b.reset();  // stops, acks, closes

  // Rewind the profile's cursor: the server then replays the mailbox, and
  // only the msg_id tells the messages apart as known.
  {
    auto store = Store::Open(Dir("b", pb) + "/parley.db");
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->SetCursor(1));
  }
  auto again = Client::Open(OptionsFor(*server_, Dir("b", pb), "b"));
  ASSERT_TRUE(again);
  ASSERT_TRUE(StartSynced(**again));
  ASSERT_TRUE(a->SendText(Conv::User(bu), "new").get());
  auto events = Drain(**again, 1500ms);
  auto messages = OfType<MessageEvent>(events);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].message.text, "new");
}

TEST_F(MessagingTest, DeliveredAndReadReceiptsReachTheSendersDevices) {
  SetUpPair();
  auto sent = a1_->SendText(Conv::User(b_), "did you get this?").get();
  ASSERT_TRUE(sent);
  ASSERT_TRUE(WaitFor<MessageEvent>(*b1_));
  ASSERT_TRUE(WaitFor<MessageEvent>(*b2_));

  auto delivered = WaitFor<MessageStatusEvent>(*a1_, [&](const MessageStatusEvent& s) {
    return s.msg_id == sent->msg_id && s.status == MessageStatus::kDelivered;
  });
  ASSERT_TRUE(delivered);
  EXPECT_EQ(delivered->by, b_);
  EXPECT_EQ(delivered->conv, Conv::User(b_));
  EXPECT_FALSE(delivered->client_msg_id.empty());
  auto on_a2 = WaitFor<ReceiptEvent>(
      *a2_, [&](const ReceiptEvent& r) { return r.status == MessageStatus::kDelivered; });
  ASSERT_TRUE(on_a2);
  EXPECT_EQ(on_a2->msg_ids, std::vector<std::string>{sent->msg_id});

  ASSERT_TRUE(b1_->MarkRead(Conv::User(a_), sent->msg_id).get());
  auto read = WaitFor<MessageStatusEvent>(*a1_, [&](const MessageStatusEvent& s) {
    return s.msg_id == sent->msg_id && s.status == MessageStatus::kRead;
  });
  ASSERT_TRUE(read);
  EXPECT_EQ(read->by, b_);
  ASSERT_TRUE(WaitFor<ReceiptEvent>(
      *a2_, [&](const ReceiptEvent& r) { return r.status == MessageStatus::kRead; }));
  // The reader's other device learns that the chat was read.
  auto sync = WaitFor<ReadSyncEvent>(*b2_);
  ASSERT_TRUE(sync);
  EXPECT_EQ(sync->up_to_msg_id, sent->msg_id);

  auto mine = a1_->LocalMessages(Conv::User(b_)).get();
  ASSERT_TRUE(mine && !mine->empty());
  EXPECT_EQ(mine->front().status, MessageStatus::kRead);
  auto theirs = b2_->LocalMessages(Conv::User(a_)).get();
  ASSERT_TRUE(theirs && !theirs->empty());
  EXPECT_EQ(theirs->front().status, MessageStatus::kRead);

  auto receipts = a1_->Receipts(sent->msg_id).get();
  ASSERT_TRUE(receipts) << receipts.error().ToString();
  EXPECT_EQ(receipts->members, 1);
  ASSERT_EQ(receipts->read.size(), 1u);
  EXPECT_EQ(receipts->read[0].user, b_);
}

TEST_F(MessagingTest, HistoryFillsANewDevicesStore) {
  SetUpPair();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto s = a1_->SendText(Conv::User(b_), "h" + std::to_string(i)).get();
    ASSERT_TRUE(s);
    ids.push_back(s->msg_id);
  }
  auto b3 = Login(b1_->account()->phone, "b3");
  ASSERT_TRUE(b3);
  b3->Start();  // ops wait for the connection
  auto page = b3->History(Conv::User(a_), {}, 3).get();
  ASSERT_TRUE(page) << page.error().ToString();
  ASSERT_EQ(page->messages.size(), 3u);
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->messages[0].msg_id, ids[4]);
  EXPECT_EQ(page->messages[0].text, "h4");
  auto older = b3->History(Conv::User(a_), page->messages.back().msg_id, 10).get();
  ASSERT_TRUE(older);
  ASSERT_EQ(older->messages.size(), 2u);
  EXPECT_EQ(older->messages[1].msg_id, ids[0]);
  auto local = b3->LocalMessages(Conv::User(a_), 10).get();
  ASSERT_TRUE(local);
  EXPECT_EQ(local->size(), 5u);
}

TEST_F(MessagingTest, TypingAndPresence) {
  SetUpPair();
  auto statuses = b1_->SubscribePresence({a_}).get();
  ASSERT_TRUE(statuses) << statuses.error().ToString();
  ASSERT_EQ(statuses->size(), 1u);
  EXPECT_TRUE((*statuses)[0].online);

  a1_->SendTyping(Conv::User(b_), true);
  auto typing = WaitFor<TypingEvent>(*b1_);
  ASSERT_TRUE(typing);
  EXPECT_TRUE(typing->composing);
  EXPECT_EQ(typing->conv, Conv::User(a_));
  EXPECT_EQ(typing->from.user, a_);
  // No repeat: it expires on the receiver after 6 seconds.
  auto expired = WaitFor<TypingEvent>(*b1_, nullptr, 8s);
  ASSERT_TRUE(expired);
  EXPECT_FALSE(expired->composing);
  EXPECT_TRUE(expired->expired);

  a1_.reset();
  a2_.reset();
  auto offline = WaitFor<PresenceEvent>(
      *b1_, [&](const PresenceEvent& p) { return p.status.user == a_ && !p.status.online; });
  ASSERT_TRUE(offline);
}

TEST_F(MessagingTest, NoteToSelfReachesTheOtherDevice) {
  SetUpPair();
  auto sent = a1_->SendText(Conv::User(a_), "remember the milk").get();
  ASSERT_TRUE(sent);
  auto m = WaitFor<MessageEvent>(*a2_);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->message.text, "remember the milk");
  EXPECT_TRUE(m->message.outgoing);
}

TEST_F(MessagingTest, SendToAnUnknownUserFailsForGood) {
  SetUpPair();
  auto r = a1_->SendText(Conv::User("12345"), "anyone?").get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "not_found");
  auto failed = WaitFor<MessageStatusEvent>(
      *a1_, [](const MessageStatusEvent& s) { return s.status == MessageStatus::kFailed; });
  ASSERT_TRUE(failed);
  ASSERT_TRUE(failed->error);
  EXPECT_EQ(failed->error->code, "not_found");
}

}  // namespace
}  // namespace parley::sdk::testing
