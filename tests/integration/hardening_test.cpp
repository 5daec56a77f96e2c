// Issue 14 against a real parleyd: one hostile client must not hurt anyone
// else. Limits per device and per connection, fairness of the store's writer
// between users, changes that change nothing, and outgoing frames bounded
// like incoming ones.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/helpers.hpp"

namespace parley::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxFrame = 256 * 1024;  // PROTOCOL.md: both directions

// Sign-ups are not what these tests are about.
std::vector<std::string> NoSignInLimits() {
  return {"--otp-per-address-per-hour", "0", "--otp-per-phone", "0"};
}

std::unique_ptr<Parleyd> StartServer(std::vector<std::string> extra,
                                     std::map<std::string, std::string> env = {}) {
  auto args = NoSignInLimits();
  args.insert(args.end(), extra.begin(), extra.end());
  auto server = std::make_unique<Parleyd>(Parleyd::Options{.args = args, .env = env});
  EXPECT_TRUE(server->Start());
  return server;
}

json::array UserIds(const std::vector<Account>& accounts) {
  json::array a;
  for (const auto& acc : accounts) a.push_back(json::value(acc.user_id));
  return a;
}

std::vector<Account> Accounts(Parleyd& server, int n) {
  std::vector<Account> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(SignIn(server, NextPhone()));
  return out;
}

std::string CreateGroup(WsClient& ws, const json::array& members, const std::string& name) {
  auto r = ws.Request({{"op", "group.create"}, {"name", name}, {"members", members}}, 20s);
  EXPECT_TRUE(r);
  if (!r) return "";
  EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
  return Str(*r, "group_id");
}

json::object Rename(const std::string& group, const std::string& name) {
  return {{"op", "group.update"}, {"group_id", group}, {"name", name}};
}

json::object SendTo(const json::object& to, const std::string& text) {
  return {{"op", "send"},
          {"to", to},
          {"client_msg_id", NextClientMsgId()},
          {"kind", "text"},
          {"body", {{"text", text}}}};
}

// The p-th percentile (0..100) of the samples, in milliseconds.
double Percentile(std::vector<double> ms, double p) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(ms.size() - 1) + 0.5);
  return ms[std::min(i, ms.size() - 1)];
}

// Answers to pipelined requests, by code: "ok", or the error's code.
struct Tally {
  std::map<std::string, int> by_code;
  int total = 0;
};

// Reads answers until `expected` came or the socket closed (or the deadline).
Tally CollectAnswers(WsClient& ws, int expected, std::chrono::seconds within = 60s) {
  Tally t;
  const auto deadline = Clock::now() + within;
  while (t.total < expected && Clock::now() < deadline) {
    auto f = ws.ReceiveJson(2s);
    if (!f) {
      if (ws.closed()) break;
      continue;
    }
    const std::string op = Str(*f, "op");
    if (op == "ok") {
      ++t.by_code["ok"];
      ++t.total;
    } else if (op == "error") {
      ++t.by_code[Str(*f, "code")];
      ++t.total;
    }
  }
  return t;
}

std::string Show(const Tally& t) {
  std::string out;
  for (const auto& [code, n] : t.by_code) out += code + "=" + std::to_string(n) + " ";
  return out;
}

// ---- Changes that change nothing -------------------------------------------------------------

TEST(Hardening, GroupChangesThatChangeNothingAreNotAnnounced) {
  auto server = StartServer({});
  auto alice = SignIn(*server, NextPhone());
  auto bob = SignIn(*server, NextPhone());
  auto carol = SignIn(*server, NextPhone());
  auto a = Connect(*server, alice);
  auto b = Connect(*server, bob);
  ASSERT_TRUE(a && b);
  const std::string group = CreateGroup(*a, {json::value(bob.user_id)}, "team");
  auto created = NextEventOfType(*b, "group");
  ASSERT_TRUE(created);
  EXPECT_EQ(Str(EventOf(*created), "change"), "created");

  // Ten updates to the same name, adding someone already in, removing and
  // promoting someone who is not: all answered ok, none announced.
  for (int i = 0; i < 10; ++i) {
    auto r = a->Request(Rename(group, "team"));
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
  }
  for (auto frame :
       {json::object{{"op", "group.add"},
                     {"group_id", group},
                     {"users", json::array{json::value(bob.user_id)}}},
        json::object{{"op", "group.remove"},
                     {"group_id", group},
                     {"users", json::array{json::value(carol.user_id)}}},
        json::object{{"op", "group.promote"}, {"group_id", group}, {"user", alice.user_id}},
        json::object{{"op", "group.demote"}, {"group_id", group}, {"user", bob.user_id}},
        json::object{{"op", "group.update"}, {"group_id", group}}}) {
    auto r = a->Request(frame);
    ASSERT_TRUE(r);
    EXPECT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
  }
  // A real change is announced, and it is the next group event bob sees.
  auto r = a->Request(Rename(group, "team 2"));
  ASSERT_TRUE(r);
  EXPECT_EQ(Str(*r, "op"), "ok");
  auto next = NextEventOfType(*b, "group");
  ASSERT_TRUE(next);
  EXPECT_EQ(Str(EventOf(*next), "change"), "updated");
  EXPECT_EQ(Str(EventOf(*next), "name"), "team 2") << json::serialize(*next);
  // Bob's mailbox holds exactly the two: created and the rename.
  auto b2 = WsClient::Connect(server->endpoint());
  ASSERT_TRUE(b2);
  auto h = b2->Request({{"op", "hello"}, {"token", bob.access_token}});
  ASSERT_TRUE(h);
  // device added (its sign-in), created, the rename: nothing else.
  EXPECT_EQ(Str(*h, "head_seq"), "3") << json::serialize(*h);
}

// ---- Outgoing frames are bounded
// -----------------------------------------------------------------

TEST(Hardening, HistoryAndBacklogFitTheFrameLimit) {
  auto server = StartServer({});
  auto alice = SignIn(*server, NextPhone());
  auto bob = SignIn(*server, NextPhone());
  auto a = Connect(*server, alice);
  ASSERT_TRUE(a);
  const std::string big(60 * 1024, 'x');
  std::set<std::string> sent;
  for (int i = 0; i < 12; ++i) {
    auto r = SendText(*a, bob.user_id, std::to_string(i) + big);
    ASSERT_TRUE(r);
    ASSERT_EQ(Str(*r, "op"), "ok") << json::serialize(*r);
    sent.insert(Str(*r, "msg_id"));
  }

  // History: pages cut by bytes, each reply one frame under 256 KiB, and
  // paging with before_msg_id gets every message once.
  std::set<std::string> seen;
  std::string before;
  int pages = 0;
  for (; pages < 20; ++pages) {
    json::object req{{"op", "history"}, {"conv", ToUser(bob.user_id)}, {"limit", 100}};
    if (!before.empty()) req["before_msg_id"] = before;
    auto r = a->Request(req);
    ASSERT_TRUE(r);
    ASSERT_EQ(Str(*r, "op"), "ok") << Str(*r, "code");
    EXPECT_LE(json::serialize(*r).size(), kMaxFrame);
    const auto& msgs = r->at("messages").as_array();
    ASSERT_FALSE(msgs.empty());
    for (const auto& m : msgs) {
      EXPECT_TRUE(seen.insert(Str(m.as_object(), "msg_id")).second);
      before = Str(m.as_object(), "msg_id");
    }
    if (!r->at("more").as_bool()) break;
  }
  EXPECT_EQ(seen, sent);
  EXPECT_GE(pages, 2);  // twelve 60 KiB messages do not fit one frame

  // The backlog of a device that was away: one frame per event, each under the limit.
  auto b = Connect(*server, bob);
  ASSERT_TRUE(b);
  std::set<std::string> delivered;
  std::size_t largest = 0;
  while (delivered.size() < sent.size()) {
    auto text = b->Receive(10s);
    ASSERT_TRUE(text) << "backlog stalled after " << delivered.size();
    largest = std::max(largest, text->size());
    EXPECT_LE(text->size(), kMaxFrame);
    auto v = json::parse(*text).as_object();
    if (Str(v, "op") != "event") continue;
    const auto& e = EventOf(v);
    if (Str(e, "type") != "message") continue;
    delivered.insert(Str(e, "msg_id"));
    Ack(*b, SeqOf(v));
  }
  EXPECT_EQ(delivered, sent);
  std::printf("largest backlog frame: %zu bytes\n", largest);
}

// ---- Limits per device: fan-out counted by recipients
// ----------------------------------------------

TEST(Hardening, GroupSendsAndChangesAreWeighedByTheirRecipients) {
  // 20 recipients a second, bursts of 80: a group of 31 passes once or twice.
  auto server = StartServer({"--device-fanout-rate", "20"});
  auto alice = SignIn(*server, NextPhone());
  auto dave = SignIn(*server, NextPhone());
  auto members = Accounts(*server, 30);
  auto a = Connect(*server, alice);
  auto d = Connect(*server, dave);
  ASSERT_TRUE(a && d);
  const std::string group = CreateGroup(*a, UserIds(members), "big");  // 31 reached
  ASSERT_FALSE(group.empty());
  auto first = a->Request(SendTo({{"group", group}}, "one"));  // 31 more: 62 of 80
  ASSERT_TRUE(first);
  EXPECT_EQ(Str(*first, "op"), "ok") << json::serialize(*first);
  auto second = a->Request(SendTo({{"group", group}}, "two"));
  ASSERT_TRUE(second);
  EXPECT_EQ(Str(*second, "code"), "rate_limited") << json::serialize(*second);
  EXPECT_TRUE(second->contains("retry_after_ms"));
  // A 1:1 message reaches one: it still goes.
  auto one = SendText(*a, dave.user_id, "hi");
  ASSERT_TRUE(one);
  EXPECT_EQ(Str(*one, "op"), "ok") << json::serialize(*one);

  // A group change costs its fan-out too: dave's renames of a group of 31.
  const std::string dg = CreateGroup(*d, UserIds(members), "d");  // 31
  auto r1 = d->Request(Rename(dg, "d1"));                         // 62
  ASSERT_TRUE(r1);
  EXPECT_EQ(Str(*r1, "op"), "ok") << json::serialize(*r1);
  auto r2 = d->Request(Rename(dg, "d2"));
  ASSERT_TRUE(r2);
  EXPECT_EQ(Str(*r2, "code"), "rate_limited") << json::serialize(*r2);
}

// ---- The writer's queue is shared fairly
// -------------------------------------------------------------

// With no cap per connection, a user past its share of the writes in flight
// is told rate_limited (never internal), and every request is answered.
TEST(Hardening, AUserPastItsShareOfWritesIsToldRateLimited) {
  auto server = StartServer(
      {"--device-send-rate", "0", "--user-writes-in-flight", "2", "--max-requests-in-flight", "0"});
  auto alice = SignIn(*server, NextPhone());
  auto bob = SignIn(*server, NextPhone());
  auto a = Connect(*server, alice);
  auto b = Connect(*server, bob);
  ASSERT_TRUE(a && b);
  constexpr int kPipelined = 300;
  for (int i = 0; i < kPipelined; ++i) ASSERT_TRUE(a->SendJson(SendTo(ToUser(bob.user_id), "x")));
  // Meanwhile another user is not held back by alice's share.
  auto other = SendText(*b, alice.user_id, "still here");
  ASSERT_TRUE(other);
  EXPECT_EQ(Str(*other, "op"), "ok") << json::serialize(*other);
  const Tally t = CollectAnswers(*a, kPipelined);
  EXPECT_EQ(t.total, kPipelined) << Show(t);
  EXPECT_GT(t.by_code.count("rate_limited") ? t.by_code.at("rate_limited") : 0, 0) << Show(t);
  EXPECT_EQ(t.by_code.count("internal"), 0u) << Show(t);
  EXPECT_GT(t.by_code.count("ok") ? t.by_code.at("ok") : 0, 0) << Show(t);
}

// ---- Every op that writes pays for it ---------------------------------------------------------

// Answers of `n` requests made one after the other, by code.
Tally Requests(WsClient& ws, const json::object& frame, int n) {
  Tally t;
  for (int i = 0; i < n; ++i) {
    auto r = ws.Request(frame);
    if (!r) break;
    ++t.by_code[Str(*r, "op") == "ok" ? "ok" : Str(*r, "code")];
    ++t.total;
  }
  return t;
}

int Count(const Tally& t, const std::string& code) {
  return t.by_code.count(code) ? t.by_code.at(code) : 0;
}

// profile.set and devices.remove write: they take from the device's write
// bucket like group changes (1 a second here, bursts of 4).
TEST(Hardening, ProfileSetAndDevicesRemoveAreLimitedAsWrites) {
  auto server = StartServer({"--device-write-rate", "1"});
  auto alice = SignIn(*server, NextPhone());
  auto a = Connect(*server, alice);
  ASSERT_TRUE(a);
  const Tally set = Requests(*a, {{"op", "profile.set"}, {"status_text", "busy"}}, 6);
  EXPECT_EQ(Count(set, "ok"), 4) << Show(set);
  EXPECT_EQ(Count(set, "rate_limited"), 2) << Show(set);

  auto bob = SignIn(*server, NextPhone());
  auto b = Connect(*server, bob);
  ASSERT_TRUE(b);
  // A device that does not exist is looked for all the same: the store's work.
  const Tally removed = Requests(*b, {{"op", "devices.remove"}, {"device_id", "123456789"}}, 6);
  EXPECT_EQ(Count(removed, "not_found"), 4) << Show(removed);
  EXPECT_EQ(Count(removed, "rate_limited"), 2) << Show(removed);
}

// An ack that moves the cursor is a write: it takes a token from the same
// bucket (it is never refused: ack has no answer), so a device acking one
// event at a time has that much less left for its other writes.
TEST(Hardening, AcksThatWriteCountAsWrites) {
  auto server = StartServer({"--device-write-rate", "1", "--device-send-rate", "0"});
  auto alice = SignIn(*server, NextPhone());
  auto bob = SignIn(*server, NextPhone());
  auto a = Connect(*server, alice);
  auto b = Connect(*server, bob);
  ASSERT_TRUE(a && b);
  // The bucket holds 4 and refills 1 a second: four acks and a profile.set
  // within one second leave nothing for the profile.set. An attempt that took
  // longer (each ack waits for its receipt: on a loaded machine, with
  // PostgreSQL, four of them have taken over a second) proves nothing, so
  // it is tried again once the bucket is full.
  int judged = 0;
  std::vector<std::string> slow;
  for (int attempt = 0; attempt < 6 && judged == 0; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(4500));
    std::vector<std::string> seqs;
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(
          SendText(*a, bob.user_id, "m" + std::to_string(attempt) + "." + std::to_string(i)));
      auto m = NextEventOfType(*b, "message");
      ASSERT_TRUE(m);
      seqs.push_back(Str(*m, "seq"));
    }
    const auto start = std::chrono::steady_clock::now();
    for (const auto& seq : seqs) {
      ASSERT_TRUE(b->SendJson({{"op", "ack"}, {"seq", seq}}));
      // Each its own write: the last one is stored (its delivered receipt
      // reached the sender) before the next is sent. An ack sent while the
      // last is still being written merges into it and takes no token (the
      // server ends the write before it sends the receipt).
      ASSERT_TRUE(NextEventOfType(*a, "receipt"));
    }
    auto r = b->Request({{"op", "profile.set"}, {"status_text", "here"}});
    ASSERT_TRUE(r);
    const auto took = std::chrono::steady_clock::now() - start;
    if (took >= std::chrono::milliseconds(950)) {
      slow.push_back(
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
      continue;
    }
    ++judged;
    EXPECT_EQ(Str(*r, "code"), "rate_limited") << json::serialize(*r);
  }
  EXPECT_EQ(judged, 1) << "every attempt took a second or more (ms): "
                       << ::testing::PrintToString(slow);
}

// A group change that changes nothing reaches nobody: it pays no fan-out
// tokens (it still pays its write token), so a client repeating its last
// change is not held back; a real change still pays for every member.
TEST(Hardening, GroupChangesThatChangeNothingPayNoFanOut) {
  // A rename of this 31-member group costs 32 recipients; the bucket holds 40.
  auto server = StartServer({"--device-write-rate", "0", "--device-fanout-rate", "10"});
  auto alice = SignIn(*server, NextPhone());
  auto members = Accounts(*server, 30);
  auto a = Connect(*server, alice);
  ASSERT_TRUE(a);
  // Creating it costs 31 (its members and the creator).
  const std::string group = CreateGroup(*a, UserIds(members), "g");
  ASSERT_FALSE(group.empty());
  std::this_thread::sleep_for(3500ms);  // refilled: 40 again
  auto first = a->Request(Rename(group, "h"));
  ASSERT_TRUE(first);
  EXPECT_EQ(Str(*first, "op"), "ok") << json::serialize(*first);
  // 8 tokens left: no-ops are all answered ok.
  const Tally noops = Requests(*a, Rename(group, "h"), 20);
  EXPECT_EQ(Count(noops, "ok"), 20) << Show(noops);
  // A real change right after is refused (32 > what refilled meanwhile).
  auto real = a->Request(Rename(group, "i"));
  ASSERT_TRUE(real);
  EXPECT_EQ(Str(*real, "code"), "rate_limited") << json::serialize(*real);
}

// The writer share of the flooding user: 16 unless PARLEY_TEST_FLOOD_SHARE
// says otherwise (with the default of 128, 128 renames of a 256-member group
// can share one commit: 60-260 ms for everyone else; see docs/operations.md).
std::string FloodShare() {
  const char* v = std::getenv("PARLEY_TEST_FLOOD_SHARE");
  return v != nullptr ? v : "16";
}

// ---- The flood
// ------------------------------------------------------------------------------------

// Issue 14's flood: one client with a 256-member group pipelines 20,000
// group.update requests that change nothing, then a flood of real renames;
// meanwhile another user sends 1:1 messages, one at a time, and its p99 `ok`
// must stay low. The buckets per device are off here (set through the
// environment, which an older parleyd ignores, so this also measures main):
// what is tested is what the writer does with the flood that gets through.
TEST(Hardening, AFloodOfGroupChangesDoesNotStallOtherUsers) {
  constexpr int kNoOps = 20000;
  constexpr int kRenames = 400;
  auto server =
      StartServer({"--device-send-rate", "0"}, {{"PARLEY_DEVICE_WRITE_RATE", "0"},
                                                {"PARLEY_DEVICE_FANOUT_RATE", "0"},
                                                {"PARLEY_USER_WRITES_IN_FLIGHT", FloodShare()}});
  auto attacker = SignIn(*server, NextPhone());
  auto victim = SignIn(*server, NextPhone());
  auto peer = SignIn(*server, NextPhone());
  const auto t0 = Clock::now();
  auto members = Accounts(*server, 255);  // never connect
  std::printf("255 sign-ups: %.1f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  auto a = Connect(*server, attacker);
  auto v = Connect(*server, victim);
  ASSERT_TRUE(a && v);
  const std::string group = CreateGroup(*a, UserIds(members), "g");
  ASSERT_FALSE(group.empty());

  auto victim_send = [&]() -> std::optional<double> {
    const auto start = Clock::now();
    auto r = SendText(*v, peer.user_id, "hello", "", 60s);
    if (!r || Str(*r, "op") != "ok") {
      ADD_FAILURE() << "victim send: " << (r ? json::serialize(*r) : "no answer");
      return std::nullopt;
    }
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  // The same sends without the flood: what this machine gives right now.
  std::vector<double> quiet;
  for (int i = 0; i < 40; ++i) {
    if (auto ms = victim_send()) quiet.push_back(*ms);
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(quiet.size(), 20u);

  // The flood goes in rounds until the other user has sent at least
  // kSamples times during it: most of the no-ops are refused at once
  // (the user's share of the writer), so one round can be over in a
  // quarter of a second, too short to say anything about the others.
  constexpr int kSamples = 20;
  constexpr int kMaxRounds = 40;
  std::atomic<bool> flooding{true};
  std::atomic<std::size_t> samples{0};
  Tally flood;
  int flood_sent = 0;
  int rounds = 0;
  double flood_s = 0;
  std::thread attack([&] {
    const auto start = Clock::now();
    const std::string noop = json::serialize(Rename(group, "g"));
    while (rounds < kMaxRounds && (rounds == 0 || samples.load() < kSamples)) {
      ++rounds;
      int sent = 0;
      for (int i = 0; i < kNoOps && a->SendText(noop); ++i) ++sent;
      for (int i = 0; i < kRenames && a->SendJson(Rename(group, i % 2 ? "g" : "h")); ++i) ++sent;
      const Tally t = CollectAnswers(*a, sent, 120s);
      flood_sent += sent;
      flood.total += t.total;
      for (const auto& [code, n] : t.by_code) flood.by_code[code] += n;
      if (t.total < sent) break;
    }
    flood_s = std::chrono::duration<double>(Clock::now() - start).count();
    flooding = false;
  });
  std::vector<double> during;
  while (flooding.load()) {
    if (auto ms = victim_send()) {
      during.push_back(*ms);
      samples = during.size();
    }
    std::this_thread::sleep_for(10ms);
  }
  attack.join();

  const double quiet_p99 = Percentile(quiet, 99);
  const double p50 = Percentile(during, 50);
  const double p99 = Percentile(during, 99);
  std::printf(
      "flood: %d requests in %d rounds answered in %.2f s (%s); other user's send ok during "
      "it: n=%zu p50=%.1f ms p99=%.1f ms max=%.1f ms (quiet p99 %.1f ms)\n",
      flood.total, rounds, flood_s, Show(flood).c_str(), during.size(), p50, p99,
      during.empty() ? 0.0 : *std::max_element(during.begin(), during.end()), quiet_p99);
  EXPECT_EQ(flood_sent, rounds * (kNoOps + kRenames));
  EXPECT_EQ(flood.total, flood_sent) << Show(flood);
  EXPECT_EQ(flood.by_code.count("internal"), 0u) << Show(flood);
  ASSERT_GE(during.size(), static_cast<std::size_t>(kSamples));
  // With 20 to 40 samples a "p99" is the slowest send, which one slow fsync
  // decides on a loaded machine (this disk's fsync peaks near 300 ms), so
  // the typical send and the slowest are bounded separately, each against
  // the same sends without the flood on this machine right now. Before the
  // writer was shared fairly the flood gave p50 3,267 ms and max 56 s.
  const double quiet_p50 = Percentile(quiet, 50);
  const double quiet_max = *std::max_element(quiet.begin(), quiet.end());
  const double worst = *std::max_element(during.begin(), during.end());
  EXPECT_LT(p50, std::max(50.0, 4 * quiet_p50));
  EXPECT_LT(worst, std::max(1000.0, 4 * std::max(quiet_p99, quiet_max)));
  // Nothing was announced for the no-ops: the members' mailboxes hold the
  // creation and the renames that changed the name, no more.
  auto m = WsClient::Connect(server->endpoint());
  ASSERT_TRUE(m);
  auto h = m->Request({{"op", "hello"}, {"token", members.front().access_token}});
  ASSERT_TRUE(h);
  EXPECT_LE(std::stoull(Str(*h, "head_seq")),
            static_cast<unsigned long long>(1 + rounds * kRenames));
}

}  // namespace
}  // namespace parley::test
