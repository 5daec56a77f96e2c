// Micro-benchmarks (Google Benchmark) for the hot paths of a message: the
// frame parse, the event render (once per message, then one splice per
// mailbox for a fan-out), and the mailbox append through the store's
// group-committing writer (fsync on, as parleyd runs it). docs/benchmarks.md
// has the figures; `make bench-micro` runs them.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "common/ids.hpp"
#include "core/session/render.hpp"
#include "proto/json.hpp"
#include "store/rocksdb/rocksdb_store.hpp"

namespace {

using namespace parley;  // NOLINT(google-build-using-namespace): a benchmark file

const std::string kSendFrame =
    R"({"op":"send","rid":"r-123","to":{"user":"7312648711311577089"},)"
    R"("client_msg_id":"c-5f1e0c2a-9a8b-4d9e-8f6e-0123456789ab","kind":"text",)"
    R"("body":{"text":"Hello there, this is a message of about one hundred bytes, like a chat line."}})";

void BM_ParseSendFrame(benchmark::State& state) {
  for (auto _ : state) {
    auto obj = proto::ParseObject(kSendFrame);
    if (!obj) state.SkipWithError("parse failed");
    auto op = proto::GetString(*obj, "op");
    auto cmid = proto::GetString(*obj, "client_msg_id");
    auto to = proto::GetObject(*obj, "to");
    benchmark::DoNotOptimize(op);
    benchmark::DoNotOptimize(cmid);
    benchmark::DoNotOptimize(to);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kSendFrame.size()));
}
BENCHMARK(BM_ParseSendFrame);

store::MailboxEvent SampleEvent(bool group) {
  auto m = std::make_shared<store::Message>();
  m->msg_id = 7312648711311577100ULL;
  m->sender = 7312648711311577089ULL;
  m->sender_device = 2;
  m->to = group ? store::Conversation{store::Conversation::Kind::kGroup, 7312648711311577000ULL}
                : store::Conversation{store::Conversation::Kind::kUser, 7312648711311577090ULL};
  m->client_msg_id = "c-5f1e0c2a-9a8b-4d9e-8f6e-0123456789ab";
  m->kind = "text";
  m->body =
      R"({"text":"Hello there, this is a message of about one hundred bytes, like a chat line."})";
  m->ts_ms = 1795000000000;
  store::MailboxEvent e;
  e.seq = 12345;
  e.type = store::EventType::kMessage;
  e.ts_ms = m->ts_ms;
  e.msg_id = m->msg_id;
  e.message = m;
  return e;
}

void BM_RenderEventFrame(benchmark::State& state) {
  const auto e = SampleEvent(false);
  for (auto _ : state) {
    auto frame = core::EventFrame(e, 7312648711311577090ULL, 1);
    benchmark::DoNotOptimize(frame);
  }
}
BENCHMARK(BM_RenderEventFrame);

// A group message to `members` mailboxes: one render, then one seq splice each.
void BM_FanoutRender(benchmark::State& state) {
  const auto members = static_cast<int>(state.range(0));
  const auto e = SampleEvent(true);
  for (auto _ : state) {
    const auto body = core::EventBody(e, 7312648711311577090ULL, 1);
    for (int i = 0; i < members; ++i) {
      auto frame = core::WrapEvent(static_cast<store::Seq>(1000 + i), body);
      benchmark::DoNotOptimize(frame);
    }
  }
  state.SetItemsProcessed(state.iterations() * members);
}
BENCHMARK(BM_FanoutRender)->Arg(255);

// The store, opened on a fresh directory on the real disk (fsync on).
class StoreFixture {
 public:
  StoreFixture() {
    dir_ = std::filesystem::temp_directory_path() /
           ("parley-micro-" + std::to_string(std::random_device{}()));
    store::RocksOptions options;
    options.path = dir_.string();
    auto opened = store::OpenRocksStore(options);
    if (!opened) std::abort();
    store_ = std::move(*opened);
  }
  ~StoreFixture() {
    store_->Close();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  store::Store& store() { return *store_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

// Waits for `n` callbacks.
class Latch {
 public:
  explicit Latch(std::size_t n) : left_(n) {}
  void CountDown() {
    std::lock_guard lock(mu_);
    if (--left_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t left_;
};

store::Message NewMessage(IdGenerator& ids, store::UserId from, store::Conversation to,
                          std::uint64_t n) {
  store::Message m;
  m.msg_id = ids.Next();
  m.sender = from;
  m.sender_device = 1;
  m.to = to;
  m.client_msg_id = "c-" + std::to_string(n);
  m.kind = "text";
  m.body =
      R"({"text":"Hello there, this is a message of about one hundred bytes, like a chat line."})";
  m.ts_ms = 1795000000000;
  return m;
}

// 1:1 appends with `range(0)` in flight: what the writer sustains when that
// many sends wait for the same group commit.
void BM_AppendMessage1to1(benchmark::State& state) {
  const auto in_flight = static_cast<std::size_t>(state.range(0));
  StoreFixture fx;
  IdGenerator ids(1);
  std::uint64_t n = 0;
  std::atomic<std::size_t> failed{0};
  for (auto _ : state) {
    Latch latch(in_flight);
    for (std::size_t i = 0; i < in_flight; ++i) {
      const store::UserId from = 1000 + (n % 1000);
      const store::UserId to = 1000 + ((n * 7 + 1) % 1000);
      fx.store().AppendMessage(NewMessage(ids, from, {store::Conversation::Kind::kUser, to}, n++),
                               {to}, [&](Result<store::SendResult> r) {
                                 if (!r) failed.fetch_add(1);
                                 latch.CountDown();
                               });
    }
    latch.Wait();
  }
  if (failed.load() != 0) state.SkipWithError("append failed");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in_flight));
}
BENCHMARK(BM_AppendMessage1to1)->Arg(1)->Arg(64)->Arg(256)->UseRealTime();

// A message to a 256-member group: fan-out on write (255 mailbox rows).
void BM_AppendGroupMessage(benchmark::State& state) {
  const auto in_flight = static_cast<std::size_t>(state.range(0));
  StoreFixture fx;
  IdGenerator ids(1);
  store::GroupChange create;
  create.kind = store::GroupChange::Kind::kCreate;
  create.group_id = ids.Next();
  create.actor = 5000;
  for (store::UserId u = 5001; u < 5256; ++u) create.users.push_back(u);
  create.name = "bench";
  create.now_ms = 1795000000000;
  create.payload = R"({"type":"group"})";
  {
    Latch latch(1);
    bool ok = false;
    fx.store().ChangeGroup(create, [&](Result<store::GroupChangeResult> r) {
      ok = r && r->outcome == store::GroupChangeResult::Outcome::kOk;
      latch.CountDown();
    });
    latch.Wait();
    if (!ok) {
      state.SkipWithError("group create failed");
      return;
    }
  }
  std::uint64_t n = 0;
  std::atomic<std::size_t> failed{0};
  for (auto _ : state) {
    Latch latch(in_flight);
    for (std::size_t i = 0; i < in_flight; ++i) {
      fx.store().AppendMessage(
          NewMessage(ids, 5000, {store::Conversation::Kind::kGroup, create.group_id}, n++), {},
          [&](Result<store::SendResult> r) {
            if (!r) failed.fetch_add(1);
            latch.CountDown();
          });
    }
    latch.Wait();
  }
  if (failed.load() != 0) state.SkipWithError("append failed");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in_flight));
  state.counters["mailbox_rows_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * in_flight * 255), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AppendGroupMessage)->Arg(1)->Arg(16)->UseRealTime();

// Signs `n` users up (ids 1000 + i, one device each) through the store.
std::vector<store::UserId> SignUpUsers(store::Store& s, std::size_t n) {
  std::vector<store::UserId> users;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string phone = "+1555" + std::to_string(1000000 + i);
    Latch put(1);
    s.PutOtp({.phone = phone, .code_hash = "h", .expires_ms = 4000000000000},
             [&](Status) { put.CountDown(); });
    put.Wait();
    store::SignInRequest req;
    req.phone = phone;
    req.phone_hash = "p" + std::to_string(i);
    req.code_hash = "h";
    req.new_user_id = 1000 + i;
    req.now_ms = 1795000000000;
    req.device.id = 1;
    req.device.name = "bench";
    req.refresh.hash = "t" + std::to_string(i);
    req.refresh.expires_ms = 4000000000000;
    Latch in(1);
    bool ok = false;
    s.SignIn(std::move(req), [&](Result<store::SignInResult> r) {
      ok = r && r->outcome == store::SignInResult::Outcome::kOk;
      in.CountDown();
    });
    in.Wait();
    if (!ok) return {};
    users.push_back(1000 + i);
  }
  return users;
}

// What the store does for one delivered 1:1 message in the `chat` scenario:
// the send, the recipient's ack (which writes the delivered receipt and
// appends a receipt event to the sender), and the sender's ack of that
// event. `range(0)` messages per round, each step group-committed.
void BM_SendAckRound(benchmark::State& state) {
  const auto in_flight = static_cast<std::size_t>(state.range(0));
  StoreFixture fx;
  const auto users = SignUpUsers(fx.store(), 1000);
  if (users.size() != 1000) {
    state.SkipWithError("sign-up failed");
    return;
  }
  IdGenerator ids(1);
  std::mt19937_64 rng(7);
  std::uint64_t n = 0;
  std::atomic<std::size_t> failed{0};
  auto ack_heads = [&](const std::vector<store::UserId>& who) {
    Latch latch(who.size());
    for (store::UserId u : who) {
      auto head = fx.store().HeadSeq(u);
      if (!head) failed.fetch_add(1);
      fx.store().Ack(u, 1, head ? *head : 0, 1795000000000, [&](Result<store::AckResult> r) {
        if (!r) failed.fetch_add(1);
        latch.CountDown();
      });
    }
    latch.Wait();
  };
  for (auto _ : state) {
    std::vector<store::UserId> senders, recipients;
    Latch sent(in_flight);
    for (std::size_t i = 0; i < in_flight; ++i) {
      // Distinct users within a round, as `chat` with a window of one.
      const store::UserId from = users[(2 * i) % users.size()];
      const store::UserId to = users[(2 * i + 1 + 2 * (rng() % 400)) % users.size()];
      senders.push_back(from);
      recipients.push_back(to);
      fx.store().AppendMessage(NewMessage(ids, from, {store::Conversation::Kind::kUser, to}, n++),
                               {to}, [&](Result<store::SendResult> r) {
                                 if (!r) failed.fetch_add(1);
                                 sent.CountDown();
                               });
    }
    sent.Wait();
    ack_heads(recipients);
    ack_heads(senders);
  }
  if (failed.load() != 0) state.SkipWithError("a send or an ack failed");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(in_flight));
}
BENCHMARK(BM_SendAckRound)->Arg(64)->Arg(256)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
