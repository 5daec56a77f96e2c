// hello's skip_own_copy (extension, docs/protocol.md "Mailbox delivery"): the
// sending connection is not sent the copy of its own send, whose seq its ok
// names; everything else (other devices, receipts, the cursor, the backlog
// after a reconnect) is as without it. And the default, unchanged.
#include <set>
#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

class OwnCopyTest : public SharedParleydTest<OwnCopyTest> {
 public:
  static std::vector<std::string> ExtraArgs() { return {"--user-writes-in-flight", "0"}; }

 protected:
  // A WebSocket whose hello asked for skip_own_copy (and was granted it).
  static std::unique_ptr<WsClient> ConnectSkipping(const Account& account) {
    auto ws = WsClient::Connect(server_->endpoint());
    EXPECT_TRUE(ws);
    if (!ws) return nullptr;
    auto r =
        ws->Request({{"op", "hello"}, {"token", account.access_token}, {"skip_own_copy", true}});
    EXPECT_TRUE(r);
    if (!r) return nullptr;
    EXPECT_EQ((*r)["op"], "ok") << json::serialize(*r);
    EXPECT_EQ(r->if_contains("skip_own_copy") ? r->at("skip_own_copy") : json::value(),
              json::value(true))
        << json::serialize(*r);
    return ws;
  }

  static std::uint64_t SeqOfOk(const json::object& ok) { return std::stoull(Str(ok, "seq")); }
};

TEST_F(OwnCopyTest, WithoutTheFlagTheSendingConnectionGetsItsCopy) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  json::object hello;
  auto wa = Connect(*server_, a, &hello);
  ASSERT_TRUE(wa);
  EXPECT_FALSE(hello.contains("skip_own_copy")) << json::serialize(hello);
  auto ok = SendText(*wa, b.user_id, "echo");
  ASSERT_TRUE(ok);
  ASSERT_EQ(Str(*ok, "op"), "ok");
  auto e = NextEventOfType(*wa, "message");
  ASSERT_TRUE(e);
  EXPECT_EQ(SeqOf(*e), SeqOfOk(*ok));
  EXPECT_EQ(EventOf(*e).at("outgoing"), true);
  // false is the default said out loud.
  auto wf = WsClient::Connect(server_->endpoint());
  auto r = wf->Request({{"op", "hello"}, {"token", b.access_token}, {"skip_own_copy", false}});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["op"], "ok");
  EXPECT_FALSE(r->contains("skip_own_copy"));
}

TEST_F(OwnCopyTest, AMalformedFlagIsABadRequestAndNoSession) {
  Account a = SignIn(*server_, NextPhone());
  for (json::value bad : {json::value("yes"), json::value(1), json::value(json::array{true})}) {
    auto ws = WsClient::Connect(server_->endpoint());
    ASSERT_TRUE(ws);
    auto r = ws->Request({{"op", "hello"}, {"token", a.access_token}, {"skip_own_copy", bad}});
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["op"], "error");
    EXPECT_EQ((*r)["code"], "bad_request");
    EXPECT_EQ(Str(*r, "message"), "skip_own_copy: a boolean");
    // Not authenticated: a second hello is still possible.
    auto again = ws->Request({{"op", "hello"}, {"token", a.access_token}});
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)["op"], "ok");
  }
}

TEST_F(OwnCopyTest, TheSendingConnectionSkipsItsCopiesAndEveryoneElseGetsThem) {
  const std::string pa = NextPhone();
  Account a1 = SignIn(*server_, pa, "a1"), a2 = SignIn(*server_, pa, "a2");
  Account b = SignIn(*server_, NextPhone());
  auto wa1 = ConnectSkipping(a1);
  auto wa2 = Connect(*server_, a2);
  auto wb = Connect(*server_, b);
  ASSERT_TRUE(wa1 && wa2 && wb);
  // What came before (a2's sign-in, a device event) is out of the way first.
  while (NextEvent(*wa1, 300ms)) {
  }
  while (NextEvent(*wa2, 100ms)) {
  }

  std::vector<std::uint64_t> own;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto ok = SendText(*wa1, b.user_id, "m" + std::to_string(i));
    ASSERT_TRUE(ok);
    ASSERT_EQ(Str(*ok, "op"), "ok") << json::serialize(*ok);
    own.push_back(SeqOfOk(*ok));
    ids.push_back(Str(*ok, "msg_id"));
  }
  // A note to self is one outgoing row, skipped the same way.
  auto note = SendText(*wa1, a1.user_id, "note");
  ASSERT_TRUE(note);
  own.push_back(SeqOfOk(*note));

  // The other device of the sender gets every copy, the recipient every message.
  for (std::size_t i = 0; i < own.size(); ++i) {
    auto e = NextEventOfType(*wa2, "message");
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(SeqOf(*e), own[i]);
    EXPECT_EQ(EventOf(*e).at("outgoing"), true);
  }
  std::uint64_t b_last = 0;
  for (int i = 0; i < 3; ++i) {
    auto e = NextEventOfType(*wb, "message");
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(Str(EventOf(*e), "msg_id"), ids[static_cast<std::size_t>(i)]);
    b_last = SeqOf(*e);
  }

  // The recipient's ack still brings the receipt to the sending connection:
  // the first event it is sent, right after its own seqs.
  Ack(*wb, b_last);
  auto receipt = NextEvent(*wa1);
  ASSERT_TRUE(receipt);
  EXPECT_EQ(Str(EventOf(*receipt), "type"), "receipt") << json::serialize(*receipt);
  EXPECT_EQ(SeqOf(*receipt), own.back() + 1);
  EXPECT_EQ(EventOf(*receipt).at("msg_ids"), json::value(json::array(ids.begin(), ids.end())));
  EXPECT_FALSE(NextEvent(*wa1, 300ms)) << "something more reached the sending connection";

  // Acknowledged by contiguous seq (the ok's seqs counted as received), the
  // cursor passes them: a reconnect sends nothing again.
  Ack(*wa1, SeqOf(*receipt));
  wa1->SendJson({{"op", "ping"}});
  ASSERT_TRUE(wa1->ReceiveOp("pong"));
  wa1.reset();
  std::this_thread::sleep_for(200ms);
  auto again = Connect(*server_, a1);
  ASSERT_TRUE(again);
  EXPECT_FALSE(NextEvent(*again, 500ms)) << "an acknowledged event came again";
}

TEST_F(OwnCopyTest, AnUnacknowledgedOwnCopyComesOnTheNextConnection) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  std::uint64_t seq = 0;
  std::string msg_id;
  {
    auto wa = ConnectSkipping(a);
    ASSERT_TRUE(wa);
    auto ok = SendText(*wa, b.user_id, "once");
    ASSERT_TRUE(ok);
    seq = SeqOfOk(*ok);
    msg_id = Str(*ok, "msg_id");
    EXPECT_FALSE(NextEventOfType(*wa, "message", 300ms));
  }
  // Skipped on that connection, never lost: at least once, from the cursor.
  auto wa = ConnectSkipping(a);
  ASSERT_TRUE(wa);
  auto e = NextEventOfType(*wa, "message");
  ASSERT_TRUE(e);
  EXPECT_EQ(SeqOf(*e), seq);
  EXPECT_EQ(Str(EventOf(*e), "msg_id"), msg_id);
}

TEST_F(OwnCopyTest, BehindABacklogTheStreamPassesOverTheSkippedCopy) {
  // 300 messages wait for a: more than the window (256), so a's own send
  // lands beyond a backlog that is still streaming.
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wb = Connect(*server_, b);
  ASSERT_TRUE(wb);
  constexpr int kBacklog = 300;
  for (int i = 0; i < kBacklog; ++i) {
    wb->SendJson({{"op", "send"},
                  {"rid", "s" + std::to_string(i)},
                  {"to", ToUser(a.user_id)},
                  {"client_msg_id", "bk" + std::to_string(i)},
                  {"kind", "text"},
                  {"body", {{"n", i}}}});
  }
  for (int i = 0; i < kBacklog; ++i) ASSERT_TRUE(wb->ReceiveOp("ok", 10s)) << i;

  auto wa = ConnectSkipping(a);
  ASSERT_TRUE(wa);
  std::set<std::uint64_t> got;
  int messages = 0;
  auto take = [&](const json::object& e) {
    EXPECT_TRUE(got.insert(SeqOf(e)).second) << "seq " << SeqOf(e) << " twice";
    if (Str(EventOf(e), "type") == "message") {
      EXPECT_EQ(EventOf(e).at("outgoing"), false) << json::serialize(e);
      ++messages;
    }
  };
  while (auto e = NextEvent(*wa, 500ms)) take(*e);
  ASSERT_LE(got.size(), 256u);  // the window, nothing acknowledged
  ASSERT_LT(messages, kBacklog);

  auto mine = SendText(*wa, b.user_id, "mine");
  ASSERT_TRUE(mine);
  const std::uint64_t own = SeqOfOk(*mine);
  ASSERT_EQ(Str(*SendText(*wb, a.user_id, "after"), "op"), "ok");  // live, ahead of the stream

  // Acknowledging by contiguous seq, the own one counted as received.
  std::set<std::uint64_t> seen = got;
  seen.insert(own);
  auto contiguous = [&] {
    std::uint64_t c = *seen.begin();
    while (seen.contains(c + 1)) ++c;
    return c;
  };
  Ack(*wa, contiguous());
  while (auto e = NextEvent(*wa, 1s)) {
    take(*e);
    seen.insert(SeqOf(*e));
    Ack(*wa, contiguous());
  }
  EXPECT_EQ(messages, kBacklog + 1);
  EXPECT_FALSE(got.contains(own)) << "the own copy was sent";
  const std::uint64_t last = contiguous();
  EXPECT_EQ(last, *seen.rbegin()) << "a gap is left";
  EXPECT_EQ(seen.size(), last - *seen.begin() + 1);

  wa->SendJson({{"op", "ping"}});
  ASSERT_TRUE(wa->ReceiveOp("pong"));
  wa.reset();
  std::this_thread::sleep_for(200ms);
  auto again = Connect(*server_, a);
  ASSERT_TRUE(again);
  EXPECT_FALSE(NextEvent(*again, 500ms)) << "an acknowledged event came again";
}

}  // namespace
}  // namespace parley::test
