// Groups at the size limit under Sender Keys, through a real parleyd: a
// 256-member group with 284 devices (one member with five real Clients,
// six with five light devices each, the rest with one; light_device.hpp),
// where a sender key distribution is far over the 64 KiB body limit and
// goes in several sends. Every device decrypts; a distribution after a
// removal is cut halfway by killing the sender's connection and resumed
// by a new Client on the same profile (nobody lacks the key, nobody gets
// it twice, the message arrives once); the removed member cannot read what
// follows; a member added gets the next message. And a member that gets a
// group message before its sender key keeps it, across a restart, until
// the key arrives.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "light_device.hpp"
#include "sdk_helpers.hpp"
#include "wire.hpp"

namespace parley::sdk::testing {
namespace {

using Clock = std::chrono::steady_clock;

long long MsSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

class BigGroupTest : public ServerSuite {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }

  static void Tweak(ClientOptions& o, const std::string& url) {
    o.crypto = nullptr;  // the default: libsignal
    o.request_timeout = 120s;
    if (!url.empty()) o.server_url = url;
  }

  // A real Client with the default backend, online, keys published.
  std::unique_ptr<Client> Device(const std::string& phone, const std::string& name,
                                 const std::string& url = {}) {
    auto c = Login(phone, name, [&](ClientOptions& o) { Tweak(o, url); });
    if (!c) return nullptr;
    EXPECT_TRUE(StartSynced(*c, 30s));
    auto left = c->PublishKeys().get();
    EXPECT_TRUE(left) << left.error().ToString();
    return c;
  }

  // The next message `c` shows in the group: it must be `text`, decrypted.
  static void ExpectGroupText(Client& c, const std::string& group, const std::string& text) {
    auto e = WaitFor<MessageEvent>(
        c, [&](const MessageEvent& m) { return m.message.conv == Conv::Group(group); }, 120s);
    ASSERT_TRUE(e) << "no group message for " << text;
    EXPECT_FALSE(e->message.decrypt_error) << e->message.decrypt_error->ToString();
    EXPECT_EQ(e->message.text, text);
  }
};

TEST_F(BigGroupTest, TwoHundredFiftySixMembersSendRemoveResumeAndAdd) {
  const auto t_setup = Clock::now();
  CuttingProxy proxy(server_->endpoint());
  const std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy.port());
  const std::string ps = NextPhone();
  // The sender talks through the proxy, so that its connection can be cut.
  auto s = Device(ps, "sender", proxy_url);
  ASSERT_TRUE(s);
  const DeviceAddress s_addr{s->account()->user_id, s->account()->device_id};

  const std::string pm = NextPhone();
  std::vector<std::unique_ptr<Client>> m;
  for (int i = 0; i < 5; ++i) {
    m.push_back(Device(pm, "m" + std::to_string(i)));
    ASSERT_TRUE(m.back());
  }
  std::vector<std::string> members = {m[0]->account()->user_id};
  std::vector<std::unique_ptr<LightDevice>> light;
  for (int u = 0; u < 254; ++u) {
    const std::string phone = NextPhone();
    const int devices = u < 6 ? 5 : 1;
    for (int i = 0; i < devices; ++i) {
      auto d = MakeLightDevice(*server_, phone, "light " + std::to_string(i));
      ASSERT_TRUE(d);
      if (i == 0) members.push_back(d->user);
      light.push_back(std::move(d));
    }
  }
  ASSERT_EQ(light.size(), 278u);  // + 5 real devices + the sender's: 284 devices
  auto gid = s->CreateGroup("big", members).get();
  ASSERT_TRUE(gid) << gid.error().ToString();
  auto info = s->GetGroup(*gid).get();
  ASSERT_TRUE(info);
  ASSERT_EQ(info->members.size(), 256u);
  std::printf("[setup] 256 members, 284 devices, in %lld ms\n", MsSince(t_setup));

  // Every light device but `except` reads the group: no errors, each of
  // `texts` exactly once, and `copies` sender keys from the sender.
  auto check_light = [&](const std::vector<std::string>& texts, int copies,
                         const std::string& except) {
    int bad = 0;
    for (auto& d : light) {
      if (d->user == except) continue;
      const std::string code = ReadGroup(*server_, *d, *gid);
      const int keys = d->key_copies[s_addr.user + "." + s_addr.device];
      std::string wrong;
      for (const auto& text : texts) {
        const auto n = std::count(d->texts.begin(), d->texts.end(), text);
        if (n != 1) wrong += " '" + text + "' " + std::to_string(n) + " times";
      }
      if (code.empty() && d->errors.empty() && wrong.empty() && keys == copies) continue;
      if (++bad <= 3) {
        ADD_FAILURE() << "device " << d->user << "/" << d->device << ": history '" << code << "',"
                      << wrong << " " << keys << " sender keys (want " << copies << "), errors: "
                      << (d->errors.empty() ? std::string("none") : d->errors.front());
      }
    }
    EXPECT_EQ(bad, 0) << "light devices that did not read every message";
  };

  // 1. The first message: the sender key goes to 283 devices first.
  const char* kSizes[] = {"first", "second"};
  for (const char* which : kSizes) {
    const std::string text = std::string("hello, 256 members (") + which + ")";
    const auto t0 = Clock::now();
    auto sent = s->SendText(Conv::Group(*gid), text).get();
    ASSERT_TRUE(sent) << sent.error().ToString();
    const auto stored_ms = MsSince(t0);
    for (auto& c : m) ExpectGroupText(*c, *gid, text);
    std::printf(
        "[figure] %s message to 256 members: stored in every mailbox after %lld ms, "
        "on the last online device after %lld ms\n",
        which, stored_ms, MsSince(t0));
  }
  // The distribution took several sends (one would be over 64 KiB).
  EXPECT_GE(proxy.sender_key_sends(), 3);
  check_light({"hello, 256 members (first)", "hello, 256 members (second)"}, 1, "");

  // 2. A member leaves: a new key, whose distribution is cut after its
  // first send; a new Client on the profile resumes it.
  LightDevice& x = *light.back();  // a member with one device
  ASSERT_TRUE(s->RemoveMembers(*gid, {x.user}).get());
  ASSERT_TRUE(WaitFor<GroupEvent>(
      *s, [&](const GroupEvent& g) { return g.group_id == *gid && g.change == "removed"; }, 30s));
  proxy.ArmCut(2);
  auto cut_send = s->SendText(Conv::Group(*gid), "after the removal");
  ASSERT_TRUE(proxy.WaitCut(120s)) << "the distribution never got to its second send";
  s.reset();  // the sender "crashes": only its store remains
  {
    auto options = OptionsFor(*server_, Dir("sender", ps), "sender");
    Tweak(options, UrlOf(*server_));
    auto reopened = Client::Open(std::move(options));
    ASSERT_TRUE(reopened) << reopened.error().ToString();
    s = std::move(*reopened);
  }
  s->Start();
  for (auto& c : m) ExpectGroupText(*c, *gid, "after the removal");
  for (auto& c : m) {
    // Once: nothing more in the group.
    for (const auto& e : OfType<MessageEvent>(Drain(*c, 300ms))) {
      EXPECT_NE(e.message.conv, Conv::Group(*gid)) << "again: " << e.message.text;
    }
  }
  check_light({"after the removal"}, 2, x.user);
  // The removed member gets nothing new (its history ends at its removal),
  // and its old key does not open the new message.
  const std::string x_read = ReadGroup(*server_, x, *gid);
  EXPECT_TRUE(x_read.empty() || x_read == "not_member") << x_read;
  EXPECT_EQ(std::count(x.texts.begin(), x.texts.end(), "after the removal"), 0);
  EXPECT_TRUE(x.errors.empty()) << x.errors.front();
  {
    const auto& other = *light.front();
    std::string data;
    for (const auto& [id, text] : other.text_of) {
      if (text == "after the removal") data = other.data.at(id);
    }
    ASSERT_FALSE(data.empty());
    auto plain = x.crypto->GroupDecrypt(*gid, s_addr, data);
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error().code, "no_sender_key") << plain.error().message;
  }

  // 3. A member joins: the next message reaches it.
  auto n = Device(NextPhone(), "newcomer");
  ASSERT_TRUE(n);
  ASSERT_TRUE(s->AddMembers(*gid, {n->account()->user_id}).get());
  auto welcome = s->SendText(Conv::Group(*gid), "welcome").get();
  ASSERT_TRUE(welcome) << welcome.error().ToString();
  ExpectGroupText(*n, *gid, "welcome");
  for (auto& c : m) ExpectGroupText(*c, *gid, "welcome");
  check_light({"welcome"}, 2, x.user);
  std::printf("[total] %lld ms\n", MsSince(t_setup));
}

// A group message handled before the sender_key message that carries its
// key (live events overtake a backlog): kept in the store, across a
// restart, and shown decrypted, in order, once the key comes.
TEST_F(BigGroupTest, GroupMessageAheadOfItsKeyWaitsForTheKey) {
  auto sender = MakeLightDevice(*server_, NextPhone(), "hand-made sender");
  ASSERT_TRUE(sender);
  const std::string pr = NextPhone();
  auto r = Device(pr, "receiver");
  ASSERT_TRUE(r);
  const std::string ru = r->account()->user_id, rd = r->account()->device_id;

  auto ws = ConnectAs(*server_, *sender);
  ASSERT_TRUE(ws);
  auto created = ws->Request(
      {{"op", "group.create"}, {"name", "early"}, {"members", json::array{json::value(ru)}}});
  ASSERT_TRUE(created && detail::Str(*created, "op") == "ok");
  const std::string gid = detail::Str(*created, "group_id");
  auto group_send = [&](const std::string& cmid, const std::string& text) {
    auto ct = sender->crypto->GroupEncrypt(
        gid, detail::InnerJson("text", json::serialize(json::object{{"text", text}}), ""));
    ASSERT_TRUE(ct);
    auto ok = ws->Request(
        {{"op", "send"},
         {"to", {{"group", gid}}},
         {"client_msg_id", cmid},
         {"kind", "e2ee"},
         {"body",
          {{"sender_device", sender->device}, {"group", {{"data", detail::Base64Encode(*ct)}}}}}});
    ASSERT_TRUE(ok && detail::Str(*ok, "op") == "ok") << (ok ? json::serialize(*ok) : "");
  };
  // The distribution as of now (it carries the chain's current iteration:
  // one taken after a message could not decrypt that message).
  auto dist = sender->crypto->OwnSenderKey(gid);
  ASSERT_TRUE(dist);
  group_send("early-1", "too early");
  // A marker after it, in the clear: once the receiver shows it, it has
  // handled the group message (events are handled in order).
  auto marker = ws->Request({{"op", "send"},
                             {"to", {{"user", ru}}},
                             {"client_msg_id", "marker-1"},
                             {"kind", "text"},
                             {"body", {{"text", "marker"}}}});
  ASSERT_TRUE(marker && detail::Str(*marker, "op") == "ok");
  auto seen = WaitFor<MessageEvent>(
      *r, [](const MessageEvent& e) { return e.message.text == "marker"; }, 30s);
  ASSERT_TRUE(seen);
  auto before = r->LocalMessages(Conv::Group(gid)).get();
  ASSERT_TRUE(before);
  EXPECT_TRUE(before->empty()) << "shown before its key: " << before->front().text;
  r.reset();  // kept across a restart

  // The key, pairwise, as the SDK would send it; then one more message.
  auto bundle = ws->Request({{"op", "keys.bundle"}, {"user", ru}});
  ASSERT_TRUE(bundle && detail::Str(*bundle, "op") == "ok");
  auto bundles = BundlesFrom(ru, *bundle);
  ASSERT_EQ(bundles.size(), 1u);
  ASSERT_TRUE(sender->crypto->StartSession(bundles[0]));
  const std::string inner =
      json::serialize(json::object{{"group", gid}, {"distribution", detail::Base64Encode(*dist)}});
  const std::vector<DeviceAddress> to = {{ru, rd}};
  auto cts = sender->crypto->Encrypt(to, inner);
  ASSERT_TRUE(cts);
  auto key = ws->Request({{"op", "send"},
                          {"to", {{"group", gid}}},
                          {"client_msg_id", "key-1"},
                          {"kind", "sender_key"},
                          {"body", detail::EnvelopeJson(sender->device, *cts)}});
  ASSERT_TRUE(key && detail::Str(*key, "op") == "ok") << (key ? json::serialize(*key) : "");
  group_send("later-1", "in time");

  auto options = OptionsFor(*server_, Dir("receiver", pr), "receiver");
  Tweak(options, "");
  auto reopened = Client::Open(std::move(options));
  ASSERT_TRUE(reopened);
  r = std::move(*reopened);
  r->Start();
  ExpectGroupText(*r, gid, "too early");
  ExpectGroupText(*r, gid, "in time");
  auto after = r->LocalMessages(Conv::Group(gid)).get();
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].text, "in time");  // newest first
  EXPECT_EQ((*after)[1].text, "too early");
}

}  // namespace
}  // namespace parley::sdk::testing
