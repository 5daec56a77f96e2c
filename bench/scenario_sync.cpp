// sync: a device comes back to a backlog. User A sends --messages N to B
// while B is offline (pipelined, --window in flight, default 64); then B
// connects, and the clock runs from its hello until the N-th of those
// messages has arrived (B acks as it goes, as a real client would).
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <thread>

#include "driver.hpp"
#include "report.hpp"
#include "scenario.hpp"

namespace parley::bench {

namespace json = boost::json;

namespace {

std::int64_t ToNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point After(double s) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

constexpr std::size_t kA = 0;       // the sender
constexpr std::size_t kB = 1;       // the receiver, first visit: drains what it had
constexpr std::size_t kBAgain = 2;  // the receiver, coming back to the backlog

class SyncFleet final : public Fleet {
 public:
  SyncFleet(WorkerContext& ctx, std::uint64_t n)
      : Fleet(ctx, 1, 3),
        n_(n),
        seen_(n, false),
        window_(ctx.opt.window > 0 ? ctx.opt.window : 64) {}
  ~SyncFleet() override { StopLoops(); }

  void OnSessionReady(Session& s) override {
    if (s.id() == kB && s.head_seq == 0) s.Close();
  }
  void OnSessionClosed(Session& s, std::string_view) override {
    if (s.id() == kB) b_closed_ = true;
  }

  void OnEvent(Session& s, std::uint64_t seq, const json::object& e) override {
    if (s.id() == kB) {
      b_last_event_ns_.store(MonoNs(), std::memory_order_relaxed);
      // Close once the old backlog is in: Close acks it all first.
      if (seq >= s.head_seq) s.Close();
      return;
    }
    if (s.id() != kBAgain) return;
    const auto* type = e.if_contains("type");
    if (type == nullptr || !type->is_string() || type->as_string() != "message") return;
    const auto* body = e.if_contains("body");
    if (body == nullptr || !body->is_object()) return;
    const auto& b = body->as_object();
    const auto* r = b.if_contains("r");
    const auto* n = b.if_contains("n");
    if (r == nullptr || !r->is_string() || r->as_string() != ctx_.run_id || n == nullptr ||
        !n->is_number())
      return;
    const auto i = n->to_number<std::uint64_t>();
    if (i >= n_) return;
    const std::int64_t now = MonoNs();
    if (seen_[i]) {
      ++duplicates_;
      return;
    }
    seen_[i] = true;
    if (received_ == 0) first_ns_ = now;
    if (++received_ == n_) done_ns_ = now;
    received_now_.store(received_, std::memory_order_relaxed);
  }

  void OnAnswer(Session& s, std::string_view rid, const json::object&, bool ok,
                std::string_view code) override {
    if (s.id() != kA) return;
    std::int64_t t = 0;
    std::from_chars(rid.data(), rid.data() + rid.size(), t);
    if (ok) {
      ++ok_;
      ok_lat_.Record(std::chrono::nanoseconds(MonoNs() - t));
    } else {
      ++errors_["send: " + std::string(code)];
    }
    if (++answered_ == n_) send_done_ns_ = MonoNs();
    answered_now_.store(answered_, std::memory_order_relaxed);
    SendNext(s);
  }

  // On A's loop: the first window of sends; answers pull the rest.
  void StartSending() {
    send_start_ns_ = MonoNs();
    for (int k = 0; k < window_; ++k) SendNext(session(kA));
  }

  std::uint64_t answered() const { return answered_now_.load(std::memory_order_relaxed); }
  std::uint64_t received() const { return received_now_.load(std::memory_order_relaxed); }
  bool b_closed() const { return b_closed_.load(); }
  std::int64_t b_last_event_ns() const { return b_last_event_ns_.load(); }

  json::object Result(const Fleet::OpenStats& again) {
    Payload p;
    p.Count("messages", static_cast<double>(n_));
    p.Count("sent_ok", static_cast<double>(ok_));
    p.Count("received", static_cast<double>(received_));
    p.Count("duplicates", static_cast<double>(duplicates_));
    p.Hist("send_ok", ok_lat_);
    p.Errors(errors_);
    p.Errors(again.errors);
    const std::int64_t hello_ns = ToNs(session(kBAgain).hello_at);
    const std::int64_t connect_ns = ToNs(session(kBAgain).started_at);
    if (send_done_ns_ > 0) p.max["send_seconds"] = (send_done_ns_ - send_start_ns_) / 1e9;
    if (done_ns_ > 0 && again.ok == 1) {
      p.max["sync_seconds"] = (done_ns_ - hello_ns) / 1e9;
      p.max["sync_seconds_from_connect"] = (done_ns_ - connect_ns) / 1e9;
    }
    if (first_ns_ > 0 && again.ok == 1) p.max["first_event_ms"] = (first_ns_ - hello_ns) / 1e6;
    return p.Build();
  }

 private:
  void SendNext(Session& a) {
    if (next_ >= n_) return;
    const std::string ts = std::to_string(MonoNs());
    const std::string i = std::to_string(next_++);
    a.Send(R"({"op":"send","rid":")" + ts + R"(","to":{"user":")" +
           ctx_.accounts[account_of(kB)].user_id + R"("},"client_msg_id":")" + ctx_.run_id +
           "-sync-" + i + R"(","kind":"text","body":{"r":")" + ctx_.run_id + R"(","t":)" + ts +
           R"(,"n":)" + i + "}}");
  }

  std::uint64_t n_;
  std::vector<bool> seen_;
  int window_;
  std::uint64_t next_ = 0, answered_ = 0, ok_ = 0, received_ = 0, duplicates_ = 0;
  std::int64_t send_start_ns_ = 0, send_done_ns_ = 0, first_ns_ = 0, done_ns_ = 0;
  Histogram ok_lat_;
  std::map<std::string, std::uint64_t> errors_;
  std::atomic<std::uint64_t> answered_now_{0}, received_now_{0};
  std::atomic<bool> b_closed_{false};
  std::atomic<std::int64_t> b_last_event_ns_{0};
};

class Sync final : public Scenario {
 public:
  std::size_t Accounts(const Options&) const override { return 2; }
  std::size_t Sockets(const Options&) const override { return 3; }
  bool SingleProcess() const override { return true; }
  double Seconds(const Options& o) const override { return 120 + o.messages / 50.0; }
  std::string RateCounter() const override { return "received"; }
  std::string ProgressText(const Merged& m, double elapsed, double rate) const override {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%5.0fs  sent %.0f  received %.0f (%.0f/s)", elapsed,
                  m.Counter("sent_ok"), m.Counter("received"), rate);
    return buf;
  }

  int Worker(WorkerContext& ctx) override {
    const auto& opt = ctx.opt;
    const auto n = static_cast<std::uint64_t>(std::max(1, opt.messages));
    SyncFleet fleet(ctx, n);
    auto stats = fleet.Open({0, 1}, After(opt.setup_timeout_s));
    // B leaves once it has drained whatever it had: when it reaches the head
    // or when nothing has come for a second (its cursor was at the head).
    // Bounded: 60 s.
    const auto drain_deadline = After(60);
    const std::int64_t opened_ns = MonoNs();
    while (stats.ok == 2 && !fleet.b_closed() && Clock::now() < drain_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (MonoNs() - std::max(opened_ns, fleet.b_last_event_ns()) > 1'000'000'000) {
        fleet.loop(0).Call([&] { fleet.session(kB).Close(); });
      }
    }
    if (!fleet.b_closed()) fleet.loop(0).Call([&] { fleet.session(kB).Abort(); });
    if (stats.ok != 2) {
      Payload failed;
      AddOpenStats(failed, stats, "setup_");
      ctx.ReadyAndWait(failed.Build(), After(600));
      ctx.Result(Payload().Build());
      return 1;
    }
    Payload ready;
    AddOpenStats(ready, stats, "setup_");
    if (!ctx.ReadyAndWait(ready.Build(), After(600))) return 2;

    auto progress = [&] {
      ctx.MaybeProgress([&] {
        Payload p;
        p.Count("sent_ok", static_cast<double>(fleet.answered()));
        p.Count("received", static_cast<double>(fleet.received()));
        return p.Build();
      });
    };
    fleet.loop(0).Post([&] { fleet.StartSending(); });
    const auto send_deadline = After(60 + n / 50.0);
    while (fleet.answered() < n && Clock::now() < send_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      progress();
    }
    // A goes away too, so that B's catch-up competes with nothing else.
    fleet.loop(0).Call([&] { fleet.session(kA).Close(); });
    Fleet::OpenStats again;
    if (fleet.answered() == n) {
      again = fleet.Open({1}, After(30));
      const auto sync_deadline = After(60 + n / 100.0);
      while (fleet.received() < n && Clock::now() < sync_deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        progress();
      }
    }
    fleet.StopLoops();
    ctx.Result(fleet.Result(again));
    return 0;
  }

  void Summarize(const Options& o, const Merged& m, Driver&, json::object& out) override {
    out["messages"] = m.Counter("messages");
    out["window"] = o.window > 0 ? o.window : 64;
    out["sent_ok"] = m.Counter("sent_ok");
    const double send_s = m.Max("send_seconds");
    out["send_seconds"] = send_s;
    out["send_msgs_per_s"] = send_s > 0 ? m.Counter("sent_ok") / send_s : 0.0;
    out["send_latency"] = m.Hist("send_ok").Summary();
    out["received"] = m.Counter("received");
    out["duplicates"] = m.Counter("duplicates");
    const double sync_s = m.Max("sync_seconds");
    out["sync_seconds"] = sync_s;
    out["sync_seconds_from_connect"] = m.Max("sync_seconds_from_connect");
    out["sync_events_per_s"] = sync_s > 0 ? m.Counter("received") / sync_s : 0.0;
    out["first_event_ms"] = m.Max("first_event_ms");
    out["complete"] = m.Counter("received") == m.Counter("messages");
  }
};

}  // namespace

std::unique_ptr<Scenario> MakeSync() { return std::make_unique<Sync>(); }

}  // namespace parley::bench
