// Issue 14, items 3 and 4, against a real parleyd: one-time prekeys cannot
// be drained by strangers, prekey and registration ids are strings on the
// wire, lookups are rate limited per device, and last seen / presence go only
// to the contacts a user chose (someone it wrote to).
#include <set>

#include "integration/helpers.hpp"
#include "integration/key_material.hpp"

namespace parley::test {
namespace {

// An upload with string ids, as the contract wants every id to be.
json::object Upload(const std::string& seed, int first_prekey, int prekeys) {
  json::array otks;
  for (int i = first_prekey; i < first_prekey + prekeys; ++i) {
    otks.push_back(
        json::object{{"id", std::to_string(i)}, {"key", Key("otk" + std::to_string(i))}});
  }
  return {{"op", "keys.upload"},
          {"identity_key", Key(seed)},
          {"registration_id", "42"},
          {"signed_prekey",
           {{"id", "3"}, {"key", Key("spk" + seed)}, {"signature", B64(std::string(64, 's'))}}},
          {"one_time_prekeys", std::move(otks)}};
}

void ExpectOk(const std::optional<json::object>& r) {
  ASSERT_TRUE(r.has_value()) << "no answer";
  EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
}

void ExpectError(const std::optional<json::object>& r, const std::string& code,
                 const std::string& message_prefix = "") {
  ASSERT_TRUE(r.has_value()) << "no answer";
  EXPECT_EQ(Str(*r, "op"), "error") << json::serialize(*r);
  EXPECT_EQ(Str(*r, "code"), code) << json::serialize(*r);
  EXPECT_TRUE(Str(*r, "message").starts_with(message_prefix)) << json::serialize(*r);
}

void ExpectRateLimited(const std::optional<json::object>& r) {
  ExpectError(r, "rate_limited");
  ASSERT_TRUE(r.has_value());
  auto it = r->find("retry_after_ms");
  ASSERT_TRUE(it != r->end() && it->value().is_int64()) << json::serialize(*r);
  EXPECT_GT(it->value().get_int64(), 0);
}

std::int64_t PrekeysLeft(WsClient& ws) {
  auto r = ws.Request({{"op", "keys.count"}});
  if (!r || !r->contains("one_time_prekeys_left")) return -1;
  return r->at("one_time_prekeys_left").to_number<std::int64_t>();
}

// keys.bundle for `user`: whether the (single) device came with a one-time prekey.
std::optional<bool> BundleHasPrekey(WsClient& ws, const Account& user) {
  auto r = ws.Request({{"op", "keys.bundle"}, {"user", user.user_id}});
  EXPECT_TRUE(r && Str(*r, "op") == "ok") << (r ? json::serialize(*r) : "no answer");
  if (!r || Str(*r, "op") != "ok") return std::nullopt;
  const auto& d = r->at("devices").as_array().at(0).as_object();
  // Without a one-time prekey the rest of the bundle is still whole.
  EXPECT_EQ(d.at("identity_key"), Key("target"));
  EXPECT_EQ(d.at("signed_prekey").at("id"), json::value("3"));
  EXPECT_EQ(d.at("registration_id"), json::value("42"));
  return d.contains("one_time_prekey");
}

Parleyd::Options Unlimited(std::vector<std::string> more = {}) {
  Parleyd::Options o{.args = {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0",
                              "--device-send-rate", "0"}};
  o.args.insert(o.args.end(), more.begin(), more.end());
  return o;
}

TEST(PrekeyIdsTest, StringIdsAreAcceptedAndAnsweredIntegersStillAccepted) {
  Parleyd server(Unlimited());
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone()), b = SignIn(server, NextPhone());
  auto wa = Connect(server, a), wb = Connect(server, b);
  ASSERT_TRUE(wa && wb);
  ExpectOk(wb->Request(Upload("target", 100, 2)));
  auto r = wa->Request({{"op", "keys.bundle"}, {"user", b.user_id}});
  ExpectOk(r);
  const auto& d = r->at("devices").as_array().at(0).as_object();
  EXPECT_EQ(d.at("registration_id"), json::value("42"));
  EXPECT_EQ(d.at("signed_prekey").at("id"), json::value("3"));
  EXPECT_EQ(d.at("one_time_prekey").at("id"), json::value("100"));
  EXPECT_EQ(d.at("device_id"), b.device_id);

  // Integers are still read, for older clients; the answer is a string anyway.
  ExpectOk(
      wb->Request({{"op", "keys.upload"},
                   {"registration_id", 4294967295u},
                   {"one_time_prekeys", json::array{json::object{{"id", 7}, {"key", Key("x")}}}}}));
  r = wa->Request({{"op", "keys.bundle"}, {"user", b.user_id}});
  ExpectOk(r);
  EXPECT_EQ(r->at("devices").as_array().at(0).at("registration_id"), json::value("4294967295"));
  EXPECT_EQ(r->at("devices").as_array().at(0).at("one_time_prekey").at("id"), json::value("7"));

  // Strings that are not ids of 0 to 2^32-1 are bad requests naming the field.
  for (const char* bad : {"", "-1", "4294967296", "1x", " 1", "99999999999"}) {
    ExpectError(wb->Request({{"op", "keys.upload"}, {"registration_id", bad}}), "bad_request",
                "registration_id");
    ExpectError(wb->Request({{"op", "keys.upload"},
                             {"one_time_prekeys",
                              json::array{json::object{{"id", bad}, {"key", Key("y")}}}}}),
                "bad_request", "one_time_prekeys.id");
  }
}

// With the default limits: a stranger asking again and again gets at most 10
// one-time prekeys an hour of one user; the bundles keep coming without one.
TEST(PrekeyDrainTest, AStrangerCannotDrainOneTimePrekeysWithDefaults) {
  Parleyd server(Unlimited());
  ASSERT_TRUE(server.Start());
  Account target = SignIn(server, NextPhone()), stranger = SignIn(server, NextPhone());
  auto wt = Connect(server, target), ws = Connect(server, stranger);
  ASSERT_TRUE(wt && ws);
  ExpectOk(wt->Request(Upload("target", 1, 100)));
  int with = 0;
  for (int i = 0; i < 30; ++i) {
    auto has = BundleHasPrekey(*ws, target);
    ASSERT_TRUE(has.has_value());
    with += *has ? 1 : 0;
  }
  EXPECT_EQ(with, 10);
  EXPECT_EQ(PrekeysLeft(*wt), 90);
}

// Per target in all, and keys.bundle itself per requesting device.
TEST(PrekeyDrainTest, ManyStrangersTogetherAndOneFastRequesterAreLimited) {
  Parleyd server(
      Unlimited({"--prekey-claims-per-target-per-hour", "4", "--prekey-claims-per-pair-per-hour",
                 "2", "--keys-bundle-per-minute", "6"}));
  ASSERT_TRUE(server.Start());
  Account target = SignIn(server, NextPhone());
  auto wt = Connect(server, target);
  ASSERT_TRUE(wt);
  ExpectOk(wt->Request(Upload("target", 1, 50)));
  std::vector<int> with;
  for (int s = 0; s < 3; ++s) {
    Account stranger = SignIn(server, NextPhone());
    auto ws = Connect(server, stranger);
    ASSERT_TRUE(ws);
    int n = 0;
    for (int i = 0; i < 3; ++i) {
      auto has = BundleHasPrekey(*ws, target);
      ASSERT_TRUE(has.has_value());
      n += *has ? 1 : 0;
    }
    with.push_back(n);
  }
  // 2 each for the first two (the pair limit), then the target's 4 are gone.
  EXPECT_EQ(with, (std::vector<int>{2, 2, 0}));
  EXPECT_EQ(PrekeysLeft(*wt), 46);

  // keys.bundle itself: 6 a minute per device, then rate_limited.
  Account fast = SignIn(server, NextPhone());
  auto wf = Connect(server, fast);
  ASSERT_TRUE(wf);
  for (int i = 0; i < 6; ++i) {
    wf->SendJson(
        {{"op", "keys.bundle"}, {"rid", "b" + std::to_string(i)}, {"user", target.user_id}});
  }
  int ok = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = wf->ReceiveOp("ok", 10s);
    ASSERT_TRUE(r.has_value());
    ++ok;
  }
  EXPECT_EQ(ok, 6);
  ExpectRateLimited(wf->Request({{"op", "keys.bundle"}, {"user", target.user_id}}));
  // Another device is not affected.
  Account other = SignIn(server, NextPhone());
  auto wo = Connect(server, other);
  ASSERT_TRUE(wo);
  ExpectOk(wo->Request({{"op", "keys.bundle"}, {"user", target.user_id}}));
}

json::array Ids(int first, int n) {
  json::array a;
  for (int i = first; i < first + n; ++i) a.push_back(json::value(std::to_string(i)));
  return a;
}

json::array Hashes(int n) {
  json::array a;
  for (int i = 0; i < n; ++i) {
    std::string h(64, '0');
    const std::string tail = std::to_string(i);
    h.replace(64 - tail.size(), tail.size(), tail);
    a.push_back(json::value(h));
  }
  return a;
}

// The three lookups share a bucket per device, one token per user or hash.
TEST(LookupLimitTest, ProfilePresenceAndDiscoveryAreRateLimitedPerDevice) {
  Parleyd server(Unlimited({"--lookup-rate", "1", "--lookup-burst", "10"}));
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone()), b = SignIn(server, NextPhone());
  auto wa = Connect(server, a), wb = Connect(server, b);
  ASSERT_TRUE(wa && wb);
  ExpectOk(wa->Request({{"op", "profile.get"}, {"users", Ids(1000, 8)}}));
  ExpectRateLimited(wa->Request({{"op", "presence.subscribe"}, {"users", Ids(2000, 8)}}));
  ExpectRateLimited(wa->Request({{"op", "contacts.discover"}, {"hashes", Hashes(8)}}));
  ExpectRateLimited(wa->Request({{"op", "profile.get"}, {"users", Ids(3000, 8)}}));
  // Per device: b has its own bucket.
  ExpectOk(wb->Request({{"op", "presence.subscribe"}, {"users", Ids(2000, 8)}}));
  ExpectRateLimited(wb->Request({{"op", "contacts.discover"}, {"hashes", Hashes(8)}}));
}

// The default (20 a second, bursts of 5,000): walking the id space 500 at a
// time stops after about ten calls.
TEST(LookupLimitTest, EnumerationStopsWithDefaults) {
  Parleyd server(Unlimited());
  ASSERT_TRUE(server.Start());
  Account a = SignIn(server, NextPhone());
  auto wa = Connect(server, a);
  ASSERT_TRUE(wa);
  int ok = 0;
  std::optional<json::object> last;
  for (int i = 0; i < 20; ++i) {
    last = wa->Request({{"op", "profile.get"}, {"users", Ids(100000 + 500 * i, 500)}});
    ASSERT_TRUE(last.has_value());
    if (Str(*last, "op") != "ok") break;
    ++ok;
  }
  EXPECT_GE(ok, 10);
  EXPECT_LE(ok, 11);
  ExpectRateLimited(last);
}

std::optional<json::object> StatusOf(WsClient& ws, const Account& of) {
  auto r =
      ws.Request({{"op", "presence.subscribe"}, {"users", json::array{json::value(of.user_id)}}});
  if (!r || Str(*r, "op") != "ok") return std::nullopt;
  return r->at("statuses").as_array().at(0).as_object();
}

std::optional<json::object> ProfileOf(WsClient& ws, const Account& of) {
  auto r = ws.Request({{"op", "profile.get"}, {"users", json::array{json::value(of.user_id)}}});
  if (!r || Str(*r, "op") != "ok") return std::nullopt;
  return r->at("profiles").as_array().at(0).as_object();
}

// "contacts" are the people Alice wrote to; Carol, who only wrote to Alice,
// sees nothing, neither online status nor last seen, by presence or profile.
TEST(LastSeenTest, ContactsMeansSomeoneTheUserWroteTo) {
  Parleyd server(Unlimited());
  ASSERT_TRUE(server.Start());
  Account alice = SignIn(server, NextPhone()), bob = SignIn(server, NextPhone()),
          carol = SignIn(server, NextPhone());
  auto wa = Connect(server, alice), wb = Connect(server, bob), wc = Connect(server, carol);
  ASSERT_TRUE(wa && wb && wc);
  ExpectOk(wa->Request({{"op", "profile.set"}, {"last_seen_visibility", "contacts"}}));
  // Carol writes to Alice; Alice writes to Bob. Each Bob's and Carol's
  // message is answered before anything is asked.
  ExpectOk(SendText(*wc, alice.user_id, "hello alice"));
  ExpectOk(SendText(*wa, bob.user_id, "hello bob"));

  auto seen_by_bob = StatusOf(*wb, alice);
  auto seen_by_carol = StatusOf(*wc, alice);
  ASSERT_TRUE(seen_by_bob && seen_by_carol);
  EXPECT_EQ(seen_by_bob->at("online"), json::value(true));
  EXPECT_EQ(seen_by_carol->at("online"), json::value(false)) << json::serialize(*seen_by_carol);
  EXPECT_TRUE(seen_by_carol->at("last_seen_ms").is_null());

  // Alice goes: Bob, subscribed, hears it; both then ask her profile.
  wa->Close();
  auto push = wb->ReceiveOp("presence", 10s);
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ(push->at("online"), json::value(false));
  EXPECT_TRUE(push->at("last_seen_ms").is_int64());
  auto profile_bob = ProfileOf(*wb, alice);
  auto profile_carol = ProfileOf(*wc, alice);
  ASSERT_TRUE(profile_bob && profile_carol);
  EXPECT_TRUE(profile_bob->contains("last_seen_ms")) << json::serialize(*profile_bob);
  EXPECT_FALSE(profile_carol->contains("last_seen_ms")) << json::serialize(*profile_carol);
  // Carol was subscribed too, and gets no presence push (the server pushes
  // to every subscriber at once: Bob's arrived, so Carol's would have been
  // queued before her next answer).
  ASSERT_TRUE(wc->SendJson({{"op", "ping"}}));
  ASSERT_TRUE(wc->ReceiveOp("pong", 10s).has_value());
  EXPECT_FALSE(wc->ReceiveOp("presence", 300ms).has_value());

  // Once Alice writes to Carol, Carol is a contact she chose.
  auto wa2 = Connect(server, alice);
  ASSERT_TRUE(wa2);
  ExpectOk(SendText(*wa2, carol.user_id, "hi carol"));
  seen_by_carol = StatusOf(*wc, alice);
  ASSERT_TRUE(seen_by_carol);
  EXPECT_EQ(seen_by_carol->at("online"), json::value(true));
}

}  // namespace
}  // namespace parley::test
