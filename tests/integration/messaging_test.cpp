// 1:1 messaging over real sockets (PROTOCOL.md sections 3 and 4): live and
// offline delivery, sync, acks, receipts, multi-device, history, typing,
// presence and flood control.
#include <set>
#include <thread>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

class MessagingTest : public SharedParleydTest<MessagingTest> {
 public:
  static std::vector<std::string> ExtraArgs() { return {"--user-writes-in-flight", "0"}; }
};

TEST_F(MessagingTest, LiveDeliveryReachesEveryDeviceOfBothUsers) {
  const std::string pa = NextPhone(), pb = NextPhone();
  Account a1 = SignIn(*server_, pa, "a1"), a2 = SignIn(*server_, pa, "a2");
  Account b1 = SignIn(*server_, pb, "b1"), b2 = SignIn(*server_, pb, "b2");
  auto wa1 = Connect(*server_, a1), wa2 = Connect(*server_, a2);
  auto wb1 = Connect(*server_, b1), wb2 = Connect(*server_, b2);
  ASSERT_TRUE(wa1 && wa2 && wb1 && wb2);

  auto ok = SendText(*wa1, b1.user_id, "hello", "m-1");
  ASSERT_TRUE(ok);
  ASSERT_EQ(Str(*ok, "op"), "ok") << json::serialize(*ok);
  const std::string msg_id = Str(*ok, "msg_id");
  EXPECT_FALSE(msg_id.empty());
  EXPECT_FALSE(Str(*ok, "seq").empty());
  EXPECT_EQ((*ok)["duplicate"], false);
  EXPECT_TRUE((*ok)["ts_ms"].is_int64());

  for (auto* ws : {wb1.get(), wb2.get()}) {
    auto e = NextEventOfType(*ws, "message");
    ASSERT_TRUE(e);
    const auto& m = EventOf(*e);
    EXPECT_EQ(Str(m, "msg_id"), msg_id);
    EXPECT_EQ(Str(m, "client_msg_id"), "m-1");
    EXPECT_EQ(m.at("conv"), json::value(ToUser(a1.user_id)));
    EXPECT_EQ(m.at("from").at("user"), a1.user_id);
    EXPECT_EQ(m.at("from").at("device"), a1.device_id);
    EXPECT_EQ(Str(m, "kind"), "text");
    EXPECT_EQ(m.at("body").at("text"), "hello");
    EXPECT_EQ(m.at("outgoing"), false);
  }
  // The sender's other device, and the sender's own stream, get the sender's copy.
  for (auto* ws : {wa2.get(), wa1.get()}) {
    auto e = NextEventOfType(*ws, "message");
    ASSERT_TRUE(e);
    const auto& m = EventOf(*e);
    EXPECT_EQ(Str(m, "msg_id"), msg_id);
    EXPECT_EQ(m.at("conv"), json::value(ToUser(b1.user_id)));
    EXPECT_EQ(m.at("outgoing"), true);
    EXPECT_EQ(SeqOf(*e), std::stoull(Str(*ok, "seq")));
  }
}

TEST_F(MessagingTest, OfflineMessagesArriveInOrderOnReconnectAndAckedOnesDoNotReturn) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  ASSERT_TRUE(wa);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(Str(*SendText(*wa, b.user_id, std::to_string(i)), "op"), "ok");

  std::uint64_t last = 0;
  {
    auto wb = Connect(*server_, b);
    ASSERT_TRUE(wb);
    for (int i = 0; i < 5; ++i) {
      auto e = NextEventOfType(*wb, "message");
      ASSERT_TRUE(e) << i;
      EXPECT_EQ(EventOf(*e).at("body").at("text"), std::to_string(i));
      EXPECT_GT(SeqOf(*e), last);
      last = SeqOf(*e);
    }
    Ack(*wb, last);
    // The ack has no answer; a ping round trip makes sure it was read.
    wb->SendJson({{"op", "ping"}});
    ASSERT_TRUE(wb->ReceiveOp("pong"));
  }
  std::this_thread::sleep_for(200ms);
  auto wb = Connect(*server_, b);
  ASSERT_TRUE(wb);
  auto e = NextEventOfType(*wb, "message", 500ms);
  EXPECT_FALSE(e) << "an acknowledged message came again";
}

TEST_F(MessagingTest, UnacknowledgedEventsAreSentAgainAfterAReconnect) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  ASSERT_TRUE(Str(*SendText(*wa, b.user_id, "once"), "op") == "ok");
  std::uint64_t seq = 0;
  {
    auto wb = Connect(*server_, b);
    auto e = NextEventOfType(*wb, "message");
    ASSERT_TRUE(e);
    seq = SeqOf(*e);
  }
  auto wb = Connect(*server_, b);
  auto e = NextEventOfType(*wb, "message");
  ASSERT_TRUE(e);
  EXPECT_EQ(SeqOf(*e), seq);
}

TEST_F(MessagingTest, BacklogIsWindowedAndAReconnectMidwayResumesFromTheCursor) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  ASSERT_TRUE(wa);
  for (int i = 0; i < 600; ++i) {
    wa->SendJson({{"op", "send"},
                  {"rid", "s" + std::to_string(i)},
                  {"to", ToUser(b.user_id)},
                  {"client_msg_id", "bk" + std::to_string(i)},
                  {"kind", "text"},
                  {"body", {{"n", i}}}});
  }
  for (int i = 0; i < 600; ++i) ASSERT_TRUE(wa->ReceiveOp("ok", 10s)) << i;

  std::uint64_t first = 0, hundredth = 0;
  {
    auto wb = Connect(*server_, b);
    ASSERT_TRUE(wb);
    std::vector<std::uint64_t> seqs;
    while (auto e = NextEvent(*wb, 500ms)) seqs.push_back(SeqOf(*e));
    // Nothing was acknowledged: at most 256 events are in flight.
    ASSERT_EQ(seqs.size(), 256u);
    for (std::size_t i = 1; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], seqs[i - 1] + 1);
    first = seqs.front();
    hundredth = seqs[99];
    Ack(*wb, hundredth);
    std::vector<std::uint64_t> more;
    while (auto e = NextEvent(*wb, 500ms)) more.push_back(SeqOf(*e));
    ASSERT_EQ(more.size(), 100u);  // the window moved by what was acknowledged
    EXPECT_EQ(more.front(), seqs.back() + 1);
    wb->Abort();
  }
  auto wb = Connect(*server_, b);
  auto e = NextEvent(*wb);
  ASSERT_TRUE(e);
  EXPECT_EQ(SeqOf(*e), hundredth + 1);
  EXPECT_GT(hundredth, first);
}

TEST_F(MessagingTest, ARepeatedSendIsADuplicateAndIsStoredOnce) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  auto first = SendText(*wa, b.user_id, "hi", "dup-1");
  auto again = SendText(*wa, b.user_id, "hi", "dup-1");
  ASSERT_TRUE(first && again);
  EXPECT_EQ((*again)["duplicate"], true);
  EXPECT_EQ(Str(*again, "msg_id"), Str(*first, "msg_id"));
  EXPECT_EQ(Str(*again, "seq"), Str(*first, "seq"));
  // From another device of the same user too.
  Account a2 = SignIn(*server_, a.phone, "other");
  auto wa2 = Connect(*server_, a2);
  auto third = SendText(*wa2, b.user_id, "hi", "dup-1");
  EXPECT_EQ((*third)["duplicate"], true);
  EXPECT_EQ(Str(*third, "msg_id"), Str(*first, "msg_id"));

  auto wb = Connect(*server_, b);
  ASSERT_TRUE(NextEventOfType(*wb, "message"));
  EXPECT_FALSE(NextEventOfType(*wb, "message", 500ms));
}

TEST_F(MessagingTest, AcksOutOfOrderAndAcksOfTheFuture) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  for (int i = 0; i < 4; ++i) SendText(*wa, b.user_id, std::to_string(i));
  std::vector<std::uint64_t> seqs;
  {
    auto wb = Connect(*server_, b);
    while (auto e = NextEvent(*wb, 500ms)) seqs.push_back(SeqOf(*e));
    ASSERT_GE(seqs.size(), 4u);
    Ack(*wb, seqs[2]);
    Ack(*wb, seqs[1]);  // late and lower: changes nothing
    auto r = wb->Request({{"op", "ack"}, {"seq", std::to_string(seqs.back() + 1000)}});
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "code"), "bad_request");
    r = wb->Request({{"op", "ack"}, {"seq", "banana"}});
    EXPECT_EQ(Str(*r, "code"), "bad_request");
  }
  std::this_thread::sleep_for(200ms);
  auto wb = Connect(*server_, b);
  auto e = NextEvent(*wb);
  ASSERT_TRUE(e);
  EXPECT_EQ(SeqOf(*e), seqs[3]);
}

TEST_F(MessagingTest, ReceiptsReachTheOfflineSendersDevicesAndReadSyncTheReaders) {
  const std::string pa = NextPhone(), pb = NextPhone();
  Account a1 = SignIn(*server_, pa, "a1"), a2 = SignIn(*server_, pa, "a2");
  Account b1 = SignIn(*server_, pb, "b1"), b2 = SignIn(*server_, pb, "b2");
  std::string m1, m2;
  {
    auto wa = Connect(*server_, a1);
    m1 = Str(*SendText(*wa, b1.user_id, "one"), "msg_id");
    m2 = Str(*SendText(*wa, b1.user_id, "two"), "msg_id");
  }
  {
    auto wb1 = Connect(*server_, b1);
    auto wb2 = Connect(*server_, b2);
    std::uint64_t last = 0;
    for (int i = 0; i < 2; ++i) last = SeqOf(*NextEventOfType(*wb1, "message"));
    Ack(*wb1, last);
    auto r = wb1->Request({{"op", "read"}, {"conv", ToUser(a1.user_id)}, {"up_to_msg_id", m2}});
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
    auto sync = NextEventOfType(*wb2, "read_sync");
    ASSERT_TRUE(sync);
    EXPECT_EQ(EventOf(*sync).at("conv"), json::value(ToUser(a1.user_id)));
    EXPECT_EQ(Str(EventOf(*sync), "up_to_msg_id"), m2);
    // A message that is not in that conversation.
    r = wb1->Request({{"op", "read"}, {"conv", ToUser(a1.user_id)}, {"up_to_msg_id", "12345"}});
    EXPECT_EQ(Str(*r, "code"), "not_found");
  }
  for (auto& dev : {a1, a2}) {
    auto wa = Connect(*server_, dev);
    auto delivered = NextEventOfType(*wa, "receipt");
    ASSERT_TRUE(delivered);
    const auto& d = EventOf(*delivered);
    EXPECT_EQ(Str(d, "status"), "delivered");
    EXPECT_EQ(Str(d, "by"), b1.user_id);
    EXPECT_EQ(d.at("conv"), json::value(ToUser(b1.user_id)));
    EXPECT_EQ(d.at("msg_ids"), json::value(json::array{json::value(m1), json::value(m2)}));
    auto read = NextEventOfType(*wa, "receipt");
    ASSERT_TRUE(read);
    EXPECT_EQ(Str(EventOf(*read), "status"), "read");
    EXPECT_EQ(EventOf(*read).at("msg_ids").as_array().size(), 2u);

    auto r = wa->Request({{"op", "receipts"}, {"msg_id", m1}});
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["members"], 1);
    ASSERT_EQ((*r)["delivered"].as_array().size(), 1u);
    EXPECT_EQ((*r)["delivered"].as_array()[0].at("user"), b1.user_id);
    ASSERT_EQ((*r)["read"].as_array().size(), 1u);
  }
  // Only the sender may ask.
  auto wb = Connect(*server_, b1);
  auto r = wb->Request({{"op", "receipts"}, {"msg_id", m1}});
  EXPECT_EQ(Str(*r, "code"), "not_found");
}

TEST_F(MessagingTest, NotesToSelfAreStoredOnceAndReachAllDevices) {
  const std::string p = NextPhone();
  Account a1 = SignIn(*server_, p, "a1"), a2 = SignIn(*server_, p, "a2");
  auto w1 = Connect(*server_, a1), w2 = Connect(*server_, a2);
  auto ok = SendText(*w1, a1.user_id, "remember the milk");
  ASSERT_EQ(Str(*ok, "op"), "ok");
  for (auto* ws : {w1.get(), w2.get()}) {
    auto e = NextEventOfType(*ws, "message");
    ASSERT_TRUE(e);
    EXPECT_EQ(EventOf(*e).at("outgoing"), true);
    EXPECT_EQ(EventOf(*e).at("conv"), json::value(ToUser(a1.user_id)));
    EXPECT_FALSE(NextEventOfType(*ws, "message", 300ms)) << "stored twice";
  }
  int code = -1;
  const std::string dump = RunAdmin(
      {"--data-dir", server_->data_dir(), "dump-user", "--user", a1.user_id, "--events"}, &code);
  ASSERT_EQ(code, 0) << dump;
  int messages = 0;
  const json::value parsed = json::parse(dump);
  for (const auto& e : parsed.at("events").as_array()) {
    messages += e.at("type") == "message";
  }
  EXPECT_EQ(messages, 1);
}

TEST_F(MessagingTest, HistoryPagesBackwardsThroughOneConversation) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  Account c = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a), wb = Connect(*server_, b);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto& ws = i % 2 == 0 ? *wa : *wb;
    ids.push_back(
        Str(*SendText(ws, i % 2 == 0 ? b.user_id : a.user_id, std::to_string(i)), "msg_id"));
  }
  auto r = wa->Request({{"op", "history"}, {"conv", ToUser(b.user_id)}, {"limit", 2}});
  ASSERT_TRUE(r);
  auto& page = (*r)["messages"].as_array();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].at("msg_id"), ids[4]);
  EXPECT_EQ(page[1].at("msg_id"), ids[3]);
  EXPECT_EQ(page[1].at("outgoing"), false);
  EXPECT_EQ((*r)["more"], true);
  r = wa->Request(
      {{"op", "history"}, {"conv", ToUser(b.user_id)}, {"limit", 100}, {"before_msg_id", ids[3]}});
  auto& rest = (*r)["messages"].as_array();
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[2].at("msg_id"), ids[0]);
  EXPECT_EQ((*r)["more"], false);
  // A conversation the user is not in shows nothing of others'.
  auto wc = Connect(*server_, c);
  r = wc->Request({{"op", "history"}, {"conv", ToUser(b.user_id)}, {"limit", 10}});
  EXPECT_EQ((*r)["messages"].as_array().size(), 0u);
  r = wc->Request({{"op", "history"}, {"conv", ToUser(b.user_id)}, {"limit", 101}});
  EXPECT_EQ(Str(*r, "code"), "bad_request");
  r = wc->Request({{"op", "history"}, {"conv", {{"group", "123"}}}, {"limit", 10}});
  EXPECT_EQ(Str(*r, "code"), "not_found");
}

TEST_F(MessagingTest, ANewDeviceStartsAtTheHeadAndReadsOlderMessagesWithHistory) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  const std::string old = Str(*SendText(*wa, b.user_id, "before the new device"), "msg_id");
  Account b2 = SignIn(*server_, b.phone, "new");
  auto wb2 = Connect(*server_, b2);
  EXPECT_FALSE(NextEventOfType(*wb2, "message", 300ms));
  auto r = wb2->Request({{"op", "history"}, {"conv", ToUser(a.user_id)}, {"limit", 10}});
  ASSERT_EQ((*r)["messages"].as_array().size(), 1u);
  EXPECT_EQ((*r)["messages"].as_array()[0].at("msg_id"), old);
  const std::string fresh = Str(*SendText(*wa, b.user_id, "after"), "msg_id");
  auto e = NextEventOfType(*wb2, "message");
  ASSERT_TRUE(e);
  EXPECT_EQ(Str(EventOf(*e), "msg_id"), fresh);
}

TEST_F(MessagingTest, BadSends) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  auto send = [&](json::object frame) {
    frame["op"] = "send";
    return *wa->Request(std::move(frame));
  };
  json::object good{
      {"to", ToUser(b.user_id)}, {"client_msg_id", "x"}, {"kind", "text"}, {"body", "hi"}};
  auto without = [&](const char* key) {
    json::object f = good;
    f.erase(key);
    return f;
  };
  EXPECT_EQ(Str(send(without("client_msg_id")), "code"), "bad_request");
  EXPECT_EQ(Str(send(without("to")), "code"), "bad_request");
  EXPECT_EQ(Str(send(without("body")), "code"), "bad_request");
  json::object f = good;
  f["to"] = ToUser("987654321");
  EXPECT_EQ(Str(send(f), "code"), "not_found");
  f = good;
  f["to"] = json::object{{"phone", b.phone}};
  EXPECT_EQ(Str(send(f), "code"), "bad_request");
  f = good;
  f["kind"] = "hologram";
  EXPECT_EQ(Str(send(f), "code"), "bad_request");
  f = good;
  f["body"] = std::string(65 * 1024, 'x');
  EXPECT_EQ(Str(send(f), "code"), "too_large");
  f = good;
  f["to"] = json::object{{"group", "123"}};
  EXPECT_EQ(Str(send(f), "code"), "not_found");
  // None of it was stored.
  auto wb = Connect(*server_, b);
  EXPECT_FALSE(NextEventOfType(*wb, "message", 300ms));
}

TEST_F(MessagingTest, TypingReachesOnlineDevicesAndIsNeverStored) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  json::object hello;
  auto wb = Connect(*server_, b, &hello);
  const std::string head_before = Str(hello, "head_seq");
  wa->SendJson({{"op", "typing"}, {"to", ToUser(b.user_id)}, {"state", "composing"}});
  auto t = wb->ReceiveOp("typing");
  ASSERT_TRUE(t);
  EXPECT_EQ((*t)["from"].at("user"), a.user_id);
  EXPECT_EQ((*t)["from"].at("device"), a.device_id);
  EXPECT_EQ((*t)["conv"], json::value(ToUser(a.user_id)));
  EXPECT_EQ(Str(*t, "state"), "composing");
  wb.reset();
  json::object again;
  auto wb2 = Connect(*server_, b, &again);
  EXPECT_EQ(Str(again, "head_seq"), head_before);
  EXPECT_FALSE(wb2->ReceiveOp("typing", 300ms));
  auto r = wa->Request({{"op", "typing"}, {"to", ToUser(b.user_id)}, {"state", "dancing"}});
  EXPECT_EQ(Str(*r, "code"), "bad_request");
}

TEST_F(MessagingTest, PresenceFollowsTheDevicesAndHonoursVisibility) {
  const std::string pa = NextPhone();
  Account a1 = SignIn(*server_, pa, "a1"), a2 = SignIn(*server_, pa, "a2");
  Account c = SignIn(*server_, NextPhone());
  auto wc = Connect(*server_, c);
  auto r =
      wc->Request({{"op", "presence.subscribe"}, {"users", json::array{json::value(a1.user_id)}}});
  ASSERT_TRUE(r);
  ASSERT_EQ((*r)["statuses"].as_array().size(), 1u);
  EXPECT_EQ((*r)["statuses"].as_array()[0].at("online"), false);

  auto w1 = Connect(*server_, a1);
  auto p = wc->ReceiveOp("presence");
  ASSERT_TRUE(p);
  EXPECT_EQ(Str(*p, "user"), a1.user_id);
  EXPECT_EQ((*p)["online"], true);
  auto w2 = Connect(*server_, a2);
  w1.reset();
  EXPECT_FALSE(wc->ReceiveOp("presence", 300ms)) << "still online through the second device";
  w2.reset();
  p = wc->ReceiveOp("presence");
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)["online"], false);
  ASSERT_TRUE((*p)["last_seen_ms"].is_int64());

  // "nobody": neither online nor last seen.
  w1 = Connect(*server_, a1);
  ASSERT_TRUE(wc->ReceiveOp("presence"));
  w1->Request({{"op", "profile.set"}, {"last_seen_visibility", "nobody"}});
  r = wc->Request({{"op", "presence.subscribe"}, {"users", json::array{json::value(a1.user_id)}}});
  EXPECT_EQ((*r)["statuses"].as_array()[0].at("online"), false);
  EXPECT_TRUE((*r)["statuses"].as_array()[0].at("last_seen_ms").is_null());
  w1.reset();
  EXPECT_FALSE(wc->ReceiveOp("presence", 300ms));
}

TEST(MessagingFlood, SendsOverTheLimitAreRefusedAndAFloodCloses4429) {
  Parleyd server(Parleyd::Options{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone",
                                           "0", "--device-send-rate", "5"}});
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone()), b = SignIn(server, NextPhone());
  Account c = SignIn(server, NextPhone());
  auto wa = Connect(server, a), wc = Connect(server, c);
  int ok = 0, limited = 0;
  std::optional<std::uint16_t> closed;
  for (int i = 0; i < 200 && !closed; ++i) {
    auto r = SendText(*wa, b.user_id, "spam", "", 1s);
    if (!r) {
      closed = wa->WaitClosed(1s);
      break;
    }
    if (Str(*r, "op") == "ok") ++ok;
    if (Str(*r, "code") == "rate_limited") {
      ++limited;
      EXPECT_TRUE((*r)["retry_after_ms"].is_int64());
    }
  }
  EXPECT_GE(ok, 20);  // the burst is 4 x 5
  EXPECT_LE(ok, 25);
  EXPECT_GE(limited, 1);
  EXPECT_EQ(closed, 4429);
  // Another user does not feel it.
  EXPECT_EQ(Str(*SendText(*wc, b.user_id, "fine"), "op"), "ok");
}

TEST_F(MessagingTest, ALiveMessageOvertakesALongBacklog) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a);
  for (int i = 0; i < 2000; ++i) {
    wa->SendJson({{"op", "send"},
                  {"rid", "s" + std::to_string(i)},
                  {"to", ToUser(b.user_id)},
                  {"client_msg_id", "bl" + std::to_string(i)},
                  {"kind", "text"},
                  {"body", i}});
  }
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(wa->ReceiveOp("ok", 10s));
  auto wb = Connect(*server_, b);
  ASSERT_TRUE(NextEvent(*wb));  // the backlog has started; nothing is acknowledged
  const auto sent_at = std::chrono::steady_clock::now();
  auto ok = SendText(*wa, b.user_id, "urgent");
  const std::string id = Str(*ok, "msg_id");
  for (;;) {
    auto e = NextEvent(*wb, 2s);
    ASSERT_TRUE(e) << "the live message never came";
    if (Str(EventOf(*e), "msg_id") == id) break;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - sent_at, 1s);
}

}  // namespace
}  // namespace parley::test
