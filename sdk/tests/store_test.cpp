// The local store (store.hpp) on its own: account and tokens, the cursor,
// message dedupe and the outbox, statuses, the crypto key-value table.
#include "parley/store.hpp"

#include "sdk_helpers.hpp"

namespace parley::sdk::testing {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.Sub("parley.db"));
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->SaveLogin({"http://x", "+15550001111", "100", "7"},
                                  {"access", 1000, "refresh", 2000}));
  }
  Message Incoming(const std::string& msg_id, const std::string& text,
                   const std::string& from = "200") {
    Message m;
    m.msg_id = msg_id;
    m.client_msg_id = "c" + msg_id;
    m.conv = Conv::User(from);
    m.from = {from, "9"};
    m.kind = "text";
    m.body_json = R"({"text":")" + text + R"("})";
    m.ts_ms = 1000 + std::stoll(msg_id);
    m.status = MessageStatus::kReceived;
    return m;
  }
  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, AccountTokensAndCursorPersist) {
  ASSERT_TRUE(store_->SetCursor(42));
  ASSERT_TRUE(store_->SaveTokens({"a2", 3000, "r2", 4000}));
  store_.reset();
  auto s = Store::Open(dir_.Sub("parley.db"));
  ASSERT_TRUE(s);
  auto account = (*s)->GetAccount();
  ASSERT_TRUE(account && *account);
  EXPECT_EQ((*account)->user_id, "100");
  EXPECT_EQ((*account)->device_id, "7");
  EXPECT_EQ((*account)->phone, "+15550001111");
  auto tokens = (*s)->GetTokens();
  ASSERT_TRUE(tokens && *tokens);
  EXPECT_EQ((*tokens)->access_token, "a2");
  EXPECT_EQ((*tokens)->refresh_expires_ms, 4000);
  EXPECT_EQ(*(*s)->GetCursor(), 42u);
  ASSERT_TRUE((*s)->ClearTokens());
  EXPECT_FALSE(*(*s)->GetTokens());
  EXPECT_TRUE(*(*s)->GetAccount());
}

TEST_F(StoreTest, AnotherLoginStartsOver) {
  ASSERT_TRUE(store_->SetCursor(42));
  ASSERT_TRUE(store_->PutMessage(Incoming("5", "x")));
  ASSERT_TRUE(store_->Put("ns", "k", "v"));
  ASSERT_TRUE(store_->SaveLogin({"http://x", "+15550002222", "300", "8"}, {"a", 1, "r", 2}));
  EXPECT_EQ(*store_->GetCursor(), 0u);
  EXPECT_TRUE(store_->Messages(Conv::User("200"), 10)->empty());
  EXPECT_FALSE(*store_->Get("ns", "k"));
}

TEST_F(StoreTest, MessagesAreKeptOnceByMsgIdAndNewestFirst) {
  EXPECT_EQ(*store_->PutMessage(Incoming("10", "a")), Store::Insert::kNew);
  EXPECT_EQ(*store_->PutMessage(Incoming("12", "b")), Store::Insert::kNew);
  EXPECT_EQ(*store_->PutMessage(Incoming("10", "a")), Store::Insert::kDuplicate);
  auto list = store_->Messages(Conv::User("200"), 10);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].msg_id, "12");
  EXPECT_EQ((*list)[0].text, "b");
  EXPECT_EQ((*list)[1].msg_id, "10");
  auto older = store_->Messages(Conv::User("200"), 10, "12");
  ASSERT_EQ(older->size(), 1u);
  EXPECT_EQ((*older)[0].msg_id, "10");
}

TEST_F(StoreTest, OutboxPendingSentDeliveredRead) {
  Message m;
  m.client_msg_id = "mine-1";
  m.conv = Conv::User("200");
  m.from = {"100", "7"};
  m.outgoing = true;
  m.kind = "text";
  m.body_json = R"({"text":"hi"})";
  m.ts_ms = 5;
  ASSERT_TRUE(store_->AddPending(m));
  EXPECT_FALSE(store_->AddPending(m));  // the client_msg_id is taken
  auto pending = store_->Pending();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].status, MessageStatus::kPending);

  // The sent copy arriving in the mailbox before the answer marks it sent.
  Message copy = m;
  copy.msg_id = "77";
  copy.seq = 3;
  EXPECT_EQ(*store_->PutMessage(copy), Store::Insert::kOwnSend);
  EXPECT_TRUE(store_->Pending()->empty());
  EXPECT_FALSE(*store_->MarkSent("mine-1", {"77", "mine-1", 3, 5, false}));  // already
  EXPECT_EQ(*store_->PutMessage(copy), Store::Insert::kDuplicate);

  EXPECT_EQ(*store_->AdvanceStatus({"77"}, MessageStatus::kRead), std::vector<std::string>{"77"});
  EXPECT_TRUE(store_->AdvanceStatus({"77"}, MessageStatus::kDelivered)->empty());  // never back
  EXPECT_EQ((*store_->GetMessage("77"))->status, MessageStatus::kRead);
  EXPECT_EQ((*store_->GetByClientMsgId("mine-1"))->msg_id, "77");
}

TEST_F(StoreTest, FailedSendsLeaveTheOutbox) {
  Message m;
  m.client_msg_id = "mine-2";
  m.conv = Conv::Group("55");
  m.from = {"100", "7"};
  m.outgoing = true;
  m.kind = "text";
  m.body_json = "{}";
  ASSERT_TRUE(store_->AddPending(m));
  ASSERT_TRUE(store_->MarkFailed("mine-2"));
  EXPECT_TRUE(store_->Pending()->empty());
  EXPECT_EQ((*store_->GetByClientMsgId("mine-2"))->status, MessageStatus::kFailed);
}

TEST_F(StoreTest, ReadUpToMarksIncomingMessages) {
  ASSERT_TRUE(store_->PutMessage(Incoming("10", "a")));
  ASSERT_TRUE(store_->PutMessage(Incoming("20", "b")));
  ASSERT_TRUE(store_->PutMessage(Incoming("30", "c")));
  ASSERT_TRUE(store_->MarkReadUpTo(Conv::User("200"), "20"));
  auto list = *store_->Messages(Conv::User("200"), 10);
  EXPECT_EQ(list[0].status, MessageStatus::kReceived);
  EXPECT_EQ(list[1].status, MessageStatus::kRead);
  EXPECT_EQ(list[2].status, MessageStatus::kRead);
}

TEST_F(StoreTest, KeyValueForTheCryptoBackend) {
  const std::string binary("\x00\x01\xff", 3);
  ASSERT_TRUE(store_->Put("signal.session", "u1.d1", binary));
  ASSERT_TRUE(store_->Put("signal.session", "u1.d2", "x"));
  ASSERT_TRUE(store_->Put("signal.session", "u2_d1", "y"));
  ASSERT_TRUE(store_->Put("signal.prekey", "u1.d9", "z"));
  EXPECT_EQ(**store_->Get("signal.session", "u1.d1"), binary);
  EXPECT_EQ(*store_->Keys("signal.session", "u1."), (std::vector<std::string>{"u1.d1", "u1.d2"}));
  ASSERT_TRUE(store_->Delete("signal.session", "u1.d1"));
  EXPECT_FALSE(*store_->Get("signal.session", "u1.d1"));
  ASSERT_TRUE(store_->Put("signal.session", "u1.d2", "overwritten"));
  EXPECT_EQ(**store_->Get("signal.session", "u1.d2"), "overwritten");
}

TEST_F(StoreTest, TransactionsRollBack) {
  auto s = store_->Transaction([&]() -> Status {
    EXPECT_TRUE(store_->SetCursor(99));
    return Fail("test", "abort");
  });
  EXPECT_FALSE(s);
  EXPECT_EQ(*store_->GetCursor(), 0u);
}

TEST_F(StoreTest, RefreshLockIsExclusive) {
  auto first = RefreshLock::TryAcquire(dir_.Sub("parley.db"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(RefreshLock::TryAcquire(dir_.Sub("parley.db")));
  first.reset();
  EXPECT_TRUE(RefreshLock::TryAcquire(dir_.Sub("parley.db")));
}

}  // namespace
}  // namespace parley::sdk::testing
