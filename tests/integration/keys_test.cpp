// The key directory and encrypted sends over real sockets (PROTOCOL.md
// section 4: keys.upload, keys.bundle, keys.count, "End-to-end encryption";
// section 3: keys_changed).
#include <set>
#include <thread>

#include "integration/helpers.hpp"
#include "integration/key_material.hpp"

namespace parley::test {
namespace {

json::array Prekeys(int first, int n) {
  json::array a;
  for (int i = first; i < first + n; ++i) {
    a.push_back(json::object{{"id", i}, {"key", Key("otk" + std::to_string(i))}});
  }
  return a;
}

json::object Upload(const std::string& identity_seed, int first_prekey, int prekeys) {
  return {{"op", "keys.upload"},
          {"identity_key", Key(identity_seed)},
          {"registration_id", 42},
          {"signed_prekey",
           {{"id", 1}, {"key", Key("spk" + identity_seed)}, {"signature", Sig(identity_seed)}}},
          {"one_time_prekeys", Prekeys(first_prekey, prekeys)}};
}

json::object Ct(const Account& a, const std::string& data) {
  return {{"user", a.user_id}, {"device", a.device_id}, {"type", "message"}, {"data", B64(data)}};
}

json::object E2ee(const json::object& to, const Account& sender, json::array cts,
                  const std::string& kind = "e2ee") {
  return {{"op", "send"},
          {"to", to},
          {"client_msg_id", NextClientMsgId()},
          {"kind", kind},
          {"body", {{"sender_device", sender.device_id}, {"ciphertexts", std::move(cts)}}}};
}

std::set<std::pair<std::string, std::string>> Addrs(const json::value& list) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& v : list.as_array()) {
    out.emplace(Str(v.as_object(), "user"), Str(v.as_object(), "device"));
  }
  return out;
}

// The next keys_changed event about that device (others are skipped: each
// device's own first upload announces it too).
std::optional<json::object> NextKeysChanged(WsClient& ws, const Account& about,
                                            const std::string& change) {
  for (int i = 0; i < 10; ++i) {
    auto e = NextEventOfType(ws, "keys_changed");
    if (!e) return std::nullopt;
    const auto& ev = EventOf(*e);
    if (Str(ev, "user") == about.user_id && Str(ev, "device") == about.device_id &&
        Str(ev, "change") == change) {
      return e;
    }
  }
  return std::nullopt;
}

class KeysTest : public SharedParleydTest<KeysTest> {
 protected:
  static void ExpectOk(const std::optional<json::object>& r) {
    ASSERT_TRUE(r.has_value()) << "no answer";
    EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
  }
  static void ExpectError(const std::optional<json::object>& r, const std::string& code,
                          const std::string& message_prefix = "") {
    ASSERT_TRUE(r.has_value()) << "no answer";
    EXPECT_EQ(Str(*r, "op"), "error") << json::serialize(*r);
    EXPECT_EQ(Str(*r, "code"), code) << json::serialize(*r);
    EXPECT_TRUE(Str(*r, "message").starts_with(message_prefix)) << json::serialize(*r);
  }
};

TEST_F(KeysTest, UploadCountAndBundleRoundTrip) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a), wb = Connect(*server_, b);
  ASSERT_TRUE(wa && wb);
  auto count = wb->Request({{"op", "keys.count"}});
  ExpectOk(count);
  EXPECT_EQ(count->at("one_time_prekeys_left"), json::value(0));

  auto up = wb->Request(Upload("bob", 100, 5));
  ExpectOk(up);
  EXPECT_EQ(up->at("one_time_prekeys_left"), json::value(5));
  count = wb->Request({{"op", "keys.count"}});
  EXPECT_EQ(count->at("one_time_prekeys_left"), json::value(5));

  auto bundle = wa->Request({{"op", "keys.bundle"}, {"user", b.user_id}});
  ExpectOk(bundle);
  const auto& devices = bundle->at("devices").as_array();
  ASSERT_EQ(devices.size(), 1u);
  const auto& d = devices[0].as_object();
  EXPECT_EQ(d.at("device_id"), b.device_id);
  // Ids are strings on the wire (the contract's opening paragraph).
  EXPECT_EQ(d.at("registration_id"), json::value("42"));
  EXPECT_EQ(d.at("identity_key"), Key("bob"));
  EXPECT_EQ(d.at("signed_prekey").at("id"), json::value("1"));
  EXPECT_EQ(d.at("signed_prekey").at("key"), Key("spkbob"));
  EXPECT_EQ(d.at("signed_prekey").at("signature"), Sig("bob"));
  EXPECT_EQ(d.at("one_time_prekey").at("id"), json::value("100"));
  EXPECT_EQ(d.at("one_time_prekey").at("key"), Key("otk100"));
  count = wb->Request({{"op", "keys.count"}});
  EXPECT_EQ(count->at("one_time_prekeys_left"), json::value(4));

  // A later upload adds prekeys without the rest.
  up = wb->Request({{"op", "keys.upload"}, {"one_time_prekeys", Prekeys(200, 3)}});
  ExpectOk(up);
  EXPECT_EQ(up->at("one_time_prekeys_left"), json::value(7));

  // The operator's dump shows the current device's public keys.
  int code = -1;
  const std::string dump =
      RunAdmin({"--data-dir", server_->data_dir(), "dump-user", "--user", b.user_id}, &code);
  ASSERT_EQ(code, 0) << dump;
  const json::value parsed = json::parse(dump);
  const auto& keys = parsed.at("devices").as_array().at(0).at("keys");
  EXPECT_EQ(keys.at("identity_key"), Key("bob"));
  EXPECT_EQ(keys.at("one_time_prekeys_left"), json::value(7));
}

TEST_F(KeysTest, EachOneTimePrekeyIsHandedOutOnceUnderConcurrentFetches) {
  Account b = SignIn(*server_, NextPhone());
  auto wb = Connect(*server_, b);
  ASSERT_TRUE(wb);
  ExpectOk(wb->Request(Upload("target", 1, 50)));

  constexpr int kFetchers = 8;
  constexpr int kEach = 8;  // 64 fetches for 50 prekeys
  std::vector<Account> fetchers;
  for (int i = 0; i < kFetchers; ++i) fetchers.push_back(SignIn(*server_, NextPhone()));
  std::vector<std::unique_ptr<WsClient>> sockets;
  for (const auto& f : fetchers) sockets.push_back(Connect(*server_, f));
  std::vector<std::vector<json::object>> answers(kFetchers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kFetchers; ++i) {
    threads.emplace_back([&, i] {
      // Pipelined: all of one socket's requests are in flight at once.
      std::vector<std::string> rids;
      for (int j = 0; j < kEach; ++j) {
        rids.push_back("r" + std::to_string(j));
        sockets[i]->SendJson({{"op", "keys.bundle"}, {"rid", rids.back()}, {"user", b.user_id}});
      }
      for (int j = 0; j < kEach; ++j) {
        auto r = sockets[i]->ReceiveOp("ok", 10s);
        if (r) answers[i].push_back(*r);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::int64_t> ids;
  int without = 0;
  for (const auto& list : answers) {
    ASSERT_EQ(list.size(), static_cast<std::size_t>(kEach));
    for (const auto& r : list) {
      const auto& d = r.at("devices").as_array().at(0).as_object();
      if (!d.contains("one_time_prekey")) {
        ++without;
        continue;
      }
      const auto id = std::stoll(std::string(d.at("one_time_prekey").at("id").as_string()));
      EXPECT_TRUE(ids.insert(id).second) << "prekey " << id << " handed out twice";
    }
  }
  EXPECT_EQ(ids.size(), 50u);
  EXPECT_EQ(without, kFetchers * kEach - 50);
  auto count = wb->Request({{"op", "keys.count"}});
  EXPECT_EQ(count->at("one_time_prekeys_left"), json::value(0));
  auto again = sockets[0]->Request({{"op", "keys.bundle"}, {"user", b.user_id}});
  ExpectOk(again);
  EXPECT_FALSE(again->at("devices").as_array().at(0).as_object().contains("one_time_prekey"));
}

TEST_F(KeysTest, NewAndRemovedDevicesAnnounceThemselvesAndMakeTheOldSetStale) {
  const std::string pb = NextPhone();
  Account a = SignIn(*server_, NextPhone()), b1 = SignIn(*server_, pb, "b1");
  auto wa = Connect(*server_, a), wb1 = Connect(*server_, b1);
  ASSERT_TRUE(wa && wb1);
  ExpectOk(wa->Request(Upload("a", 1, 5)));
  ExpectOk(wb1->Request(Upload("b1", 1, 5)));
  ExpectOk(SendText(*wa, b1.user_id, "hello"));  // a conversation: they are peers now
  ExpectOk(wa->Request(E2ee(ToUser(b1.user_id), a, {Ct(b1, "for b1")})));

  // b's second device uploads its first keys: a hears of it.
  Account b2 = SignIn(*server_, pb, "b2");
  auto wb2 = Connect(*server_, b2);
  ASSERT_TRUE(wb2);
  ExpectOk(wb2->Request(Upload("b2", 1, 5)));
  auto changed = NextKeysChanged(*wa, b2, "added");
  ASSERT_TRUE(changed);
  const auto& e = EventOf(*changed);
  EXPECT_EQ(e.at("user"), b1.user_id);
  EXPECT_EQ(e.at("device"), b2.device_id);
  EXPECT_EQ(e.at("change"), std::string("added"));
  std::set<std::string> current;
  for (const auto& d : e.at("devices").as_array()) current.insert(std::string(d.as_string()));
  EXPECT_EQ(current, (std::set<std::string>{b1.device_id, b2.device_id}));
  // b's other device hears of it too.
  EXPECT_TRUE(NextKeysChanged(*wb1, b2, "added"));

  // The old set is now stale: b2 is missing.
  auto stale = wa->Request(E2ee(ToUser(b1.user_id), a, {Ct(b1, "x")}));
  ExpectError(stale, "stale_devices");
  EXPECT_EQ(Addrs(stale->at("missing")),
            (std::set<std::pair<std::string, std::string>>{{b2.user_id, b2.device_id}}));
  EXPECT_TRUE(stale->at("extra").as_array().empty());
  ExpectOk(wa->Request(E2ee(ToUser(b1.user_id), a, {Ct(b1, "x"), Ct(b2, "y")})));

  // b removes b2: its keys go, a hears of it, and a ciphertext for it is extra.
  ExpectOk(wb1->Request({{"op", "devices.remove"}, {"device_id", b2.device_id}}));
  auto removed = NextKeysChanged(*wa, b2, "removed");
  ASSERT_TRUE(removed);
  EXPECT_EQ(EventOf(*removed).at("devices"), json::value(json::array{json::value(b1.device_id)}));
  stale = wa->Request(E2ee(ToUser(b1.user_id), a, {Ct(b1, "x"), Ct(b2, "y")}));
  ExpectError(stale, "stale_devices");
  EXPECT_TRUE(stale->at("missing").as_array().empty());
  EXPECT_EQ(Addrs(stale->at("extra")),
            (std::set<std::pair<std::string, std::string>>{{b2.user_id, b2.device_id}}));
  auto bundle = wa->Request({{"op", "keys.bundle"}, {"user", b1.user_id}});
  ExpectOk(bundle);
  ASSERT_EQ(bundle->at("devices").as_array().size(), 1u);
  EXPECT_EQ(bundle->at("devices").as_array()[0].at("device_id"), b1.device_id);
}

TEST_F(KeysTest, EachDeviceReceivesOnlyItsOwnCiphertext) {
  const std::string pa = NextPhone(), pb = NextPhone();
  Account a1 = SignIn(*server_, pa, "a1"), a2 = SignIn(*server_, pa, "a2");
  Account b1 = SignIn(*server_, pb, "b1"), b2 = SignIn(*server_, pb, "b2");
  auto wa1 = Connect(*server_, a1), wa2 = Connect(*server_, a2);
  auto wb1 = Connect(*server_, b1), wb2 = Connect(*server_, b2);
  ASSERT_TRUE(wa1 && wa2 && wb1 && wb2);
  int n = 0;
  for (auto* ws : {wa1.get(), wa2.get(), wb1.get(), wb2.get()}) {
    ExpectOk(ws->Request(Upload("dev" + std::to_string(n++), 1, 2)));
  }
  // The own user's bundle serves the other devices only.
  auto own = wa1->Request({{"op", "keys.bundle"}, {"user", a1.user_id}});
  ExpectOk(own);
  ASSERT_EQ(own->at("devices").as_array().size(), 1u);
  EXPECT_EQ(own->at("devices").as_array()[0].at("device_id"), a2.device_id);

  auto sent = wa1->Request(
      E2ee(ToUser(b1.user_id), a1, {Ct(b1, "to-b1"), Ct(b2, "to-b2"), Ct(a2, "to-a2")}));
  ExpectOk(sent);
  const std::string msg_id = Str(*sent, "msg_id");
  auto check = [&](const json::object& m, const Account* me) {
    EXPECT_EQ(Str(m, "msg_id"), msg_id);
    EXPECT_EQ(m.at("kind"), std::string("e2ee"));
    EXPECT_EQ(m.at("body").at("sender_device"), a1.device_id);
    const auto& cts = m.at("body").at("ciphertexts").as_array();
    if (me == nullptr) {
      EXPECT_TRUE(cts.empty()) << json::serialize(m);
      return;
    }
    ASSERT_EQ(cts.size(), 1u) << json::serialize(m);
    EXPECT_EQ(cts[0].at("user"), me->user_id);
    EXPECT_EQ(cts[0].at("device"), me->device_id);
    EXPECT_EQ(cts[0].at("data"), B64("to-" + std::string(me == &b1   ? "b1"
                                                         : me == &b2 ? "b2"
                                                                     : "a2")));
  };
  std::uint64_t b1_seq = 0;
  for (auto [ws, me] : {std::pair{wb1.get(), &b1}, std::pair{wb2.get(), &b2},
                        std::pair{wa2.get(), &a2}, std::pair{wa1.get(), (Account*)nullptr}}) {
    auto e = NextEventOfType(*ws, "message");
    ASSERT_TRUE(e);
    check(EventOf(*e), me);
    if (ws == wb1.get()) b1_seq = SeqOf(*e);
  }
  // After a reconnect (nothing acknowledged): the backlog is cut the same way.
  wb1->Close();
  wb1 = Connect(*server_, b1);
  ASSERT_TRUE(wb1);
  for (;;) {
    auto e = NextEventOfType(*wb1, "message");
    ASSERT_TRUE(e);
    if (SeqOf(*e) != b1_seq) continue;
    check(EventOf(*e), &b1);
    break;
  }
  // And history.
  for (auto [ws, me, peer] : {std::tuple{wb2.get(), &b2, &a1}, std::tuple{wa2.get(), &a2, &b1}}) {
    auto h = ws->Request({{"op", "history"}, {"conv", ToUser(peer->user_id)}, {"limit", 10}});
    ExpectOk(h);
    bool found = false;
    for (const auto& m : h->at("messages").as_array()) {
      if (Str(m.as_object(), "msg_id") != msg_id) continue;
      found = true;
      check(m.as_object(), me);
    }
    EXPECT_TRUE(found);
  }
}

TEST_F(KeysTest, GroupSendsCheckEveryMembersDevicesAndSenderKeysGoToOneDevice) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone()),
          c = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a), wb = Connect(*server_, b), wc = Connect(*server_, c);
  ASSERT_TRUE(wa && wb && wc);
  ExpectOk(wa->Request(Upload("ga", 1, 2)));
  ExpectOk(wb->Request(Upload("gb", 1, 2)));
  auto g = wa->Request(
      {{"op", "group.create"}, {"name", "g"}, {"members", json::array{b.user_id, c.user_id}}});
  ExpectOk(g);
  const json::object to{{"group", Str(*g, "group_id")}};
  // c has no keys yet: b is all there is.
  ExpectOk(wa->Request(E2ee(to, a, {Ct(b, "gb")})));
  ExpectOk(wc->Request(Upload("gc", 1, 2)));
  EXPECT_TRUE(NextKeysChanged(*wa, c, "added"));
  auto stale = wa->Request(E2ee(to, a, {Ct(b, "gb")}));
  ExpectError(stale, "stale_devices");
  EXPECT_EQ(Addrs(stale->at("missing")),
            (std::set<std::pair<std::string, std::string>>{{c.user_id, c.device_id}}));
  ExpectOk(wa->Request(E2ee(to, a, {Ct(b, "gb"), Ct(c, "gc")})));

  // sender_key: pairwise, to the one device it names.
  ExpectOk(wa->Request(E2ee(to, a, {Ct(c, "sk")}, "sender_key")));
  for (;;) {
    auto e = NextEventOfType(*wc, "message");
    ASSERT_TRUE(e);
    if (Str(EventOf(*e), "kind") != "sender_key") continue;
    const auto& cts = EventOf(*e).at("body").at("ciphertexts").as_array();
    ASSERT_EQ(cts.size(), 1u);
    EXPECT_EQ(cts[0].at("data"), B64("sk"));
    break;
  }
  // A former member's device is extra.
  ExpectOk(wa->Request({{"op", "group.remove"},
                        {"group_id", Str(*g, "group_id")},
                        {"users", json::array{c.user_id}}}));
  stale = wa->Request(E2ee(to, a, {Ct(c, "sk")}, "sender_key"));
  ExpectError(stale, "stale_devices");
  EXPECT_EQ(Addrs(stale->at("extra")),
            (std::set<std::pair<std::string, std::string>>{{c.user_id, c.device_id}}));
}

TEST_F(KeysTest, BadInputsAreRefusedWithTheContractsCodeAndTheConnectionSurvives) {
  Account a = SignIn(*server_, NextPhone()), b = SignIn(*server_, NextPhone()),
          c = SignIn(*server_, NextPhone());
  auto wa = Connect(*server_, a), wb = Connect(*server_, b);
  ASSERT_TRUE(wa && wb);
  // Uploads.
  ExpectError(wa->Request({{"op", "keys.upload"}, {"one_time_prekeys", Prekeys(1, 1)}}),
              "bad_request", "identity_key");
  ExpectError(wa->Request({{"op", "keys.upload"}, {"identity_key", 5}}), "bad_request",
              "identity_key");
  ExpectError(wa->Request({{"op", "keys.upload"}, {"identity_key", "not base64!"}}), "bad_request",
              "identity_key");
  ExpectError(wa->Request({{"op", "keys.upload"}, {"identity_key", B64("short")}}), "bad_request",
              "identity_key");
  auto up = Upload("bad", 1, 1);
  up["signed_prekey"].as_object().erase("signature");
  ExpectError(wa->Request(up), "bad_request", "signed_prekey.signature");
  up = Upload("bad", 1, 1);
  up["registration_id"] = "x";
  ExpectError(wa->Request(up), "bad_request", "registration_id");
  ExpectError(wa->Request(Upload("bad", 1, 101)), "bad_request", "one_time_prekeys");
  up = Upload("bad", 1, 1);
  up["one_time_prekeys"] = "all of them";
  ExpectError(wa->Request(up), "bad_request", "one_time_prekeys");
  up = Upload("bad", 1, 1);
  up["one_time_prekeys"].as_array().push_back(json::object{{"id", 1}, {"key", Key("dup")}});
  ExpectError(wa->Request(up), "bad_request", "one_time_prekeys");
  up = Upload("bad", 1, 1);
  up["one_time_prekeys"].as_array()[0].as_object()["id"] = -1;
  ExpectError(wa->Request(up), "bad_request", "one_time_prekeys.id");
  ExpectError(wa->Request({{"op", "keys.upload"}, {"identity_key", Key("n")}}), "bad_request",
              "signed_prekey");
  // The cap per device: 1000.
  for (int i = 0; i < 10; ++i) ExpectOk(wa->Request(Upload("a", 1 + 100 * i, 100)));
  ExpectError(wa->Request(Upload("a", 5000, 1)), "bad_request", "one_time_prekeys");
  auto count = wa->Request({{"op", "keys.count"}});
  EXPECT_EQ(count->at("one_time_prekeys_left"), json::value(1000));

  // Bundles.
  ExpectError(wa->Request({{"op", "keys.bundle"}, {"user", 5}}), "bad_request", "user");
  ExpectError(wa->Request({{"op", "keys.bundle"}}), "bad_request", "user");
  ExpectError(wa->Request({{"op", "keys.bundle"}, {"user", "1234567"}}), "not_found");
  ExpectError(wa->Request({{"op", "keys.bundle"}, {"user", b.user_id}}), "not_found");
  ExpectError(wa->Request({{"op", "keys.bundle"}, {"user", a.user_id}}), "not_found");

  // Envelopes.
  ExpectOk(wb->Request(Upload("b", 1, 1)));
  const json::object to = ToUser(b.user_id);
  auto send = [&](json::value body) {
    return wa->Request({{"op", "send"},
                        {"to", to},
                        {"client_msg_id", NextClientMsgId()},
                        {"kind", "e2ee"},
                        {"body", std::move(body)}});
  };
  ExpectError(send("text"), "bad_request", "body");
  ExpectError(send(json::object{{"ciphertexts", json::array{Ct(b, "x")}}}), "bad_request",
              "body.sender_device");
  ExpectError(send(json::object{{"sender_device", 7}, {"ciphertexts", json::array{Ct(b, "x")}}}),
              "bad_request", "body.sender_device");
  ExpectError(
      send(json::object{{"sender_device", b.device_id}, {"ciphertexts", json::array{Ct(b, "x")}}}),
      "bad_request", "body.sender_device");
  ExpectError(send(json::object{{"sender_device", a.device_id}}), "bad_request",
              "body.ciphertexts");
  ExpectError(send(json::object{{"sender_device", a.device_id}, {"ciphertexts", "x"}}),
              "bad_request", "body.ciphertexts");
  ExpectError(send(json::object{{"sender_device", a.device_id},
                                {"ciphertexts", json::array{Ct(b, "x"), Ct(b, "y")}}}),
              "bad_request", "body.ciphertexts");
  ExpectError(send(json::object{{"sender_device", a.device_id},
                                {"ciphertexts", json::array{Ct(b, "x"), Ct(c, "y")}}}),
              "bad_request", "body.ciphertexts");
  ExpectError(send(json::object{{"sender_device", a.device_id},
                                {"ciphertexts", json::array{Ct(b, "x"), Ct(a, "self")}}}),
              "bad_request", "body.ciphertexts");
  auto bad = Ct(b, "x");
  bad["data"] = "%%%";
  ExpectError(send(json::object{{"sender_device", a.device_id}, {"ciphertexts", json::array{bad}}}),
              "bad_request", "body.ciphertexts.data");
  bad = Ct(b, "x");
  bad["type"] = "plain";
  ExpectError(send(json::object{{"sender_device", a.device_id}, {"ciphertexts", json::array{bad}}}),
              "bad_request", "body.ciphertexts.type");
  bad = Ct(b, "x");
  bad["user"] = "alice";
  ExpectError(send(json::object{{"sender_device", a.device_id}, {"ciphertexts", json::array{bad}}}),
              "bad_request", "body.ciphertexts.user");
  bad = Ct(b, "x");
  bad["device"] = 12;
  ExpectError(send(json::object{{"sender_device", a.device_id}, {"ciphertexts", json::array{bad}}}),
              "bad_request", "body.ciphertexts.device");
  ExpectError(send(json::object{{"sender_device", a.device_id},
                                {"ciphertexts", json::array{Ct(b, "x")}},
                                {"plaintext", "oops"}}),
              "bad_request", "body.plaintext");
  // An unknown peer is not_found, whatever the envelope says.
  auto unknown = E2ee(ToUser("1234567"), a, {Ct(b, "x")});
  ExpectError(wa->Request(unknown), "not_found");
  // A correct one goes through, on the same connection; its retry is a duplicate.
  auto good = E2ee(to, a, {Ct(b, "x")});
  auto first = wa->Request(good);
  ExpectOk(first);
  auto retry = wa->Request(good);
  ExpectOk(retry);
  EXPECT_EQ(retry->at("duplicate"), json::value(true));
  EXPECT_EQ(Str(*retry, "msg_id"), Str(*first, "msg_id"));
  ASSERT_TRUE(wa->SendJson({{"op", "ping"}}));
  EXPECT_TRUE(wa->ReceiveOp("pong"));
}

}  // namespace
}  // namespace parley::test
