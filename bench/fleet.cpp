#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>

#include "scenario.hpp"

namespace parley::bench {

struct Fleet::LoopOpen {
  std::deque<std::size_t> pending;
  int inflight = 0;
  int limit = 1;
  Clock::time_point deadline{};
  Histogram connect;
  Histogram hello;
  Histogram total;
  std::map<std::string, std::uint64_t> errors;
  std::atomic<std::size_t> ok{0};
  std::atomic<std::size_t> failed{0};
};

Fleet::Fleet(WorkerContext& ctx, int threads, std::size_t capacity)
    : ctx_(ctx), sessions_(capacity), account_of_(capacity, 0), state_(capacity, 0) {
  const int n = std::max(1, threads);
  for (int i = 0; i < n; ++i) {
    loops_.push_back(std::make_unique<Loop>());
    open_.push_back(std::make_unique<LoopOpen>());
    loops_.back()->Start();
  }
}

Fleet::~Fleet() {
  StopLoops();
  // Sessions go before their loops' io_contexts.
  sessions_.clear();
  loops_.clear();
}

void Fleet::StopLoops() {
  for (auto& l : loops_) l->Stop();
}

void Fleet::OnEachLoop(const std::function<void(int)>& fn) {
  for (int i = 0; i < loops(); ++i) loops_[static_cast<std::size_t>(i)]->Call([&fn, i] { fn(i); });
}

void Fleet::StartNext(int l) {
  LoopOpen& lo = *open_[static_cast<std::size_t>(l)];
  // Bounded by the pending queue.
  while (lo.inflight < lo.limit && !lo.pending.empty()) {
    const std::size_t id = lo.pending.front();
    lo.pending.pop_front();
    ++lo.inflight;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(lo.deadline - Clock::now());
    sessions_[id]->Start(
        std::clamp(left, std::chrono::milliseconds(100), std::chrono::milliseconds(30'000)));
  }
}

void Fleet::Reconnect(std::size_t i, int node, std::uint64_t resume_after,
                      std::chrono::milliseconds timeout) {
  // The closed session may still be running its own callback: it keeps
  // itself alive through it, so replacing it here is safe.
  state_[i] = 4;
  // What the last connection received above its watermark is not counted
  // twice when the next one sends it again.
  std::vector<std::uint64_t> seen =
      sessions_[i] ? sessions_[i]->seen_above() : std::vector<std::uint64_t>();
  sessions_[i] =
      Session::Create(loop(loop_of(i)), ctx_.accounts[account_of_[i]],
                      static_cast<std::uint32_t>(i), this, node, resume_after, std::move(seen));
  sessions_[i]->Start(timeout);
}

void Fleet::OnHello(Session& s, bool ok, std::string_view error) {
  if (state_[s.id()] == 4) {
    state_[s.id()] = ok ? 1 : 3;
    if (ok) open_now_.fetch_add(1, std::memory_order_relaxed);
    return OnReconnected(s, ok, error);
  }
  const int l = loop_of(s.id());
  LoopOpen& lo = *open_[static_cast<std::size_t>(l)];
  --lo.inflight;
  if (ok) {
    state_[s.id()] = 1;
    open_now_.fetch_add(1, std::memory_order_relaxed);
    lo.connect.Record(s.upgraded_at - s.started_at);
    lo.hello.Record(s.ready_at - s.hello_at);
    lo.total.Record(s.ready_at - s.started_at);
    lo.ok.fetch_add(1, std::memory_order_relaxed);
    OnSessionReady(s);
  } else {
    state_[s.id()] = 2;
    ++lo.errors[std::string(error)];
    lo.failed.fetch_add(1, std::memory_order_relaxed);
  }
  StartNext(l);
}

void Fleet::OnClosed(Session& s, std::string_view why) {
  state_[s.id()] = 3;
  open_now_.fetch_sub(1, std::memory_order_relaxed);
  OnSessionClosed(s, why);
}

Fleet::OpenStats Fleet::Open(const std::vector<std::size_t>& accounts, Clock::time_point deadline,
                             const std::function<void(std::size_t, std::size_t)>& tick) {
  const auto t0 = Clock::now();
  const std::size_t first = count_;
  if (first + accounts.size() > sessions_.size()) throw std::logic_error("Fleet capacity");
  std::vector<std::vector<std::size_t>> per_loop(loops_.size());
  for (std::size_t k = 0; k < accounts.size(); ++k) {
    const std::size_t id = first + k;
    const int l = loop_of(id);
    sessions_[id] =
        Session::Create(loop(l), ctx_.accounts[accounts[k]], static_cast<std::uint32_t>(id), this);
    account_of_[id] = accounts[k];
    per_loop[static_cast<std::size_t>(l)].push_back(id);
  }
  count_ = first + accounts.size();
  const int per_loop_limit =
      std::max(1, ctx_.opt.connect_concurrency / static_cast<int>(loops_.size()));
  for (int l = 0; l < loops(); ++l) {
    loop(l).Call([this, l, &per_loop, deadline, per_loop_limit] {
      LoopOpen& lo = *open_[static_cast<std::size_t>(l)];
      lo.connect.Clear();
      lo.hello.Clear();
      lo.total.Clear();
      lo.errors.clear();
      lo.ok = 0;
      lo.failed = 0;
      lo.deadline = deadline;
      lo.limit = per_loop_limit;
      for (auto id : per_loop[static_cast<std::size_t>(l)]) lo.pending.push_back(id);
      StartNext(l);
    });
  }
  auto answered = [&](std::size_t* ok, std::size_t* failed) {
    *ok = *failed = 0;
    for (auto& lo : open_) {
      *ok += lo->ok.load(std::memory_order_relaxed);
      *failed += lo->failed.load(std::memory_order_relaxed);
    }
    return *ok + *failed;
  };
  std::size_t ok = 0;
  std::size_t failed = 0;
  // Bounded by the deadline; sessions time out on their own before it.
  while (answered(&ok, &failed) < accounts.size() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (tick) tick(ok, failed);
  }
  OpenStats out;
  for (int l = 0; l < loops(); ++l) {
    loop(l).Call([&, l] {
      LoopOpen& lo = *open_[static_cast<std::size_t>(l)];
      // Whatever has not answered by the deadline is given up on.
      for (std::size_t id = first; id < count_; ++id) {
        if (loop_of(id) != l || state_[id] != 0) continue;
        sessions_[id]->Abort();
        state_[id] = 2;
        ++lo.errors["setup deadline"];
        lo.failed.fetch_add(1);
      }
      lo.pending.clear();
      lo.inflight = 0;
      out.connect.Merge(lo.connect);
      out.hello.Merge(lo.hello);
      out.total.Merge(lo.total);
      for (const auto& [k, v] : lo.errors) out.errors[k] += v;
    });
  }
  answered(&out.ok, &out.failed);
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

void AddOpenStats(Payload& p, const Fleet::OpenStats& s, const std::string& prefix) {
  p.counters[prefix + "ok"] = s.ok;
  p.counters[prefix + "failed"] = s.failed;
  p.max[prefix + "seconds"] = s.seconds;
  p.Hist(prefix + "connect", s.connect);
  p.Hist(prefix + "hello", s.hello);
  p.Hist(prefix + "total", s.total);
  p.Errors(s.errors);
}

}  // namespace parley::bench
