// connect: open N authenticated sessions, hold them, and see what they cost
// the server (RSS and descriptors from /metrics, before and while held).
// storm: new sessions per second (TCP, upgrade, hello with its token check,
// close), open-loop at --rate or as fast as a window of --window allows.
#include <boost/json.hpp>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "driver.hpp"
#include "report.hpp"
#include "scenario.hpp"

namespace parley::bench {

namespace json = boost::json;

namespace {

std::vector<std::size_t> ShareIndices(const WorkerInfo& share) {
  std::vector<std::size_t> v;
  for (std::size_t i = share.begin; i < share.end; ++i) v.push_back(i);
  return v;
}

Clock::time_point FromNs(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

// ---- connect ----

class ConnectFleet final : public Fleet {
 public:
  using Fleet::Fleet;
  void OnSessionClosed(Session&, std::string_view why) override {
    std::lock_guard lock(mu_);
    ++closed_[std::string("closed during hold: ") + std::string(why)];
  }
  std::map<std::string, std::uint64_t> Closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::uint64_t> closed_;
};

class Connect final : public Scenario {
 public:
  std::size_t Accounts(const Options& o) const override { return UsersOr(o, 1000); }
  std::size_t Sockets(const Options& o) const override { return UsersOr(o, 1000); }
  double Seconds(const Options& o) const override { return o.hold_s + 30; }
  std::string RateCounter() const override { return "sessions"; }

  int Worker(WorkerContext& ctx) override {
    const auto& opt = ctx.opt;
    ConnectFleet fleet(ctx, opt.threads, ctx.share.end - ctx.share.begin);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(opt.setup_timeout_s));
    auto stats = fleet.Open(ShareIndices(ctx.share), deadline, [&](std::size_t ok, std::size_t f) {
      ctx.MaybeProgress([&] {
        Payload p;
        p.Count("sessions", static_cast<double>(ok));
        p.Count("failed", static_cast<double>(f));
        return p.Build();
      });
    });
    Payload ready;
    AddOpenStats(ready, stats, "setup_");
    // Held until the parent has measured the server (hold + scrapes).
    const auto go = ctx.ReadyAndWait(
        ready.Build(), Clock::now() + std::chrono::seconds(static_cast<long>(opt.hold_s) + 600));
    Payload result;
    result.Count("opened", static_cast<double>(stats.ok));
    result.Count("held", static_cast<double>(fleet.open_count()));
    result.Count("failed", static_cast<double>(stats.failed));
    result.Errors(fleet.Closed());
    fleet.StopLoops();
    ctx.Result(result.Build());
    return go ? 0 : 2;
  }

  void AfterReady(const Options& opt, Driver& d) override {
    d.Hold(opt.hold_s, "hold");
    d.Scrape("held");
  }

  void Summarize(const Options&, const Merged& m, Driver& d, json::object& out) override {
    const auto before = d.Metrics("before");
    const auto held = d.Metrics("held");
    const double n = m.Counter("held");
    out["sessions_opened"] = m.Counter("opened");
    out["sessions_failed"] = m.Counter("failed");
    out["sessions_held_at_end"] = n;
    out["sessions_per_process"] = d.procs() > 0 ? m.Counter("opened") / d.procs() : 0.0;
    if (before.ok && held.ok) {
      out["server_rss_before_bytes"] = before.rss_bytes;
      out["server_rss_held_bytes"] = held.rss_bytes;
      out["server_fds_before"] = before.open_fds;
      out["server_fds_held"] = held.open_fds;
      if (n > 0) {
        out["server_rss_per_session_bytes"] = (held.rss_bytes - before.rss_bytes) / n;
        out["server_fds_per_session"] = (held.open_fds - before.open_fds) / n;
      }
    }
    const auto after = d.Metrics("after");
    if (after.ok) out["server_rss_after_close_bytes"] = after.rss_bytes;
  }
};

// ---- storm ----

class Storm final : public Scenario, public SessionListener {
 public:
  std::size_t Accounts(const Options& o) const override { return UsersOr(o, 500); }
  std::size_t Sockets(const Options& o) const override {
    return static_cast<std::size_t>(std::max(o.rate_max ? Window(o) : 1024, 64));
  }
  double Seconds(const Options& o) const override { return o.warmup_s + o.duration_s + 30; }
  std::string RateCounter() const override { return "ok"; }

  int Worker(WorkerContext& ctx) override {
    ctx_ = &ctx;
    const auto& opt = ctx.opt;
    const int nloops = std::max(1, opt.threads);
    for (int l = 0; l < nloops; ++l) {
      loops_.push_back(std::make_unique<Loop>());
      loops_.back()->Start();
      state_.push_back(std::make_unique<PerLoop>(*loops_.back()));
      for (std::size_t a = ctx.share.begin + static_cast<std::size_t>(l); a < ctx.share.end;
           a += static_cast<std::size_t>(nloops)) {
        state_.back()->accounts.push_back(a);
      }
    }
    Payload ready;
    ready.counters["setup_ok"] = 0;
    const auto start = ctx.ReadyAndWait(ready.Build(), Clock::now() + std::chrono::hours(1));
    if (!start) return 2;
    start_ns_ = *start;
    measure_ns_ = start_ns_ + static_cast<std::int64_t>(opt.warmup_s * 1e9);
    end_ns_ = measure_ns_ + static_cast<std::int64_t>(opt.duration_s * 1e9);
    const double per_loop_rate = opt.rate / ctx.share.count / nloops;
    const int per_loop_window = std::max(1, Window(opt) / ctx.share.count / nloops);
    for (int l = 0; l < nloops; ++l) {
      loops_[static_cast<std::size_t>(l)]->Post([this, l, per_loop_rate, per_loop_window] {
        PerLoop& st = *state_[static_cast<std::size_t>(l)];
        st.index = l;
        st.window = per_loop_window;
        if (ctx_->opt.rate_max) {
          for (int k = 0; k < per_loop_window; ++k) Launch(st, start_ns_);
        } else if (per_loop_rate > 0) {
          st.interval_ns = 1e9 / per_loop_rate;
          Schedule(st);
        }
      });
    }
    // Run, then let what is in flight finish (bounded by --drain).
    const auto drain_end = FromNs(end_ns_) + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(opt.drain_s));
    while (Clock::now() < drain_end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::size_t inflight = 0;
      std::uint64_t ok = 0;
      for (auto& st : state_) {
        inflight += st->inflight_now.load(std::memory_order_relaxed);
        ok += st->ok_now.load(std::memory_order_relaxed);
      }
      if (Clock::now() > FromNs(end_ns_) && inflight == 0) break;
      ctx.MaybeProgress([&] {
        Payload p;
        p.Count("sessions", static_cast<double>(inflight));
        p.Count("ok", static_cast<double>(ok));
        return p.Build();
      });
    }
    for (auto& l : loops_) l->Stop();
    Payload result;
    std::uint64_t attempted = 0, ok = 0, failed = 0, skipped = 0, unfinished = 0;
    Histogram session, hello, connect;
    for (auto& st : state_) {
      attempted += st->attempted;
      ok += st->ok;
      failed += st->failed;
      skipped += st->skipped;
      unfinished += st->live.size();
      session.Merge(st->session);
      hello.Merge(st->hello);
      connect.Merge(st->connect);
      result.Errors(st->errors);
    }
    result.Count("attempted", static_cast<double>(attempted));
    result.Count("ok", static_cast<double>(ok));
    result.Count("failed", static_cast<double>(failed));
    result.Count("skipped", static_cast<double>(skipped));
    result.Count("unfinished", static_cast<double>(unfinished));
    result.Hist("session", session);
    result.Hist("hello", hello);
    result.Hist("connect", connect);
    ctx.Result(result.Build());
    return 0;
  }

  void OnHello(Session& s, bool ok, std::string_view error) override {
    PerLoop& st = *state_[s.id() % state_.size()];
    const bool measured = s.tag >= measure_ns_ && s.tag < end_ns_;
    if (!ok) {
      if (measured) {
        ++st.failed;
        ++st.errors[std::string(error)];
      }
      return Finish(st, s);
    }
    if (measured) {
      ++st.ok;
      st.ok_now.fetch_add(1, std::memory_order_relaxed);
      st.session.Record(std::chrono::nanoseconds(MonoNs() - s.tag));
      st.hello.Record(s.ready_at - s.hello_at);
      st.connect.Record(s.upgraded_at - s.started_at);
    }
    s.Close();
  }

  void OnClosed(Session& s, std::string_view why) override {
    PerLoop& st = *state_[s.id() % state_.size()];
    if (why != "closed 1000" && s.tag >= measure_ns_ && s.tag < end_ns_) {
      ++st.errors["close: " + std::string(why)];
    }
    Finish(st, s);
  }

  void Summarize(const Options& o, const Merged& m, Driver&, json::object& out) override {
    out["attempted"] = m.Counter("attempted");
    out["sessions_ok"] = m.Counter("ok");
    out["sessions_failed"] = m.Counter("failed");
    out["skipped_overload"] = m.Counter("skipped");
    out["unfinished_at_end"] = m.Counter("unfinished");
    out["target_rate"] = o.rate_max ? json::value("max") : json::value(o.rate);
    out["sessions_per_s"] = m.Counter("ok") / o.duration_s;
    out["session_latency"] = m.Hist("session").Summary();
    out["hello_latency"] = m.Hist("hello").Summary();
    out["connect_latency"] = m.Hist("connect").Summary();
  }

 private:
  struct PerLoop {
    explicit PerLoop(Loop& l) : loop(l), timer(l) {}
    Loop& loop;
    Timer timer;
    int index = 0;
    int window = 1;
    double interval_ns = 0;
    std::uint64_t scheduled = 0;
    std::vector<std::size_t> accounts;
    std::size_t next_account = 0;
    std::uint32_t next_id = 0;
    std::unordered_map<std::uint32_t, std::shared_ptr<Session>> live;
    std::uint64_t attempted = 0, ok = 0, failed = 0, skipped = 0;
    std::atomic<std::size_t> inflight_now{0};
    std::atomic<std::uint64_t> ok_now{0};
    Histogram session, hello, connect;
    std::map<std::string, std::uint64_t> errors;
  };

  static int Window(const Options& o) { return o.window > 0 ? o.window : 64; }

  void Schedule(PerLoop& st) {
    const std::int64_t now = MonoNs();
    int burst = 0;
    // Open loop: everything due is started now, timed from when it was due.
    while (burst < 1000) {
      const auto due = start_ns_ + static_cast<std::int64_t>(st.scheduled * st.interval_ns);
      if (due >= end_ns_) return;
      if (due > now) return st.timer.At(FromNs(due), [this, &st] { Schedule(st); });
      ++st.scheduled;
      ++burst;
      Launch(st, due);
    }
    st.timer.At(Clock::now(), [this, &st] { Schedule(st); });
  }

  void Launch(PerLoop& st, std::int64_t due_ns) {
    if (st.accounts.empty()) return;
    const bool measured = due_ns >= measure_ns_ && due_ns < end_ns_;
    if (st.live.size() >= 4096) {
      if (measured) ++st.skipped;  // reported: the server is not keeping up
      return;
    }
    if (measured) ++st.attempted;
    const std::size_t a = st.accounts[st.next_account++ % st.accounts.size()];
    const std::uint32_t id = st.next_id++ * static_cast<std::uint32_t>(state_.size()) +
                             static_cast<std::uint32_t>(st.index);
    auto s = Session::Create(st.loop, ctx_->accounts[a], id, this);
    s->tag = due_ns;
    st.live.emplace(id, s);
    st.inflight_now.store(st.live.size(), std::memory_order_relaxed);
    s->Start(std::chrono::seconds(10));
  }

  void Finish(PerLoop& st, Session& s) {
    st.live.erase(s.id());
    st.inflight_now.store(st.live.size(), std::memory_order_relaxed);
    if (ctx_->opt.rate_max && MonoNs() < end_ns_) Launch(st, MonoNs());
  }

  WorkerContext* ctx_ = nullptr;
  std::int64_t start_ns_ = 0, measure_ns_ = 0, end_ns_ = 0;
  // Loops first: members go in reverse order, so the per-loop state (its
  // timers and sessions) is destroyed before the io_contexts it lives on.
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<PerLoop>> state_;

 public:
  ~Storm() override {
    for (auto& l : loops_) l->Stop();
  }
};

}  // namespace

std::unique_ptr<Scenario> MakeConnect() { return std::make_unique<Connect>(); }
std::unique_ptr<Scenario> MakeStorm() { return std::make_unique<Storm>(); }

}  // namespace parley::bench
