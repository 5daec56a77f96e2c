// fanout: one group of --members (default 256: the creator and 255 others),
// every member online; the creator (or, with --random-sender, random
// members) sends at --rate (default 100 messages/s). Figures: send -> ok
// (the server writes one mailbox entry per member before answering), send
// -> each member's event, and per message send -> the LAST member's event.
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "driver.hpp"
#include "report.hpp"
#include "scenario.hpp"

namespace parley::bench {

namespace json = boost::json;

namespace {

Clock::time_point FromNs(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

Clock::time_point After(double s) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

class FanoutFleet final : public Fleet {
 public:
  FanoutFleet(WorkerContext& ctx, std::size_t members)
      : Fleet(ctx, ctx.opt.threads, members), members_(members) {
    for (int l = 0; l < loops(); ++l) {
      per_loop_.push_back(std::make_unique<PerLoop>(loop(l)));
      per_loop_.back()->rng.seed((ctx.opt.seed ? ctx.opt.seed : std::random_device{}()) +
                                 static_cast<std::uint64_t>(l));
    }
  }
  ~FanoutFleet() override { StopLoops(); }

  // On the creator's loop.
  void CreateGroup() {
    json::array members;
    for (std::size_t i = 1; i < size(); ++i)
      members.push_back(json::value(ctx_.accounts[account_of(i)].user_id));
    json::object f;
    f["op"] = "group.create";
    f["rid"] = "create";
    f["name"] = "parley-bench " + ctx_.run_id;
    // PROTOCOL.md names the list `members`; parleyd (fc9b309) reads `users`.
    // Unknown fields are ignored, so sending both works with either.
    f["users"] = members;
    f["members"] = std::move(members);
    session(0).Send(json::serialize(f));
  }
  bool created() const { return created_.load(); }
  std::string create_error() const {
    std::lock_guard lock(mu_);
    return create_error_;
  }
  std::size_t group_events() const { return group_events_.load(); }

  void Go(std::int64_t start_ns) {
    const auto& opt = ctx_.opt;
    start_ns_ = start_ns;
    measure_ns_ = start_ns + static_cast<std::int64_t>(opt.warmup_s * 1e9);
    end_ns_ = measure_ns_ + static_cast<std::int64_t>(opt.duration_s * 1e9);
    const double rate = opt.rate_max ? 100.0 : opt.rate;
    for (int l = 0; l < loops(); ++l) {
      loop(l).Post([this, l, rate] {
        PerLoop& st = *per_loop_[static_cast<std::size_t>(l)];
        st.index = l;
        for (std::size_t i = static_cast<std::size_t>(l); i < size();
             i += static_cast<std::size_t>(loops())) {
          if (ctx_.opt.random_sender || i == 0) st.senders.push_back(static_cast<std::uint32_t>(i));
        }
        // Each loop schedules its senders' share of the rate.
        const double share = static_cast<double>(st.senders.size()) /
                             (ctx_.opt.random_sender ? static_cast<double>(size()) : 1.0);
        if (st.senders.empty() || rate * share <= 0) return;
        st.interval_ns = 1e9 / (rate * share);
        Schedule(st);
      });
    }
  }

  void Wait() {
    const auto drain_end = FromNs(end_ns_) + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(ctx_.opt.drain_s));
    // Bounded by drain_end.
    while (Clock::now() < drain_end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::int64_t last = 0;
      std::uint64_t inflight = 0, ok = 0;
      for (auto& st : per_loop_) {
        last = std::max(last, st->last_event_ns.load());
        inflight += st->inflight_now.load();
        ok += st->ok_now.load();
      }
      if (Clock::now() > FromNs(end_ns_) && inflight == 0 && MonoNs() - last > 500'000'000) break;
      ctx_.MaybeProgress([&] {
        Payload p;
        p.Count("sessions", static_cast<double>(open_count()));
        p.Count("ok", static_cast<double>(ok));
        return p.Build();
      });
    }
  }

  // After StopLoops.
  json::object Result() {
    Payload p;
    Histogram ok, member, last;
    std::unordered_map<std::uint64_t, Message> all;
    std::uint64_t sent = 0, oks = 0, failed = 0, deliveries = 0, skipped = 0, receipts = 0;
    for (auto& st : per_loop_) {
      ok.Merge(st->ok_lat);
      member.Merge(st->member_lat);
      sent += st->sent;
      oks += st->ok;
      failed += st->failed;
      skipped += st->skipped;
      deliveries += st->deliveries;
      receipts += st->receipts;
      p.Errors(st->errors);
      for (const auto& [n, m] : st->messages) {
        auto& a = all[n];
        a.count += m.count;
        a.max_ns = std::max(a.max_ns, m.max_ns);
      }
    }
    const std::uint64_t recipients = members_ - 1;
    std::uint64_t complete = 0;
    for (const auto& [n, m] : all) {
      if (m.count < recipients) continue;
      ++complete;
      last.Record(std::chrono::nanoseconds(m.max_ns));
    }
    p.Count("sent", static_cast<double>(sent));
    p.Count("ok", static_cast<double>(oks));
    p.Count("failed", static_cast<double>(failed));
    p.Count("skipped", static_cast<double>(skipped));
    p.Count("member_deliveries", static_cast<double>(deliveries));
    p.Count("messages_seen", static_cast<double>(all.size()));
    p.Count("messages_complete", static_cast<double>(complete));
    p.Count("receipts", static_cast<double>(receipts));
    p.Hist("ok", ok);
    p.Hist("member", member);
    p.Hist("last_member", last);
    return p.Build();
  }

  void OnAnswer(Session& s, std::string_view rid, const json::object& frame, bool ok,
                std::string_view code) override {
    if (rid == "create") {
      std::lock_guard lock(mu_);
      if (ok) {
        const auto* g = frame.if_contains("group_id");
        if (g && g->is_string()) group_id_ = std::string(g->as_string());
      } else {
        const auto* msg = frame.if_contains("message");
        create_error_ = "group.create: " + std::string(code.empty() ? "error" : code) +
                        (msg && msg->is_string() ? " (" + std::string(msg->as_string()) + ")" : "");
      }
      created_ = true;
      return;
    }
    std::int64_t t = 0;
    const auto r = std::from_chars(rid.data(), rid.data() + rid.size(), t);
    if (r.ec != std::errc()) return;
    PerLoop& st = *per_loop_[static_cast<std::size_t>(loop_of(s.id()))];
    st.inflight_now.store(--st.inflight);
    if (t < measure_ns_ || t >= end_ns_) return;
    if (ok) {
      ++st.ok;
      st.ok_now.fetch_add(1);
      st.ok_lat.Record(std::chrono::nanoseconds(MonoNs() - t));
    } else {
      ++st.failed;
      ++st.errors["send: " + std::string(code)];
    }
  }

  void OnEvent(Session& s, std::uint64_t, const json::object& e) override {
    PerLoop& st = *per_loop_[static_cast<std::size_t>(loop_of(s.id()))];
    const auto* type = e.if_contains("type");
    if (type == nullptr || !type->is_string()) return;
    if (type->as_string() == "group") {
      group_events_.fetch_add(1);
      return;
    }
    if (type->as_string() == "receipt") {
      ++st.receipts;
      return;
    }
    if (type->as_string() != "message") return;
    if (const auto* out = e.if_contains("outgoing"); out && out->is_bool() && out->as_bool())
      return;
    const auto* body = e.if_contains("body");
    if (body == nullptr || !body->is_object()) return;
    const auto& b = body->as_object();
    const auto* r = b.if_contains("r");
    const auto* t = b.if_contains("t");
    const auto* n = b.if_contains("n");
    if (!r || !r->is_string() || r->as_string() != ctx_.run_id || !t || !t->is_number() || !n ||
        !n->is_number())
      return;
    const std::int64_t now = MonoNs();
    st.last_event_ns.store(now);
    const auto sent = t->to_number<std::int64_t>();
    if (sent < measure_ns_ || sent >= end_ns_) return;
    const std::int64_t lat = now - sent;
    ++st.deliveries;
    st.member_lat.Record(std::chrono::nanoseconds(lat));
    auto& m = st.messages[n->to_number<std::uint64_t>()];
    ++m.count;
    m.max_ns = std::max(m.max_ns, lat);
  }

 private:
  struct Message {
    std::uint64_t count = 0;
    std::int64_t max_ns = 0;
  };
  struct PerLoop {
    explicit PerLoop(Loop& l) : timer(l) {}
    Timer timer;
    int index = 0;
    std::vector<std::uint32_t> senders;
    double interval_ns = 0;
    std::uint64_t scheduled = 0;
    std::mt19937_64 rng;
    std::uint64_t inflight = 0, sent = 0, ok = 0, failed = 0, skipped = 0, deliveries = 0,
                  receipts = 0;
    Histogram ok_lat, member_lat;
    std::unordered_map<std::uint64_t, Message> messages;  // by n, for this loop's members
    std::map<std::string, std::uint64_t> errors;
    std::atomic<std::uint64_t> inflight_now{0}, ok_now{0};
    std::atomic<std::int64_t> last_event_ns{0};
  };

  void Schedule(PerLoop& st) {
    const std::int64_t now = MonoNs();
    for (int burst = 0; burst < 1000; ++burst) {
      const auto due =
          start_ns_ + static_cast<std::int64_t>(static_cast<double>(st.scheduled) * st.interval_ns);
      if (due >= end_ns_) return;
      if (due > now) return st.timer.At(FromNs(due), [this, &st] { Schedule(st); });
      const std::uint64_t n = st.scheduled++ * static_cast<std::uint64_t>(loops()) +
                              static_cast<std::uint64_t>(st.index);
      Session& s = session(st.senders[st.rng() % st.senders.size()]);
      const bool measured = due >= measure_ns_;
      if (!s.open() || st.inflight > 100'000) {
        if (measured) ++st.skipped;
        continue;
      }
      const std::string ts = std::to_string(due);
      s.Send(R"({"op":"send","rid":")" + ts + R"(","to":{"group":")" + group_id_ +
             R"("},"client_msg_id":")" + ctx_.run_id + "-g-" + std::to_string(n) +
             R"(","kind":"text","body":{"r":")" + ctx_.run_id + R"(","t":)" + ts + R"(,"n":)" +
             std::to_string(n) + "}}");
      st.inflight_now.store(++st.inflight);
      if (measured) ++st.sent;
    }
    st.timer.At(Clock::now(), [this, &st] { Schedule(st); });
  }

  std::size_t members_;
  std::vector<std::unique_ptr<PerLoop>> per_loop_;
  std::int64_t start_ns_ = 0, measure_ns_ = 0, end_ns_ = 0;
  mutable std::mutex mu_;
  std::string group_id_;  // written once, before Go
  std::string create_error_;
  std::atomic<bool> created_{false};
  std::atomic<std::size_t> group_events_{0};
};

class Fanout final : public Scenario {
 public:
  std::size_t Accounts(const Options& o) const override {
    return static_cast<std::size_t>(std::max(2, o.members));
  }
  std::size_t Sockets(const Options& o) const override { return Accounts(o); }
  bool SingleProcess() const override { return true; }
  double Seconds(const Options& o) const override {
    return o.warmup_s + o.duration_s + o.drain_s + 60;
  }

  int Worker(WorkerContext& ctx) override {
    const auto& opt = ctx.opt;
    const std::size_t members = Accounts(opt);
    FanoutFleet fleet(ctx, members);
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < members; ++i) idx.push_back(i);
    auto stats = fleet.Open(idx, After(opt.setup_timeout_s));
    Payload ready;
    AddOpenStats(ready, stats, "setup_");
    std::string error;
    if (stats.ok != members) {
      error = "only " + std::to_string(stats.ok) + " of " + std::to_string(members) +
              " members connected";
    } else {
      fleet.loop(fleet.loop_of(0)).Post([&] { fleet.CreateGroup(); });
      const auto deadline = After(30);
      while (!fleet.created() && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      error = fleet.created() ? fleet.create_error() : "group.create: no answer in 30 s";
      // Every member hears of the group before the clock starts (bounded: 30 s).
      const auto events_deadline = After(30);
      while (error.empty() && fleet.group_events() + 1 < members &&
             Clock::now() < events_deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    const auto start = ctx.ReadyAndWait(ready.Build(), After(600));
    if (!start) return 2;
    if (!error.empty()) {
      Payload p;
      p.errors[error] = 1;
      p.info["error"] = error;
      fleet.StopLoops();
      ctx.Result(p.Build());
      return 1;
    }
    fleet.Go(*start);
    fleet.Wait();
    fleet.StopLoops();
    auto result = fleet.Result();
    result["counters"].as_object()["group_events_seen"] = fleet.group_events();
    ctx.Result(result);
    return 0;
  }

  void Summarize(const Options& o, const Merged& m, Driver&, json::object& out) override {
    if (const auto* e = m.info.if_contains("error")) out["error"] = *e;
    const double d = o.duration_s;
    out["members"] = Accounts(o);
    out["target_rate"] = o.rate_max ? 100.0 : o.rate;
    out["sender"] = o.random_sender ? "random members" : "creator";
    for (const char* k : {"sent", "ok", "failed", "skipped", "member_deliveries", "messages_seen",
                          "messages_complete", "receipts", "group_events_seen"}) {
      out[k] = m.Counter(k);
    }
    out["ok_per_s"] = m.Counter("ok") / d;
    out["member_deliveries_per_s"] = m.Counter("member_deliveries") / d;
    out["latency_send_to_ok"] = m.Hist("ok").Summary();
    out["latency_send_to_member"] = m.Hist("member").Summary();
    out["latency_send_to_last_member"] = m.Hist("last_member").Summary();
  }
};

}  // namespace

std::unique_ptr<Scenario> MakeFanout() { return std::make_unique<Fanout>(); }

}  // namespace parley::bench
