// The bus contract (src/bus/bus.hpp), run against both implementations: the
// in-process hub and Redis (a real redis-server started by the test on a
// free port, no persistence). Redis-only faults (restart, garbage on a
// channel, a dead holder of a node id, no bus at start) follow the shared
// cases.
#include "bus/bus.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "bus/local/local_bus.hpp"
#include "bus/redis/redis_bus.hpp"
#include "support/redis_server.hpp"

namespace parley::bus {
namespace {

using namespace std::chrono_literals;
constexpr auto kWait = 10s;

// The executor callbacks run on: one thread of its own.
class TestExecutor {
 public:
  TestExecutor() : work_(boost::asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~TestExecutor() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  Executor executor() {
    return [this](std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); };
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

// What one node heard, as lines ("wake 7 3 <frame>", "presence 7 1", ...).
class Inbox {
 public:
  void Add(std::string line) {
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(line));
    cv_.notify_all();
  }
  // Waits for a line equal to `line`; removes and answers true when it came.
  bool Wait(const std::string& line, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (auto it = lines_.begin(); it != lines_.end(); ++it) {
        if (*it == line) {
          lines_.erase(it);
          return true;
        }
      }
      return false;
    });
  }
  bool Has(const std::string& line) {
    std::lock_guard lock(mu_);
    return std::find(lines_.begin(), lines_.end(), line) != lines_.end();
  }
  bool HasPrefix(const std::string& prefix) {
    std::lock_guard lock(mu_);
    return std::any_of(lines_.begin(), lines_.end(),
                       [&](const std::string& l) { return l.starts_with(prefix); });
  }
  std::size_t Count(const std::string& line) {
    std::lock_guard lock(mu_);
    return static_cast<std::size_t>(std::count(lines_.begin(), lines_.end(), line));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
};

// One "node": a bus, its executor, what it heard.
struct Node {
  Registry registry;
  BusMetrics metrics{registry};
  TestExecutor executor;
  Inbox inbox;
  std::unique_ptr<Bus> bus;

  void Start() {
    Handlers h;
    h.on_wake = [this](const Wake& w) {
      inbox.Add("wake " + std::to_string(w.user) + " " + std::to_string(w.seq) + " " + w.frame);
    };
    h.on_presence = [this](const PresenceChange& p) {
      inbox.Add("presence " + std::to_string(p.user) + " " + (p.online ? "1" : "0") + " " +
                std::to_string(p.last_seen_ms));
    };
    h.on_typing = [this](const Typing& t) {
      inbox.Add("typing " + std::to_string(t.to) + " " + std::to_string(t.from) + " " + t.frame);
    };
    h.on_control = [this](const Control& c) {
      inbox.Add("control " + std::to_string(c.user) + " " + std::to_string(c.device) + " " +
                std::to_string(static_cast<int>(c.kind)) + " " + std::to_string(c.connection));
    };
    h.on_resubscribed = [this] { inbox.Add("resubscribed"); };
    h.on_state = [this](bool up) { inbox.Add(up ? "state up" : "state down"); };
    h.on_claim_lost = [this](const std::string&) { inbox.Add("claim lost"); };
    bus->Start(std::move(h));
  }
};

// Waits for a callback's answer.
template <class T>
class Answer {
 public:
  std::function<void(T)> Callback() {
    return [this](T v) {
      std::lock_guard lock(mu_);
      value_ = std::move(v);
      cv_.notify_all();
    };
  }
  std::optional<T> Get(std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return value_.has_value(); });
    return value_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

bool SubscribeAndWait(Bus& bus, UserId user) {
  Answer<bool> a;
  bus.Subscribe(user, a.Callback());
  auto ok = a.Get();
  return ok && *ok;
}

// Makes nodes that reach each other.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<Node> MakeNode(const std::string& node_id) = 0;
};

class LocalBackend : public Backend {
 public:
  std::unique_ptr<Node> MakeNode(const std::string& node_id) override {
    auto n = std::make_unique<Node>();
    n->bus = MakeLocalBus(hub_, node_id, n->executor.executor(), &n->metrics);
    return n;
  }

 private:
  std::shared_ptr<LocalHub> hub_ = NewLocalHub();
};

RedisOptions TestRedisOptions(const std::string& url, const std::string& node_id) {
  auto o = ParseRedisUrl(url);
  EXPECT_TRUE(o.has_value());
  o->node_id = node_id;
  o->heartbeat = 200ms;
  o->node_ttl = 3000ms;
  o->probe = 300ms;
  o->reconnect_max = 500ms;
  return *o;
}

class RedisBackend : public Backend {
 public:
  RedisBackend() { started_ = redis_.Start(); }
  std::unique_ptr<Node> MakeNode(const std::string& node_id) override {
    auto n = std::make_unique<Node>();
    n->bus =
        MakeRedisBus(TestRedisOptions(redis_.url(), node_id), n->executor.executor(), &n->metrics);
    return n;
  }
  test::RedisServer& redis() { return redis_; }
  bool started() const { return started_; }

 private:
  test::RedisServer redis_;
  bool started_ = false;
};

class BusContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      auto r = std::make_unique<RedisBackend>();
      ASSERT_TRUE(r->started()) << "redis-server did not start";
      backend_ = std::move(r);
    } else {
      backend_ = std::make_unique<LocalBackend>();
    }
  }
  // A started node, connected and subscribed to the basics.
  std::unique_ptr<Node> Started(const std::string& node_id) {
    auto n = backend_->MakeNode(node_id);
    n->Start();
    EXPECT_TRUE(n->inbox.Wait("state up")) << node_id;
    EXPECT_TRUE(n->inbox.Wait("resubscribed")) << node_id;
    EXPECT_TRUE(n->bus->connected());
    return n;
  }
  std::unique_ptr<Backend> backend_;
};

TEST_P(BusContract, WakesReachSubscribersOfTheUserOnly) {
  auto a = Started("a");
  auto b = Started("b");
  auto c = Started("c");
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 7));
  ASSERT_TRUE(SubscribeAndWait(*c->bus, 8));
  a->bus->PublishWake({7, 3, R"({"op":"event","seq":"3","event":{}})", ""});
  a->bus->PublishWake({7, 4, "", ""});
  EXPECT_TRUE(b->inbox.Wait(R"(wake 7 3 {"op":"event","seq":"3","event":{}})"));
  EXPECT_TRUE(b->inbox.Wait("wake 7 4 "));
  // c heard nothing of user 7: a marker on its own user arrives after it.
  a->bus->PublishWake({8, 1, "", ""});
  EXPECT_TRUE(c->inbox.Wait("wake 8 1 "));
  EXPECT_FALSE(
      c->inbox.Has("wake 7 3 "
                   R"({"op":"event","seq":"3"})"));
  EXPECT_FALSE(c->inbox.Has("wake 7 4 "));
  EXPECT_GE(b->metrics.received.Value(), 2);
  EXPECT_GE(a->metrics.published.Value(), 3);
  // Each wake carried its publish time: b observed the cross-node latency.
  EXPECT_EQ(b->metrics.wake_latency.Count(), 2u);
  EXPECT_EQ(a->metrics.wake_latency.Count(), 0u);
  EXPECT_LT(b->metrics.wake_latency.Sum(), 10.0);
}

TEST_P(BusContract, ANodeDoesNotHearItsOwnPublications) {
  auto a = Started("a");
  auto b = Started("b");
  ASSERT_TRUE(SubscribeAndWait(*a->bus, 5));
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 5));
  a->bus->PublishWake({5, 1, "", ""});
  EXPECT_TRUE(b->inbox.Wait("wake 5 1 "));
  // Published after a's own was routed, so it reaches a after a's echo would have.
  b->bus->PublishWake({5, 2, "", ""});
  EXPECT_TRUE(a->inbox.Wait("wake 5 2 "));
  EXPECT_FALSE(a->inbox.Has("wake 5 1 "));
  EXPECT_FALSE(b->inbox.Has("wake 5 2 "));
}

TEST_P(BusContract, SubscriptionsAreCountedAndEnd) {
  auto a = Started("a");
  auto b = Started("b");
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 9));
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 9));
  b->bus->Unsubscribe(9);                      // one interest left
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 10));  // orders the unsubscribe before what follows
  a->bus->PublishWake({9, 1, "", ""});
  EXPECT_TRUE(b->inbox.Wait("wake 9 1 "));
  b->bus->Unsubscribe(9);
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 11));
  a->bus->PublishWake({9, 2, "", ""});
  a->bus->PublishWake({11, 1, "", ""});
  EXPECT_TRUE(b->inbox.Wait("wake 11 1 "));
  EXPECT_FALSE(b->inbox.Has("wake 9 2 "));
}

TEST_P(BusContract, PresenceGoesToEveryOtherNode) {
  auto a = Started("a");
  auto b = Started("b");
  auto c = Started("c");
  a->bus->PublishPresence({42, true, 0, ""});
  a->bus->PublishPresence({42, false, 1700000000123, ""});
  for (Node* n : {b.get(), c.get()}) {
    EXPECT_TRUE(n->inbox.Wait("presence 42 1 0"));
    EXPECT_TRUE(n->inbox.Wait("presence 42 0 1700000000123"));
  }
  EXPECT_FALSE(a->inbox.Has("presence 42 1 0"));
}

TEST_P(BusContract, TypingAndControlReachTheUsersNodes) {
  auto a = Started("a");
  auto b = Started("b");
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 3));
  a->bus->PublishTyping({3, 4, R"({"op":"typing"})", ""});
  a->bus->PublishControl({Control::Kind::kRemoved, 3, 77, 0, ""});
  a->bus->PublishControl({Control::Kind::kReplaced, 3, 77, 12345, ""});
  a->bus->PublishControl({Control::Kind::kRevoked, 3, 78, 0, ""});
  EXPECT_TRUE(b->inbox.Wait(R"(typing 3 4 {"op":"typing"})"));
  EXPECT_TRUE(b->inbox.Wait("control 3 77 1 0"));
  EXPECT_TRUE(b->inbox.Wait("control 3 77 2 12345"));
  EXPECT_TRUE(b->inbox.Wait("control 3 78 3 0"));
}

TEST_P(BusContract, RegistryTracksDevicesAcrossNodes) {
  auto a = Started("node-a");
  auto b = Started("node-b");
  Answer<Result<bool>> r1, r2, r3, r4;
  a->bus->Register(100, 1, r1.Callback());
  ASSERT_TRUE(r1.Get() && *r1.Get());
  EXPECT_TRUE(**r1.Get());  // came online
  b->bus->Register(100, 2, r2.Callback());
  ASSERT_TRUE(r2.Get() && *r2.Get());
  EXPECT_FALSE(**r2.Get());

  Answer<Result<std::vector<DeviceLocation>>> where;
  a->bus->Locate(100, where.Callback());
  auto w = where.Get();
  ASSERT_TRUE(w && *w);
  std::map<DeviceId, std::string> nodes;
  for (const auto& l : **w) nodes[l.device] = l.node;
  EXPECT_EQ(nodes, (std::map<DeviceId, std::string>{{1, "node-a"}, {2, "node-b"}}));

  a->bus->Unregister(100, 1, r3.Callback());
  ASSERT_TRUE(r3.Get() && *r3.Get());
  EXPECT_FALSE(**r3.Get());  // device 2 is still on b
  b->bus->Unregister(100, 2, r4.Callback());
  ASSERT_TRUE(r4.Get() && *r4.Get());
  EXPECT_TRUE(**r4.Get());  // went offline
}

// The sign-in limits counted across nodes: two nodes share one window, a
// refused event records nothing, and a limit of 0 only counts.
TEST_P(BusContract, WindowLimitsAreSharedByEveryNode) {
  auto a = Started("node-a");
  auto b = Started("node-b");
  auto take = [](Bus& bus, std::vector<WindowLimit> limits) {
    Answer<Result<std::int64_t>> r;
    bus.TakeWindows(std::move(limits), r.Callback());
    auto got = r.Get();
    EXPECT_TRUE(got && *got);
    return got && *got ? **got : -1;
  };
  const WindowLimit phone{"t:phone:1", 3, 60000};
  const WindowLimit all{"t:all", 5, 60000};
  EXPECT_EQ(take(*a->bus, {phone, all}), 0);
  EXPECT_EQ(take(*b->bus, {phone, all}), 0);
  EXPECT_EQ(take(*a->bus, {phone, all}), 0);
  // The fourth, on either node, waits for the first to leave the window.
  const std::int64_t wait = take(*b->bus, {phone, all});
  EXPECT_GT(wait, 50000);
  EXPECT_LE(wait, 60000);
  EXPECT_GT(take(*a->bus, {phone}), 0);
  // Refused events were not counted: `all` has 3 of 5.
  const WindowLimit other{"t:phone:2", 3, 60000};
  EXPECT_EQ(take(*a->bus, {other, all}), 0);
  EXPECT_EQ(take(*b->bus, {other, all}), 0);
  EXPECT_GT(take(*a->bus, {other, all}), 0);  // all is full
  // Counted only: never refused, but counted.
  const WindowLimit counted{"t:phone:3", 0, 60000};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(take(*b->bus, {counted}), 0);
  EXPECT_GT(take(*a->bus, {WindowLimit{"t:phone:3", 4, 60000}}), 0);
  // A short window frees itself.
  const WindowLimit quick{"t:quick", 1, 300};
  EXPECT_EQ(take(*a->bus, {quick}), 0);
  EXPECT_GT(take(*b->bus, {quick}), 0);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(take(*b->bus, {quick}), 0);
}

TEST_P(BusContract, ANodeIdIsHeldByOneLiveNode) {
  auto a = Started("n1");
  auto b = Started("n1");
  Answer<Status> first, second, third;
  a->bus->ClaimNode(5000, first.Callback());
  ASSERT_TRUE(first.Get());
  EXPECT_TRUE(first.Get()->has_value());
  b->bus->ClaimNode(5000, second.Callback());
  auto refused = second.Get();
  ASSERT_TRUE(refused);
  ASSERT_FALSE(refused->has_value());
  EXPECT_EQ(refused->error().code, Errc::kConflict);
  EXPECT_NE(refused->error().message.find("n1"), std::string::npos);
  EXPECT_NE(refused->error().message.find(a->bus->instance()), std::string::npos)
      << refused->error().message;
  a->bus->Stop();  // releases it
  b->bus->ClaimNode(5000, third.Callback());
  ASSERT_TRUE(third.Get());
  EXPECT_TRUE(third.Get()->has_value());
}

INSTANTIATE_TEST_SUITE_P(Backends, BusContract, ::testing::Values("local", "redis"),
                         [](const auto& info) { return info.param; });

// ---- Redis only ---------------------------------------------------------

class RedisBus : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(backend_.started()) << "redis-server did not start"; }
  // kDevices registrations on `n`: three chunks of the bus's 256, the last short.
  static constexpr UserId kFirst = 1000;
  static constexpr int kDevices = 700;
  static void RegisterDevices(Node& n) {
    for (int i = 0; i < kDevices; ++i) {
      Answer<Result<bool>> reg;
      n.bus->Register(kFirst + i, 1, reg.Callback());
      ASSERT_TRUE(reg.Get() && *reg.Get());
    }
  }
  // A user at each edge of each chunk is registered.
  void ExpectEveryChunkRegistered() {
    for (UserId u :
         {kFirst, kFirst + 255, kFirst + 256, kFirst + 511, kFirst + 512, kFirst + kDevices - 1}) {
      EXPECT_EQ(backend_.redis().Command({"ZCARD", "pr:" + std::to_string(u)}), ":1\r\n") << u;
    }
  }
  std::unique_ptr<Node> Started(const std::string& node_id) {
    auto n = backend_.MakeNode(node_id);
    n->Start();
    EXPECT_TRUE(n->inbox.Wait("state up"));
    EXPECT_TRUE(n->inbox.Wait("resubscribed"));
    return n;
  }
  RedisBackend backend_;
};

TEST_F(RedisBus, ReconnectsResubscribesAndFlowsAgainAfterARedisRestart) {
  auto a = Started("a");
  auto b = Started("b");
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 7));
  Answer<Result<bool>> reg;
  b->bus->Register(7, 70, reg.Callback());
  ASSERT_TRUE(reg.Get() && *reg.Get());
  a->bus->PublishWake({7, 1, "", ""});
  ASSERT_TRUE(b->inbox.Wait("wake 7 1 "));

  backend_.redis().Kill();
  EXPECT_TRUE(a->inbox.Wait("state down"));
  EXPECT_TRUE(b->inbox.Wait("state down"));
  EXPECT_FALSE(b->bus->connected());
  // Lost: nowhere to go. "state down" may come from the subscriber before
  // the command connection has seen its end (a publication then goes to a
  // dead socket, uncounted), so publish until one is counted lost.
  for (int i = 0; i < 100 && a->metrics.publish_lost.Value() < 1; ++i) {
    a->bus->PublishWake({7, 2, "", ""});
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(backend_.redis().Start());
  const auto back = std::chrono::steady_clock::now();

  EXPECT_TRUE(b->inbox.Wait("state up"));
  EXPECT_TRUE(b->inbox.Wait("resubscribed"));
  EXPECT_TRUE(a->inbox.Wait("state up"));
  // Publications flow again within 5 s of Redis being back.
  bool flowed = false;
  for (std::uint64_t seq = 3; !flowed && std::chrono::steady_clock::now() - back < 5s; ++seq) {
    a->bus->PublishWake({7, seq, "", ""});
    flowed = b->inbox.Wait("wake 7 " + std::to_string(seq) + " ", 200ms);
  }
  EXPECT_TRUE(flowed);
  EXPECT_FALSE(b->inbox.Has("wake 7 2 "));
  EXPECT_GE(a->metrics.publish_lost.Value(), 1);
  EXPECT_GE(b->metrics.reconnects.Value(), 1);
  // The registration was asserted again in the new Redis.
  bool located = false;
  for (int i = 0; i < 50 && !located; ++i) {
    Answer<Result<std::vector<DeviceLocation>>> where;
    a->bus->Locate(7, where.Callback());
    auto w = where.Get();
    located =
        w && *w && (*w)->size() == 1 && (*w)->front().device == 70 && (*w)->front().node == "b";
    if (!located) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(located);
}

// After a restart the registrations go back a chunk (256) at a time, each
// chunk once the last answered: every one of a node's devices, however many,
// is written again, and publications flow meanwhile.
TEST_F(RedisBus, RegistrationsOfManyChunksAreAllWrittenAgainAfterARedisRestart) {
  auto b = Started("b");
  ASSERT_NO_FATAL_FAILURE(RegisterDevices(*b));
  const std::string set = "nd:" + b->bus->instance();
  const std::string all = ":" + std::to_string(kDevices) + "\r\n";
  ASSERT_EQ(backend_.redis().Command({"SCARD", set}), all);
  backend_.redis().Kill();
  EXPECT_TRUE(b->inbox.Wait("state down"));
  ASSERT_TRUE(backend_.redis().Start());
  EXPECT_TRUE(b->inbox.Wait("state up"));
  std::string count;
  for (int i = 0; i < 100 && count != all; ++i) {
    count = backend_.redis().Command({"SCARD", set});
    if (count != all) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(count, all);
  ExpectEveryChunkRegistered();
}

// The registrations are written again every third of registry_ttl, in
// chunks of one call each: none of a node's devices expires while it holds
// them, however many chunks they take.
TEST_F(RedisBus, RegistrationsOfManyChunksAreRefreshedBeforeTheyExpire) {
  auto o = TestRedisOptions(backend_.redis().url(), "b");
  o.registry_ttl = 900ms;  // refreshed every 300 ms
  auto b = std::make_unique<Node>();
  b->bus = MakeRedisBus(o, b->executor.executor(), &b->metrics);
  b->Start();
  ASSERT_TRUE(b->inbox.Wait("state up"));
  ASSERT_NO_FATAL_FAILURE(RegisterDevices(*b));
  // Three times the registrations' lifetime.
  std::this_thread::sleep_for(2700ms);
  const std::string all = ":" + std::to_string(kDevices) + "\r\n";
  EXPECT_EQ(backend_.redis().Command({"SCARD", "nd:" + b->bus->instance()}), all);
  ExpectEveryChunkRegistered();
  // Still where another node looks.
  auto a = Started("a");
  Answer<Result<std::vector<DeviceLocation>>> where;
  a->bus->Locate(kFirst + kDevices - 1, where.Callback());
  auto w = where.Get();
  ASSERT_TRUE(w && *w);
  ASSERT_EQ((*w)->size(), 1u);
  EXPECT_EQ((*w)->front().node, "b");
  // Unregistered, it is not written back by the refreshes that follow.
  Answer<Result<bool>> gone;
  b->bus->Unregister(kFirst, 1, gone.Callback());
  ASSERT_TRUE(gone.Get() && *gone.Get());
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(backend_.redis().Command({"ZCARD", "pr:" + std::to_string(kFirst)}), ":0\r\n");
  EXPECT_EQ(backend_.redis().Command({"SCARD", "nd:" + b->bus->instance()}),
            ":" + std::to_string(kDevices - 1) + "\r\n");
}

TEST_F(RedisBus, GarbageOnChannelsIsCountedAndDropped) {
  auto a = Started("a");
  auto b = Started("b");
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 7));
  const std::vector<std::string> garbage = {
      "not json", "[]", R"({"v":2,"t":"w","o":"ab","s":"1"})", R"({"v":1,"t":"x","o":"ab"})",
      R"({"v":1,"t":"w","o":"ab","s":"0"})", R"({"v":1,"t":"w","o":"XYZ","s":"1"})",
      R"({"v":1,"t":"c","o":"ab","k":9,"d":"1"})", R"({"v":1,"t":"c","o":"ab","k":2,"d":"1"})",
      R"({"v":1,"t":"w","o":"ab","s":"1","us":-1})", R"({"v":1,"t":"w","o":"ab","s":"1","us":"1"})",
      // Inline frames go to clients as they are: a
      // frame that is not the event of this very seq,
      // or not a typing frame, is dropped.
      R"({"v":1,"t":"w","o":"ab","s":"1","f":"<b>hi"})",
      R"({"v":1,"t":"w","o":"ab","s":"1","f":"[1]"})",
      R"({"v":1,"t":"w","o":"ab","s":"1","f":"{\"op\":\"event\",\"seq\":\"2\",\"event\":{}}"})",
      R"({"v":1,"t":"w","o":"ab","s":"1","f":"{\"op\":\"ok\",\"seq\":\"1\",\"event\":{}}"})",
      R"({"v":1,"t":"w","o":"ab","s":"1","f":"{\"op\":\"event\",\"seq\":\"1\",\"event\":3}"})",
      R"({"v":1,"t":"t","o":"ab","from":"2","f":"{\"op\":\"event\"}"})",
      R"({"v":1,"t":"t","o":"ab","from":"2","f":"{\"op\":\"typing\""})", std::string(70000, 'x')};
  for (const auto& g : garbage) backend_.redis().Command({"PUBLISH", "u:7", g});
  backend_.redis().Command({"PUBLISH", "presence", R"({"v":1,"t":"p","o":"ab","u":"1"})"});
  a->bus->PublishWake({7, 5, "", ""});
  ASSERT_TRUE(b->inbox.Wait("wake 7 5 "));  // after all the garbage, still serving
  EXPECT_EQ(b->metrics.dropped.Value(), static_cast<double>(garbage.size() + 1));
  // A well-formed message from a process that is not a node is still only a hint.
  backend_.redis().Command({"PUBLISH", "u:7", R"({"v":1,"t":"w","o":"abc","s":"6"})"});
  EXPECT_TRUE(b->inbox.Wait("wake 7 6 "));
  // And the frame of its own seq passes.
  backend_.redis().Command(
      {"PUBLISH", "u:7",
       R"({"v":1,"t":"w","o":"abc","s":"8","f":"{\"op\":\"event\",\"seq\":\"8\",\"event\":{}}"})"});
  EXPECT_TRUE(b->inbox.Wait(R"(wake 7 8 {"op":"event","seq":"8","event":{}})"));
  EXPECT_TRUE(b->bus->connected());
}

TEST_F(RedisBus, AWakeWithoutAPublishTimeIsStillAWake) {
  auto b = Started("b");
  ASSERT_TRUE(SubscribeAndWait(*b->bus, 7));
  backend_.redis().Command({"PUBLISH", "u:7", R"({"v":1,"t":"w","o":"ab","s":"6"})"});
  EXPECT_TRUE(b->inbox.Wait("wake 7 6 "));
  EXPECT_EQ(b->metrics.wake_latency.Count(), 0u);
}

TEST_F(RedisBus, SweepsTheRegistrationsOfADeadNodeAndReportsWhoWentOffline) {
  // A node that died 10 s ago with users 42 (only there) and 43 (also on a
  // live node) registered; its entries have not expired yet.
  auto& r = backend_.redis();
  const std::string dead = "00000000deadbeef";
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string later = std::to_string(now + 30000);
  r.Command({"ZADD", "nodes", std::to_string(now - 10000), dead});
  r.Command({"SADD", "nd:" + dead, "42 7/" + dead + "/gone", "43 8/" + dead + "/gone"});
  r.Command({"ZADD", "pr:42", later, "7/" + dead + "/gone"});
  r.Command({"ZADD", "pr:43", later, "8/" + dead + "/gone"});
  r.Command({"ZADD", "pr:43", later, "9/00000000a11ce000/alive"});
  auto a = Started("a");
  auto b = Started("b");
  // One of the live nodes sweeps it (heartbeat 200 ms, node_ttl 3 s here),
  // and only that one reports the transition, to its own handler.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool reported = false;
  while (!reported && std::chrono::steady_clock::now() < deadline) {
    reported = a->inbox.HasPrefix("presence 42 0 ") || b->inbox.HasPrefix("presence 42 0 ");
    if (!reported) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(reported);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(a->inbox.HasPrefix("presence 42 0 ") && b->inbox.HasPrefix("presence 42 0 "));
  EXPECT_FALSE(a->inbox.HasPrefix("presence 43 0 ") || b->inbox.HasPrefix("presence 43 0 "));
  EXPECT_EQ(r.Command({"EXISTS", "pr:42"}), ":0\r\n");
  EXPECT_EQ(r.Command({"ZCARD", "pr:43"}), ":1\r\n");
  EXPECT_EQ(r.Command({"EXISTS", "nd:" + dead}), ":0\r\n");
}

TEST_F(RedisBus, TakesOverTheIdOfADeadNode) {
  // A holder whose process is gone: its key is there, nobody listens on its ping channel.
  backend_.redis().Command({"SET", "nid:n9", "0123456789abcdef", "PX", "60000"});
  auto a = Started("n9");
  Answer<Status> claim;
  a->bus->ClaimNode(10000, claim.Callback());
  auto got = claim.Get(15s);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->has_value()) << got->error().message;
  EXPECT_EQ(backend_.redis().Command({"GET", "nid:n9"}), "$16\r\n" + a->bus->instance() + "\r\n");
}

TEST_F(RedisBus, StartsWithoutRedisAndConnectsWhenItComes) {
  backend_.redis().Kill();
  auto n = backend_.MakeNode("late");
  n->Start();
  Answer<Status> claim;
  n->bus->ClaimNode(300, claim.Callback());
  auto got = claim.Get();
  ASSERT_TRUE(got);
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(got->error().code, Errc::kUnavailable);
  EXPECT_FALSE(n->bus->connected());
  ASSERT_TRUE(backend_.redis().Start());
  EXPECT_TRUE(n->inbox.Wait("state up"));
  EXPECT_TRUE(n->inbox.Wait("resubscribed"));
  EXPECT_TRUE(n->bus->connected());
  // The claim was made once Redis was there.
  bool claimed = false;
  for (int i = 0; i < 50 && !claimed; ++i) {
    claimed =
        backend_.redis().Command({"GET", "nid:late"}) == "$16\r\n" + n->bus->instance() + "\r\n";
    if (!claimed) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(claimed);
}

// A Redis that is slow but answering is not a Redis that is gone (issue
// 13: a connect storm made every node drop its command connection, "no
// reply within 2000 ms", and answer /ready 503). Another client keeps Redis
// busy with 30 ms scripts, so each of its event-loop turns takes a bite of
// the node's deep queue of registrations: the oldest waits far past the
// command timeout, yet replies keep coming. The node stays connected and
// every registration is answered.
TEST_F(RedisBus, ASlowButAnsweringRedisIsNotGone) {
  std::atomic<int> ok{0}, failed{0};  // outlive the node, whose callbacks count
  auto o = TestRedisOptions(backend_.redis().url(), "slow");
  o.command_timeout = 300ms;
  Node n;
  n.bus = MakeRedisBus(o, n.executor.executor(), &n.metrics);
  n.Start();
  ASSERT_TRUE(n.inbox.Wait("state up"));
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    const std::string spin =
        "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] repeat "
        "local u = redis.call('TIME') until u[1] * 1000000 + u[2] - s >= 30000 return 1";
    while (!stop.load()) backend_.redis().Command({"EVAL", spin, "0"});
  });
  std::this_thread::sleep_for(100ms);
  constexpr int kRegistrations = 6000;
  for (int i = 1; i <= kRegistrations; ++i) {
    n.bus->Register(static_cast<UserId>(1000 + i), 1, [&](Result<bool> r) { ++(r ? ok : failed); });
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ok + failed < kRegistrations && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  busy.join();
  EXPECT_EQ(ok.load(), kRegistrations);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_FALSE(n.inbox.Has("state down"));
  EXPECT_TRUE(n.bus->connected());
}

// ...while a Redis that answers nothing (hung: SIGSTOP) is gone, and the
// node says so; it is back by itself once Redis runs again.
TEST_F(RedisBus, AHungRedisIsGone) {
  auto n = Started("hung");
  ASSERT_EQ(::kill(backend_.redis().pid(), SIGSTOP), 0);
  Answer<Result<bool>> reg;
  n->bus->Register(5, 1, reg.Callback());
  EXPECT_TRUE(n->inbox.Wait("state down", 5s));
  ASSERT_EQ(::kill(backend_.redis().pid(), SIGCONT), 0);
  EXPECT_TRUE(n->inbox.Wait("state up"));
  EXPECT_TRUE(n->bus->connected());
}

TEST(RedisUrl, ParsesHostAndPort) {
  auto o = ParseRedisUrl("redis://10.0.0.5:6380");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->host, "10.0.0.5");
  EXPECT_EQ(o->port, "6380");
  auto d = ParseRedisUrl("redis://cache");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, "6379");
  auto v6 = ParseRedisUrl("redis://[::1]:7000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"none", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x",
                          "http://h:1", "redis://u@h:1"}) {
    EXPECT_FALSE(ParseRedisUrl(bad)) << bad;
  }
}

TEST(NodeIds, AreShortSafeNames) {
  EXPECT_TRUE(ValidNodeId("n1"));
  EXPECT_TRUE(ValidNodeId(GenerateNodeId()));
  EXPECT_FALSE(ValidNodeId(""));
  EXPECT_FALSE(ValidNodeId("a/b"));
  EXPECT_FALSE(ValidNodeId(std::string(65, 'a')));
  EXPECT_NE(NewInstanceId(), NewInstanceId());
}

}  // namespace
}  // namespace parley::bus
