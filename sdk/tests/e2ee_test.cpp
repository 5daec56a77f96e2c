// End-to-end encryption through a real parleyd with the libsignal backend
// (the default when parley_sdk_signal is linked): 1:1 messages between two
// users with two devices each, a new device repaired in through
// stale_devices, tampered ciphertexts, groups under Sender Keys with a
// removed member, one-time prekeys replenished, safety numbers, and a dump
// of every event the server stored holding no plaintext.
#include <boost/json.hpp>
#include <filesystem>

#include "parley/signal_crypto.hpp"
#include "sdk_helpers.hpp"
#include "wire.hpp"

namespace parley::sdk::testing {
namespace {

namespace json = boost::json;

class E2eeTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }

  // A device with the default backend (libsignal), online, keys published.
  std::unique_ptr<Client> Device(const std::string& phone, const std::string& name,
                                 std::function<void(ClientOptions&)> tweak = nullptr) {
    auto c = Login(phone, name, [&](ClientOptions& o) {
      o.crypto = nullptr;  // the default
      if (tweak) tweak(o);
    });
    if (!c) return nullptr;
    EXPECT_TRUE(StartSynced(*c));
    auto left = c->PublishKeys().get();
    EXPECT_TRUE(left) << left.error().ToString();
    return c;
  }

  static std::optional<Message> Next(Client& c, const std::string& text = {}) {
    auto e = WaitFor<MessageEvent>(
        c, [&](const MessageEvent& m) { return text.empty() || m.message.text == text; });
    if (!e) return std::nullopt;
    return e->message;
  }

  // The raw (server-side) bodies of the newest `n` messages in `conv`
  // (newest first), as `c`'s device is given them.
  static std::vector<json::object> RawNewest(Client& c, const json::object& conv, int n) {
    auto r =
        c.Request(json::serialize(json::object{{"op", "history"}, {"conv", conv}, {"limit", n}}))
            .get();
    EXPECT_TRUE(r) << r.error().ToString();
    std::vector<json::object> out;
    if (!r) return out;
    const json::value answer = json::parse(*r);  // outlives the loop
    for (const auto& v : answer.at("messages").as_array()) {
      out.push_back(v.as_object());
    }
    EXPECT_EQ(out.size(), static_cast<std::size_t>(n));
    return out;
  }
  static json::object RawNewest(Client& c, const json::object& conv) {
    auto list = RawNewest(c, conv, 1);
    return list.empty() ? json::object{} : list[0];
  }
};

TEST_F(E2eeTest, TwoUsersWithTwoDevicesEachExchangeEncryptedMessages) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a1 = Device(pa, "a1");
  auto a2 = Device(pa, "a2");
  auto b1 = Device(pb, "b1");
  auto b2 = Device(pb, "b2");
  ASSERT_TRUE(a1 && a2 && b1 && b2);
  const auto au = a1->account()->user_id, bu = b1->account()->user_id;

  auto sent = a1->SendText(Conv::User(bu), "hello bob, encrypted").get();
  ASSERT_TRUE(sent) << sent.error().ToString();
  for (auto* c : {b1.get(), b2.get()}) {
    auto m = Next(*c);
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->decrypt_error) << m->decrypt_error->ToString();
    EXPECT_TRUE(m->encrypted);
    EXPECT_EQ(m->kind, "text");
    EXPECT_EQ(m->text, "hello bob, encrypted");
    EXPECT_EQ(m->msg_id, sent->msg_id);
  }
  auto copy = Next(*a2);  // the sender's other device reads its own message
  ASSERT_TRUE(copy);
  EXPECT_TRUE(copy->outgoing);
  EXPECT_EQ(copy->text, "hello bob, encrypted");

  // The reply, from the other device, both ways (sessions both directions).
  ASSERT_TRUE(b2->SendText(Conv::User(au), "hi alice").get());
  for (auto* c : {a1.get(), a2.get(), b1.get()}) {
    auto m = Next(*c, "hi alice");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->encrypted);
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a2->SendText(Conv::User(bu), "ratchet " + std::to_string(i)).get());
  }
  for (int i = 0; i < 3; ++i) {
    auto m = Next(*b1);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->text, "ratchet " + std::to_string(i));
  }

  // What the server holds is an envelope, one ciphertext for this device.
  auto raw = RawNewest(*b1, json::object{{"user", au}});
  EXPECT_EQ(raw.at("kind"), "e2ee");
  const auto& cts = raw.at("body").at("ciphertexts").as_array();
  ASSERT_EQ(cts.size(), 1u);
  EXPECT_EQ(cts[0].at("device"), json::value(b1->account()->device_id));
  // History from the local store, decrypted once.
  auto page = b1->History(Conv::User(au)).get();
  ASSERT_TRUE(page);
  ASSERT_FALSE(page->messages.empty());
  EXPECT_EQ(page->messages[0].text, "ratchet 2");
}

TEST_F(E2eeTest, ANewDeviceIsRepairedInThroughStaleDevices) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Device(pa, "sa");
  auto b1 = Device(pb, "sb1");
  ASSERT_TRUE(a && b1);
  const auto bu = b1->account()->user_id;
  // Alice checks Bob's safety number first: her client now knows Bob's one
  // device and has a session with it, before they share a conversation
  // (so no keys_changed will tell her about a new device of his).
  auto number = a->SafetyNumber(bu).get();
  ASSERT_TRUE(number) << number.error().ToString();

  auto b2 = Device(pb, "sb2");
  ASSERT_TRUE(b2);
  // Alice's list says one device; the server says two: stale_devices, the
  // SDK fetches the missing device's bundle and sends again, with the same
  // client_msg_id.
  auto sent = a->SendText(Conv::User(bu), "for both of bob's devices", "cmid-stale-1").get();
  ASSERT_TRUE(sent) << sent.error().ToString();
  EXPECT_EQ(sent->client_msg_id, "cmid-stale-1");
  EXPECT_FALSE(sent->duplicate);
  for (auto* c : {b1.get(), b2.get()}) {
    auto m = Next(*c, "for both of bob's devices");
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->decrypt_error);
    EXPECT_EQ(m->client_msg_id, "cmid-stale-1");
  }
  // The server stored it once.
  auto local = a->LocalMessages(Conv::User(bu)).get();
  ASSERT_TRUE(local);
  EXPECT_EQ(local->size(), 1u);

  // A removed device is extra: the next send drops it and goes through.
  ASSERT_TRUE(b1->RemoveDevice(b2->account()->device_id).get());
  auto after = a->SendText(Conv::User(bu), "only b1 now").get();
  ASSERT_TRUE(after) << after.error().ToString();
  auto m = Next(*b1, "only b1 now");
  ASSERT_TRUE(m);
}

TEST_F(E2eeTest, TamperedCiphertextsAreRefusedWithAClearError) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Device(pa, "ta");
  auto b = Device(pb, "tb");
  ASSERT_TRUE(a && b);
  const auto au = a->account()->user_id, bu = b->account()->user_id;
  ASSERT_TRUE(a->SendText(Conv::User(bu), "first").get());
  ASSERT_TRUE(Next(*b, "first"));
  ASSERT_TRUE(a->SendText(Conv::User(bu), "second").get());
  ASSERT_TRUE(Next(*b, "second"));

  // Alice's device sends, raw, the body of her last message with bytes of
  // the ciphertext flipped; then a truncated one; then garbage.
  auto raw = RawNewest(*b, json::object{{"user", au}});
  auto ct = raw.at("body").at("ciphertexts").as_array()[0].as_object();
  auto bytes = *detail::Base64Decode(std::string(ct.at("data").as_string()));
  std::vector<std::string> bad;
  {
    auto flipped = bytes;
    flipped[flipped.size() / 2] ^= 0x40;
    bad.push_back(flipped);
    bad.push_back(bytes.substr(0, bytes.size() / 2));
    bad.push_back("\x33not a signal message at all");
  }
  int n = 0;
  for (const auto& data : bad) {
    auto body = json::object{
        {"sender_device", a->account()->device_id},
        {"ciphertexts", json::array{json::object{{"user", bu},
                                                 {"device", b->account()->device_id},
                                                 {"type", "message"},
                                                 {"data", detail::Base64Encode(data)}}}}};
    auto frame = json::object{{"op", "send"},
                              {"to", json::object{{"user", bu}}},
                              {"client_msg_id", "tamper-" + std::to_string(n++)},
                              {"kind", "e2ee"},
                              {"body", body}};
    auto r = a->Request(json::serialize(frame)).get();
    ASSERT_TRUE(r) << r.error().ToString();
    auto m = Next(*b);
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->decrypt_error.has_value()) << m->text;
    EXPECT_EQ(m->kind, "e2ee");
    EXPECT_TRUE(m->text.empty());
    EXPECT_NE(m->decrypt_error->message.find("could not decrypt"), std::string::npos)
        << m->decrypt_error->ToString();
    EXPECT_NE(m->decrypt_error->message.find(au), std::string::npos);
  }
  // The session survived: the next real message reads.
  ASSERT_TRUE(a->SendText(Conv::User(bu), "third").get());
  auto third = Next(*b, "third");
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->decrypt_error);
  EXPECT_EQ(b->state(), ConnectionEvent::State::kSynced);
}

TEST_F(E2eeTest, GroupsUseSenderKeysAndARemovedMemberCannotReadLaterMessages) {
  const std::string pa = NextPhone(), pb = NextPhone(), pc = NextPhone();
  auto a1 = Device(pa, "ga1");
  auto a2 = Device(pa, "ga2");
  auto b = Device(pb, "gb");
  auto c = Device(pc, "gc");
  ASSERT_TRUE(a1 && a2 && b && c);
  const auto au = a1->account()->user_id, bu = b->account()->user_id, cu = c->account()->user_id;
  auto gid = a1->CreateGroup("secret club", {bu, cu}).get();
  ASSERT_TRUE(gid) << gid.error().ToString();
  const Conv g = Conv::Group(*gid);

  ASSERT_TRUE(a1->SendText(g, "welcome all").get());
  for (auto* x : {a2.get(), b.get(), c.get()}) {
    auto m = Next(*x, "welcome all");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->encrypted);
  }
  ASSERT_TRUE(c->SendText(g, "thanks from carol").get());
  for (auto* x : {a1.get(), a2.get(), b.get()}) ASSERT_TRUE(Next(*x, "thanks from carol"));
  ASSERT_TRUE(b->SendText(g, "bob before").get());  // carol gets bob's key too
  for (auto* x : {a1.get(), a2.get(), c.get()}) ASSERT_TRUE(Next(*x, "bob before"));

  // On the wire: one sender-key ciphertext for everyone, no per-device list.
  auto raw = RawNewest(*b, json::object{{"group", *gid}});
  EXPECT_EQ(raw.at("kind"), "e2ee");
  ASSERT_TRUE(raw.at("body").as_object().contains("group"));
  EXPECT_FALSE(raw.at("body").as_object().contains("ciphertexts"));

  ASSERT_TRUE(a1->RemoveMembers(*gid, {cu}).get());
  ASSERT_TRUE(WaitFor<GroupEvent>(*b, [](const GroupEvent& e) { return e.change == "removed"; }));
  ASSERT_TRUE(a1->SendText(g, "carol is gone").get());
  ASSERT_TRUE(Next(*b, "carol is gone"));
  ASSERT_TRUE(Next(*a2, "carol is gone"));
  ASSERT_TRUE(b->SendText(g, "bob after carol").get());
  ASSERT_TRUE(Next(*a1, "bob after carol"));

  // Carol gets no later message from the server; and had she got one, her
  // sender keys could not read it: both senders rotated.
  auto later = Drain(*c, 1s);
  for (const auto& m : OfType<MessageEvent>(later)) EXPECT_NE(m.message.text, "carol is gone");
  // The two messages after the removal, alice's and bob's (the sender_key
  // messages that carried the new keys are in the group's history too).
  std::vector<json::object> after;
  for (auto& m : RawNewest(*b, json::object{{"group", *gid}}, 4)) {
    if (m.at("kind") == "e2ee" && after.size() < 2) after.push_back(m);
  }
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].at("from").at("user"), json::value(bu));
  EXPECT_EQ(after[1].at("from").at("user"), json::value(au));
  const std::string c_dir = Dir("gc", pc);
  const DeviceAddress c_self{cu, c->account()->device_id};
  c.reset();  // closes carol's profile
  auto store = Store::Open(c_dir + "/parley.db");
  ASSERT_TRUE(store);
  auto crypto = MakeSignalCrypto();
  ASSERT_TRUE(crypto->Open(c_self, **store));
  int tried = 0;
  for (const auto& r : after) {
    const auto& from = r.at("from").as_object();
    const DeviceAddress sender{std::string(from.at("user").as_string()),
                               std::string(from.at("device").as_string())};
    auto data = detail::Base64Decode(std::string(r.at("body").at("group").at("data").as_string()));
    ASSERT_TRUE(data);
    auto plain = crypto->GroupDecrypt(*gid, sender, *data);
    EXPECT_FALSE(plain) << "a removed member read: " << *plain;
    ++tried;
  }
  EXPECT_EQ(tried, 2);
}

TEST_F(E2eeTest, ANewDeviceOfAGroupMemberGetsTheSenderKeyBeforeTheNextMessage) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Device(pa, "na");
  auto b1 = Device(pb, "nb1");
  ASSERT_TRUE(a && b1);
  auto gid = a->CreateGroup("growing", {b1->account()->user_id}).get();
  ASSERT_TRUE(gid);
  ASSERT_TRUE(a->SendText(Conv::Group(*gid), "before the new device").get());
  ASSERT_TRUE(Next(*b1, "before the new device"));
  auto b2 = Device(pb, "nb2");
  ASSERT_TRUE(b2);
  // The server tells alice (they share a group); her next message first
  // gives her sender key to the new device.
  ASSERT_TRUE(WaitFor<KeysChangedEvent>(
      *a, [&](const KeysChangedEvent& k) { return k.device.device == b2->account()->device_id; }));
  ASSERT_TRUE(a->SendText(Conv::Group(*gid), "after the new device").get());
  for (auto* x : {b1.get(), b2.get()}) {
    auto m = Next(*x, "after the new device");
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->decrypt_error);
  }
  // And the new device writes to the group: alice and b1 read it.
  ASSERT_TRUE(b2->SendText(Conv::Group(*gid), "hello from b2").get());
  ASSERT_TRUE(Next(*a, "hello from b2"));
  ASSERT_TRUE(Next(*b1, "hello from b2"));
}

TEST_F(E2eeTest, OneTimePreKeysAreReplenishedBelowTwenty) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Device(pa, "pa", [](ClientOptions& o) {
    o.crypto = MakeSignalCrypto({.prekey_target = 30, .prekey_low = 20});
  });
  auto b = Device(pb, "pb");
  ASSERT_TRUE(a && b);
  auto count = [&] {
    auto r = a->Request(R"({"op":"keys.count"})").get();
    EXPECT_TRUE(r);
    return r ? detail::Int(json::parse(*r).as_object(), "one_time_prekeys_left") : -1;
  };
  EXPECT_EQ(count(), 30);
  const std::string au = a->account()->user_id;
  // The server hands one requester at most 10 of a user's one-time prekeys
  // an hour (prekey_claims_per_pair_per_hour): a second requester takes the 11th.
  auto c = Device(NextPhone(), "pc");
  ASSERT_TRUE(c);
  for (int i = 0; i < 11; ++i) {
    ASSERT_TRUE((i < 10 ? b : c)->Request(R"({"op":"keys.bundle","user":")" + au + "\"}").get());
  }
  EXPECT_EQ(count(), 19);
  // At the next hello (here: after a dropped connection) the client tops up.
  a->DropConnection();
  ASSERT_TRUE(a->WaitForState(ConnectionEvent::State::kSynced, 10s));
  auto left = a->PublishKeys().get();
  ASSERT_TRUE(left) << left.error().ToString();
  EXPECT_EQ(*left, 30);
  EXPECT_EQ(count(), 30);
}

TEST_F(E2eeTest, SafetyNumbersMatchAndChangeWithANewDevice) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Device(pa, "fa");
  auto b = Device(pb, "fb");
  ASSERT_TRUE(a && b);
  auto ab = a->SafetyNumber(b->account()->user_id).get();
  auto ba = b->SafetyNumber(a->account()->user_id).get();
  ASSERT_TRUE(ab && ba);
  EXPECT_EQ(ab->displayable.size(), 60u);
  EXPECT_EQ(ab->displayable, ba->displayable);
  auto b2 = Device(pb, "fb2");
  ASSERT_TRUE(b2);
  auto again = a->SafetyNumber(b->account()->user_id).get();
  ASSERT_TRUE(again);
  EXPECT_NE(again->displayable, ab->displayable);
  auto from_b2 = b2->SafetyNumber(a->account()->user_id).get();
  ASSERT_TRUE(from_b2);
  EXPECT_EQ(from_b2->displayable, again->displayable);
}

// Files: encrypted with a random key before upload; the key and digest go
// inside the encrypted message. The server holds only the ciphertext; the
// recipient gets the file back; a tampered digest or key is refused.
TEST_F(E2eeTest, FilesAreEncryptedWithAKeyInsideTheMessage) {
  const std::string pa = NextPhone(), pb = NextPhone(), pc = NextPhone();
  auto a = Device(pa, "ma");
  auto b = Device(pb, "mb");
  auto c = Device(pc, "mc");
  ASSERT_TRUE(a && b && c);
  std::string file;
  for (int i = 0; i < 200000; ++i) file.push_back(static_cast<char>((i * 7919) % 251));
  file += "plaintext-file-marker-91c2";
  auto sent =
      a->SendFile(Conv::User(b->account()->user_id), file, "notes.bin", "application/x-test").get();
  ASSERT_TRUE(sent) << sent.error().ToString();
  auto m = WaitFor<MessageEvent>(*b);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->message.encrypted);
  EXPECT_EQ(m->message.kind, "file");
  ASSERT_FALSE(m->message.media_id.empty());
  auto body = json::parse(m->message.body_json).as_object();
  EXPECT_EQ(body.at("name"), "notes.bin");
  EXPECT_EQ(body.at("size").to_number<std::int64_t>(), static_cast<std::int64_t>(file.size()));
  ASSERT_TRUE(body.contains("key") && body.contains("digest"));

  auto got = b->DownloadFile(m->message.msg_id).get();
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(*got, file);
  // What the server stores: not the file.
  auto blob = b->DownloadMedia(m->message.media_id).get();
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->size(), file.size() + 28);
  EXPECT_EQ(blob->find("plaintext-file-marker-91c2"), std::string::npos);
  // Someone the file was not sent to cannot fetch it.
  auto outsider = c->DownloadMedia(m->message.media_id).get();
  ASSERT_FALSE(outsider);
  // The sender's own copy opens too (the local store has the key).
  auto mine = a->DownloadFile(sent->msg_id).get();
  ASSERT_TRUE(mine) << mine.error().ToString();
  EXPECT_EQ(*mine, file);
  // Another upload under the same message's key and digest does not pass:
  // a blob that is not the one the digest names is refused.
  auto other = a->UploadMedia(std::string(blob->size(), 'x'), "application/octet-stream").get();
  ASSERT_TRUE(other);
  OutgoingMessage fake;
  fake.kind = "file";
  fake.body_json = m->message.body_json;
  fake.media_id = other->media_id;
  ASSERT_TRUE(a->Send(Conv::User(b->account()->user_id), fake).get());
  auto m2 = WaitFor<MessageEvent>(*b);
  ASSERT_TRUE(m2);
  auto refused = b->DownloadFile(m2->message.msg_id).get();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "crypto");
  EXPECT_NE(refused.error().message.find("digest"), std::string::npos);
}

// Every event the server stored for both users, dumped with `parleyd admin
// dump-user --events` (the store, not its files), holds none of the texts
// sent encrypted, 1:1 and in a group; a message sent in the clear on
// purpose shows that the dump does include bodies.
TEST_F(E2eeTest, TheServerStoresNoPlaintext) {
  const std::string pa = NextPhone(), pb = NextPhone();
  auto a = Device(pa, "za");
  auto a2 = Device(pa, "za2");
  auto b = Device(pb, "zb");
  ASSERT_TRUE(a && a2 && b);
  const auto bu = b->account()->user_id;
  const std::vector<std::string> secrets = {"canary-one-to-one-7f3a9c", "canary-reply-21d0",
                                            "canary-group-88e1", "canary-group-reply-0c4d"};
  ASSERT_TRUE(a->SendText(Conv::User(bu), secrets[0]).get());
  ASSERT_TRUE(Next(*b, secrets[0]));
  ASSERT_TRUE(b->SendText(Conv::User(a->account()->user_id), secrets[1]).get());
  ASSERT_TRUE(Next(*a, secrets[1]));
  auto gid = a->CreateGroup("canary group", {bu}).get();
  ASSERT_TRUE(gid);
  ASSERT_TRUE(a->SendText(Conv::Group(*gid), secrets[2]).get());
  ASSERT_TRUE(Next(*b, secrets[2]));
  ASSERT_TRUE(b->SendText(Conv::Group(*gid), secrets[3]).get());
  ASSERT_TRUE(Next(*a2, secrets[3]));
  const std::string control = "clear-control-5b1e";
  ASSERT_TRUE(a->Request(json::serialize(json::object{{"op", "send"},
                                                      {"to", json::object{{"user", bu}}},
                                                      {"client_msg_id", "control-1"},
                                                      {"kind", "text"},
                                                      {"body", json::object{{"text", control}}}}))
                  .get());

  std::string all;
  for (const auto& user : {a->account()->user_id, bu}) {
    int exit_code = -1;
    const std::string out = test::RunAdmin(
        {"--data-dir", server_->data_dir(), "dump-user", "--user", user, "--events"}, &exit_code);
    ASSERT_EQ(exit_code, 0) << out;
    all += out;
  }
  ASSERT_NE(all.find(control), std::string::npos) << "the dump shows no bodies";
  ASSERT_NE(all.find("\"e2ee\""), std::string::npos);
  ASSERT_NE(all.find("\"sender_key\""), std::string::npos);
  for (const auto& t : secrets) {
    EXPECT_EQ(all.find(t), std::string::npos) << "plaintext on the server: " << t;
  }
}

}  // namespace
}  // namespace parley::sdk::testing
