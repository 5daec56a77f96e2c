// `parleyd admin migrate`: a node populated by real clients on RocksDB is
// stopped, migrated into PostgreSQL and started there on the same data
// directory (its media stay where they are); every user must see exactly
// what it saw before (mailbox heads, pending events, history, receipts,
// groups, keys, profiles, media, the stored records themselves) with the
// tokens it already had, and must be able to go on chatting.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "integration/helpers.hpp"
#include "integration/key_material.hpp"
#include "postgres/shell.hpp"
#include "support/postgres.hpp"

namespace parley::test {
namespace {

using namespace std::chrono_literals;

std::string FreshDb(const std::string& tag) {
  static std::atomic<int> next{0};
  return SharedPostgres().CreateDatabase("m" + std::to_string(getpid()) + "_" + tag +
                                         std::to_string(next++));
}

// Runs `parleyd admin migrate`; answers its exit status, stdout and stderr together.
int RunMigrate(const std::string& from, const std::string& to, std::string* output) {
  return RunShell(ParleydPath() + " admin migrate --from '" + from + "' --to '" + to + "' 2>&1",
                  output);
}

json::object KeysUpload(const std::string& seed) {
  json::array prekeys;
  for (int i = 1; i <= 5; ++i) {
    prekeys.push_back(json::object{{"id", i}, {"key", Key(seed + "otk" + std::to_string(i))}});
  }
  return {{"op", "keys.upload"},
          {"identity_key", Key(seed)},
          {"registration_id", 7},
          {"signed_prekey", {{"id", 1}, {"key", Key("spk" + seed)}, {"signature", Sig("s")}}},
          {"one_time_prekeys", std::move(prekeys)}};
}

json::object Ok(WsClient& ws, json::object request) {
  const std::string op = Str(request, "op");
  auto r = ws.Request(std::move(request));
  EXPECT_TRUE(r.has_value()) << op << ": no answer";
  if (!r) return {};
  EXPECT_EQ((*r)["op"], "ok") << op << ": " << json::serialize(*r);
  return *r;
}

struct Person {
  std::string name;
  Account account;
};

// Everything a device can observe, as JSON, minus what moves by itself
// (server time, last-seen and activity times).
json::object Observe(Parleyd& server, const Person& p, const std::vector<json::object>& convs,
                     const std::vector<std::string>& msg_ids, const std::string& group_id,
                     const std::vector<std::string>& everyone) {
  json::object view;
  json::object hello;
  auto ws = Connect(server, p.account, &hello);
  if (!ws) return view;
  hello.erase("server_time_ms");
  hello.erase("rid");
  view["hello"] = hello;
  // The backlog after the device's cursor, up to the head.
  const std::string head = Str(hello, "head_seq");
  json::array pending;
  for (;;) {
    auto e = ws->ReceiveOp("event", 700ms);
    if (!e) break;
    e->erase("rid");
    pending.push_back(*e);
    if (Str(*e, "seq") == head) break;
  }
  view["pending"] = std::move(pending);
  json::array histories;
  for (const auto& conv : convs) {
    auto r = ws->Request({{"op", "history"}, {"conv", conv}, {"limit", 100}});
    if (r) r->erase("rid");
    histories.push_back(r ? json::value(*r) : json::value());
  }
  view["history"] = std::move(histories);
  json::array receipts;
  for (const auto& id : msg_ids) {
    auto r = ws->Request({{"op", "receipts"}, {"msg_id", id}});
    if (r) r->erase("rid");
    receipts.push_back(r ? json::value(*r) : json::value());
  }
  view["receipts"] = std::move(receipts);
  if (auto r = ws->Request({{"op", "group.info"}, {"group_id", group_id}})) {
    r->erase("rid");
    view["group"] = *r;
  }
  if (auto r = ws->Request({{"op", "keys.count"}})) {
    r->erase("rid");
    view["keys_count"] = *r;
  }
  json::array users;
  for (const auto& u : everyone) users.push_back(json::value(u));
  if (auto r = ws->Request({{"op", "profile.get"}, {"users", users}})) {
    r->erase("rid");
    if (auto* list = r->if_contains("profiles"); list != nullptr && list->is_array()) {
      for (auto& profile : list->as_array()) profile.as_object().erase("last_seen_ms");
    }
    view["profiles"] = *r;
  }
  if (auto r = ws->Request({{"op", "devices.list"}})) {
    json::array devices;
    if (auto* list = r->if_contains("devices"); list != nullptr && list->is_array()) {
      for (const auto& d : list->as_array()) {
        devices.push_back(json::object{{"device_id", d.as_object().at("device_id")},
                                       {"name", d.as_object().at("name")}});
      }
    }
    view["devices"] = std::move(devices);
  }
  ws->Close();
  return view;
}

std::string Dump(const std::vector<std::string>& store_args, const std::string& user) {
  std::vector<std::string> args = {"dump-user"};
  args.insert(args.end(), store_args.begin(), store_args.end());
  args.insert(args.end(), {"--user", user, "--events"});
  int code = -1;
  std::string out = RunAdmin(args, &code);
  EXPECT_EQ(code, 0) << out;
  return out;
}

TEST(PostgresMigrate, UsersSeeWhatTheySawBeforeAndGoOnChatting) {
  Parleyd rocks;
  ASSERT_TRUE(rocks.Start());
  Person alice{"alice", SignIn(rocks, NextPhone(), "alice phone")};
  Person alice2{"alice2", SignIn(rocks, alice.account.phone, "alice laptop")};
  Person bob{"bob", SignIn(rocks, NextPhone())};
  Person carol{"carol", SignIn(rocks, NextPhone())};
  Person dave{"dave", SignIn(rocks, NextPhone())};  // never online: everything stays pending
  const std::string a = alice.account.user_id, b = bob.account.user_id, c = carol.account.user_id,
                    d = dave.account.user_id;

  auto wa = Connect(rocks, alice.account);
  auto wb = Connect(rocks, bob.account);
  auto wc = Connect(rocks, carol.account);
  ASSERT_TRUE(wa && wb && wc);
  // Keys: alice's and bob's devices are current; bob claims one of alice's prekeys.
  Ok(*wa, KeysUpload("alice"));
  Ok(*wb, KeysUpload("bob"));
  auto bundle = Ok(*wb, {{"op", "keys.bundle"}, {"user", a}});
  ASSERT_EQ(bundle.at("devices").as_array().size(), 1u) << json::serialize(bundle);
  Ok(*wa, {{"op", "profile.set"}, {"name", "Alice"}, {"last_seen_visibility", "contacts"}});

  // 1:1 both ways, with media.
  std::vector<std::string> msg_ids;
  std::vector<std::string> client_ids;
  for (int i = 0; i < 3; ++i) {
    client_ids.push_back(NextClientMsgId());
    auto r = SendText(*wa, b, "hi bob " + std::to_string(i), client_ids.back());
    ASSERT_TRUE(r && (*r)["op"] == "ok");
    msg_ids.push_back(Str(*r, "msg_id"));
  }
  const std::string blob = "\x01\x02 not an image, just bytes \xff";
  auto upload = Http(rocks.endpoint(), "POST", "/v1/media", blob,
                     {{"Authorization", "Bearer " + alice.account.access_token},
                      {"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(upload.status, 201) << upload.body;
  const std::string media_id = Str(upload.Json().as_object(), "media_id");
  auto sent_media = Ok(*wa, {{"op", "send"},
                             {"to", ToUser(b)},
                             {"client_msg_id", NextClientMsgId()},
                             {"kind", "file"},
                             {"body", {{"name", "x.bin"}}},
                             {"media_id", media_id}});
  msg_ids.push_back(Str(sent_media, "msg_id"));
  auto reply = SendText(*wb, a, "hi alice");
  ASSERT_TRUE(reply && (*reply)["op"] == "ok");
  msg_ids.push_back(Str(*reply, "msg_id"));

  // Bob receives everything, acks it (delivered receipts) and reads it.
  std::uint64_t last_seq = 0;
  for (int i = 0; i < 4; ++i) {
    auto e = NextEventOfType(*wb, "message");
    ASSERT_TRUE(e.has_value());
    last_seq = SeqOf(*e);
  }
  Ack(*wb, last_seq);
  Ok(*wb, {{"op", "read"}, {"conv", ToUser(a)}, {"up_to_msg_id", msg_ids[2]}});

  // A group with everyone; two messages; a rename; bob promoted.
  auto created =
      Ok(*wa, {{"op", "group.create"}, {"name", "g"}, {"members", json::array{b, c, d}}});
  const std::string group_id = Str(created, "group_id");
  ASSERT_FALSE(group_id.empty());
  for (int i = 0; i < 2; ++i) {
    auto r = Ok(*wa, {{"op", "send"},
                      {"to", {{"group", group_id}}},
                      {"client_msg_id", NextClientMsgId()},
                      {"kind", "text"},
                      {"body", {{"text", "to all " + std::to_string(i)}}}});
    msg_ids.push_back(Str(r, "msg_id"));
  }
  Ok(*wa, {{"op", "group.update"}, {"group_id", group_id}, {"name", "g2"}});
  Ok(*wa, {{"op", "group.promote"}, {"group_id", group_id}, {"user", b}});
  // Carol acks what she got so far and reads the group; bob has one more pending.
  std::uint64_t carol_seq = 0;
  for (int i = 0; i < 2; ++i) {
    auto e = NextEventOfType(*wc, "message");
    ASSERT_TRUE(e.has_value());
    carol_seq = SeqOf(*e);
  }
  Ack(*wc, carol_seq);
  Ok(*wc, {{"op", "read"}, {"conv", {{"group", group_id}}}, {"up_to_msg_id", msg_ids[6]}});
  auto late = SendText(*wa, b, "still there?");
  ASSERT_TRUE(late && (*late)["op"] == "ok");
  msg_ids.push_back(Str(*late, "msg_id"));
  // Let the acks land (they have no answer): a request on the same socket is
  // answered after them.
  Ok(*wb, {{"op", "keys.count"}});
  Ok(*wc, {{"op", "keys.count"}});
  wa->Close();
  wb->Close();
  wc->Close();

  const std::vector<json::object> alice_convs = {ToUser(b), {{"group", group_id}}};
  const std::vector<json::object> bob_convs = {ToUser(a), {{"group", group_id}}};
  const std::vector<json::object> group_only = {{{"group", group_id}}};
  const std::vector<std::string> everyone = {a, b, c, d};
  std::vector<Person*> people = {&alice, &alice2, &bob, &carol, &dave};
  auto convs_of = [&](const Person* p) {
    if (p == &alice || p == &alice2) return alice_convs;
    if (p == &bob) return bob_convs;
    return group_only;
  };
  std::map<std::string, json::object> before;
  for (Person* p : people) {
    before[p->name] = Observe(rocks, *p, convs_of(p), msg_ids, group_id, everyone);
  }

  // What is compared is not empty: dave and alice's second device have
  // everything pending, bob one message, carol what came after her ack (the
  // rename, the promotion and her own read_sync).
  auto pending = [&](const char* who) { return before[who].at("pending").as_array().size(); };
  EXPECT_GE(pending("dave"), 5u);
  EXPECT_GE(pending("alice2"), 8u);
  EXPECT_GE(pending("bob"), 1u);
  EXPECT_EQ(pending("carol"), 3u) << json::serialize(before["carol"].at("pending"));
  EXPECT_NE(json::serialize(before["alice"].at("receipts")).find("\"read\":[{"), std::string::npos);

  // A running node's data directory is refused.
  const std::string url = FreshDb("full");
  std::string out;
  EXPECT_EQ(RunMigrate(rocks.data_dir(), url, &out), 3) << out;
  EXPECT_NE(out.find("stop the node first"), std::string::npos) << out;
  ASSERT_EQ(rocks.Terminate(), 0);

  std::map<std::string, std::string> dumps;
  for (const auto& user : everyone) dumps[user] = Dump({"--data-dir", rocks.data_dir()}, user);

  ASSERT_EQ(RunMigrate(rocks.data_dir(), url, &out), 0) << out;
  EXPECT_NE(out.find("\"secret_copied\":true"), std::string::npos) << out;
  EXPECT_NE(out.find("\"prekeys\":9"), std::string::npos) << out;  // 5 + 5, one claimed
  // Again: the database is no longer empty.
  EXPECT_EQ(RunMigrate(rocks.data_dir(), url, &out), 3) << out;
  EXPECT_NE(out.find("not empty"), std::string::npos) << out;

  // The stored records are the same, field for field, event for event.
  for (const auto& user : everyone) {
    EXPECT_EQ(Dump({"--store", url}, user), dumps[user]) << "user " << user;
  }

  Parleyd::Options options;
  options.data_dir = rocks.data_dir();
  options.args = {"--store", url};
  Parleyd pg(options);
  ASSERT_TRUE(pg.Start()) << pg.Log();
  for (Person* p : people) {
    EXPECT_EQ(json::serialize(Observe(pg, *p, convs_of(p), msg_ids, group_id, everyone)),
              json::serialize(before[p->name]))
        << p->name;
  }

  // Media: the recipient still reads the same bytes.
  auto got = Http(pg.endpoint(), "GET", "/v1/media/" + media_id, "",
                  {{"Authorization", "Bearer " + bob.account.access_token}});
  EXPECT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.body, blob);

  // Going on: a retried send is still a duplicate, new messages get the next
  // seqs, prekeys continue where they were, a group message reaches everyone.
  wa = Connect(pg, alice.account);
  wb = Connect(pg, bob.account);
  ASSERT_TRUE(wa && wb);
  auto again = SendText(*wa, b, "hi bob 0", client_ids[0]);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)["duplicate"], json::value(true)) << json::serialize(*again);
  EXPECT_EQ(Str(*again, "msg_id"), msg_ids[0]);
  const std::string bob_head = Str(before["bob"].at("hello").as_object(), "head_seq");
  auto fresh = SendText(*wa, b, "after the move");
  ASSERT_TRUE(fresh && (*fresh)["op"] == "ok");
  auto e = NextEvent(*wb);
  // Bob's backlog (the unacked message) comes first, then the new one.
  while (e && Str(EventOf(*e), "msg_id") != Str(*fresh, "msg_id")) e = NextEvent(*wb);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(SeqOf(*e), std::stoull(bob_head) + 1);
  auto bundle2 = Ok(*wb, {{"op", "keys.bundle"}, {"user", a}});
  ASSERT_EQ(bundle2.at("devices").as_array().size(), 1u);
  const auto& dev = bundle2.at("devices").as_array()[0].as_object();
  EXPECT_EQ(dev.at("identity_key"), Key("alice"));
  const auto prekey_id = [](const json::object& device) {
    return Str(device.at("one_time_prekey").as_object(), "id");
  };
  // Before the move bob claimed prekey 1 of alice's five.
  EXPECT_EQ(prekey_id(bundle.at("devices").as_array()[0].as_object()), "1");
  EXPECT_EQ(prekey_id(dev), "2");
  Ok(*wb, {{"op", "send"},
           {"to", {{"group", group_id}}},
           {"client_msg_id", NextClientMsgId()},
           {"kind", "text"},
           {"body", {{"text", "bob, admin now"}}}});
  auto wd = Connect(pg, dave.account);
  ASSERT_TRUE(wd);
  bool dave_got_it = false;
  while (auto m = NextEventOfType(*wd, "message")) {
    const auto& body = EventOf(*m).at("body");
    if (body.is_object() && body.as_object().if_contains("text") != nullptr &&
        body.as_object().at("text") == std::string("bob, admin now")) {
      dave_got_it = true;
      break;
    }
  }
  EXPECT_TRUE(dave_got_it) << "dave never got bob's group message";
  // A new device signs in with a code (its hashing key came along with the secret).
  Account bob2 = SignIn(pg, bob.account.phone, "bob tablet");
  EXPECT_EQ(bob2.user_id, b);
}

}  // namespace
}  // namespace parley::test
