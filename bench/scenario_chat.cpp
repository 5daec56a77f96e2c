// chat: N online users send 1:1 messages to random online peers, open-loop
// at a fixed total rate (latency counted from each message's scheduled send
// time, so a stalled server cannot hide its stall: no coordinated omission)
// or, with --rate max, closed-loop with --window sends in flight per user.
// Recipients ack (batched); senders count the delivered receipts. A body
// carries its scheduled time on the steady clock, which every process on
// this machine shares, so the recipient times send -> delivery itself.
//
// With several --url the body also carries the sender's node, so the
// recipient splits its figure into cross-node and same-node deliveries.
// scale (a cluster run) is chat with two more phases: the sessions are held
// and the server measured before the traffic (--hold, --at-ready), and after
// it one node is SIGKILLed (--kill-pid) and its clients reconnect to the
// others, hello with resume_after, timed from the kill.
#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <mutex>
#include <random>
#include <thread>

#include "driver.hpp"
#include "report.hpp"
#include "scale.hpp"
#include "scenario.hpp"

namespace parley::bench {

namespace json = boost::json;

namespace {

// The most sends one loop keeps unanswered before it starts skipping (and
// says so): memory stays bounded when the server falls far behind.
constexpr std::uint64_t kMaxInflightPerLoop = 200'000;

Clock::time_point FromNs(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

std::int64_t ParseI64(std::string_view s, bool* ok) {
  std::int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  *ok = r.ec == std::errc() && r.ptr == s.data() + s.size();
  return v;
}

// A reconnecting client's delay before its next try: 100 ms, doubling, at most 1 s.
constexpr std::int64_t kRetryFirstNs = 100'000'000;
constexpr std::int64_t kRetryMaxNs = 1'000'000'000;

class ChatFleet final : public Fleet {
 public:
  ChatFleet(WorkerContext& ctx, std::size_t capacity, bool scale)
      : Fleet(ctx, ctx.opt.threads, capacity),
        session_inflight_(capacity, 0),
        scale_(scale),
        nodes_(TargetNodes()),
        closed_ns_(scale ? capacity : 0, 0),
        tries_(scale ? capacity : 0, 0),
        lost_node_(scale ? capacity : 0, 0),
        back_(scale ? capacity : 0, 0) {
    for (int l = 0; l < loops(); ++l) {
      per_loop_.push_back(std::make_unique<PerLoop>(loop(l)));
      per_loop_.back()->index = l;
      per_loop_.back()->rng.seed((ctx.opt.seed ? ctx.opt.seed : std::random_device{}()) +
                                 static_cast<std::uint64_t>(ctx.share.index * 1000 + l));
    }
    window_ = ctx.opt.window > 0 ? ctx.opt.window : 8;
    if (ctx.opt.body_bytes > 0) pad_.assign(static_cast<std::size_t>(ctx.opt.body_bytes), 'x');
  }
  ~ChatFleet() override { StopLoops(); }

  void Go(std::int64_t start_ns) {
    const auto& opt = ctx_.opt;
    start_ns_ = start_ns;
    measure_ns_ = start_ns + static_cast<std::int64_t>(opt.warmup_s * 1e9);
    end_ns_ = measure_ns_ + static_cast<std::int64_t>(opt.duration_s * 1e9);
    kill_ns_ = end_ns_ + static_cast<std::int64_t>(opt.drain_s * 1e9);
    const double total_users = static_cast<double>(ctx_.accounts.size());
    for (int l = 0; l < loops(); ++l) {
      loop(l).Post([this, l, total_users] {
        PerLoop& st = *per_loop_[static_cast<std::size_t>(l)];
        for (std::size_t i = static_cast<std::size_t>(l); i < size();
             i += static_cast<std::size_t>(loops())) {
          if (session(i).open()) st.senders.push_back(static_cast<std::uint32_t>(i));
        }
        if (ctx_.opt.rate_max) {
          for (auto id : st.senders) {
            for (int k = 0; k < window_; ++k) SendFrom(st, session(id), MonoNs());
          }
          return;
        }
        // This loop's share of the total rate, in proportion to its senders.
        const double rate = ctx_.opt.rate * static_cast<double>(st.senders.size()) / total_users;
        if (rate <= 0) return;
        st.interval_ns = 1e9 / rate;
        Schedule(st);
      });
    }
  }

  // Waits for the run and the drain; sends progress meanwhile.
  void Wait() {
    const auto end = FromNs(end_ns_);
    const auto drain_end = end + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(ctx_.opt.drain_s));
    // Bounded by drain_end.
    while (Clock::now() < drain_end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::uint64_t inflight = 0;
      std::int64_t last_event = 0;
      for (auto& st : per_loop_) {
        inflight += st->inflight_now.load(std::memory_order_relaxed);
        last_event = std::max(last_event, st->last_event_ns.load(std::memory_order_relaxed));
      }
      // Done once every send is answered and deliveries have gone quiet.
      if (Clock::now() > end && inflight == 0 && MonoNs() - last_event > 500'000'000) break;
      ctx_.MaybeProgress([&] { return ProgressPayload(); });
    }
  }

  // scale with --kill-pid: waits for the parent's word that the node is
  // killed, then until every session that closed since is back (or
  // --kill-wait has passed).
  void AwaitKill() {
    const auto give_up =
        FromNs(kill_ns_) + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(ctx_.opt.kill_wait_s + 10));
    auto msg = ctx_.link.Receive(give_up);
    const auto* at = msg ? msg->if_contains("at_ns") : nullptr;
    killed_at_ns_ = at != nullptr && at->is_number() ? at->to_number<std::int64_t>() : 0;
    if (killed_at_ns_ <= 0) return;
    const std::int64_t limit =
        killed_at_ns_ + static_cast<std::int64_t>(ctx_.opt.kill_wait_s * 1e9);
    give_up_ns_.store(limit, std::memory_order_relaxed);
    // Bounded by `limit`. Closes come soon after the kill; wait for them to
    // stop for a second before counting who is not back.
    while (MonoNs() < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::int64_t pending = 0, last_close = 0;
      for (auto& st : per_loop_) {
        pending += st->pending_now.load(std::memory_order_relaxed);
        last_close = std::max(last_close, st->last_close_ns.load(std::memory_order_relaxed));
      }
      const std::int64_t now = MonoNs();
      // At least one close seen since the kill: every worker holds clients of
      // every node, and a loaded loop may see its closes late.
      if (pending == 0 && last_close >= killed_at_ns_ && now - killed_at_ns_ > 2'000'000'000 &&
          now - last_close > 1'000'000'000) {
        break;
      }
      ctx_.MaybeProgress([&] { return ProgressPayload(); });
    }
  }

  json::object Result() {
    Payload p;
    std::map<std::string, double> c;
    Histogram ok, deliver, cross, same;
    for (auto& st : per_loop_) {
      c["sent"] += static_cast<double>(st->sent);
      c["ok"] += static_cast<double>(st->ok);
      c["failed"] += static_cast<double>(st->failed);
      c["unanswered"] += static_cast<double>(st->inflight);
      c["delivered"] += static_cast<double>(st->delivered);
      c["skipped"] += static_cast<double>(st->skipped);
      c["warmup_sent"] += static_cast<double>(st->warmup_sent);
      c["receipts_delivered"] += static_cast<double>(st->receipts_delivered);
      c["receipts_read"] += static_cast<double>(st->receipts_read);
      c["receipt_events"] += static_cast<double>(st->receipt_events);
      c["sessions_closed"] += static_cast<double>(st->closed);
      c["delivered_cross_node"] += static_cast<double>(st->cross_lat.count());
      c["delivered_same_node"] += static_cast<double>(st->same_lat.count());
      ok.Merge(st->ok_lat);
      deliver.Merge(st->deliver_lat);
      cross.Merge(st->cross_lat);
      same.Merge(st->same_lat);
      p.Errors(st->errors);
    }
    for (const auto& [k, v] : c) p.Count(k, v);
    p.Hist("ok", ok);
    p.Hist("deliver", deliver);
    if (nodes_ > 1) {
      p.Hist("deliver_cross", cross);
      p.Hist("deliver_same", same);
    }
    if (scale_) AddKillFigures(p);
    return p.Build();
  }

  void OnAnswer(Session& s, std::string_view rid, const json::object& frame, bool ok,
                std::string_view code) override {
    bool numeric = false;
    const std::int64_t t = ParseI64(rid, &numeric);
    if (!numeric) return;
    PerLoop& st = *per_loop_[static_cast<std::size_t>(loop_of(s.id()))];
    --st.inflight;
    st.inflight_now.store(st.inflight, std::memory_order_relaxed);
    --session_inflight_[s.id()];
    const std::int64_t now = MonoNs();
    // The progress line counts warm-up answers too, so it moves from the start.
    if (ok) st.ok_now.fetch_add(1, std::memory_order_relaxed);
    if (t >= measure_ns_ && t < end_ns_) {
      if (ok) {
        ++st.ok;
        st.ok_lat.Record(std::chrono::nanoseconds(now - t));
      } else {
        ++st.failed;
        ++st.errors[std::string(code.empty() ? "error" : code)];
      }
    }
    (void)frame;
    if (ctx_.opt.rate_max && now < end_ns_) SendFrom(st, s, now);
  }

  void OnEvent(Session& s, std::uint64_t, const json::object& e) override {
    PerLoop& st = *per_loop_[static_cast<std::size_t>(loop_of(s.id()))];
    const auto* type = e.if_contains("type");
    if (type == nullptr || !type->is_string()) return;
    const std::int64_t now = MonoNs();
    if (type->as_string() == "message") {
      if (const auto* out = e.if_contains("outgoing"); out && out->is_bool() && out->as_bool()) {
        return;
      }
      const auto* body = e.if_contains("body");
      if (body == nullptr || !body->is_object()) return;
      const auto* r = body->as_object().if_contains("r");
      const auto* t = body->as_object().if_contains("t");
      if (r == nullptr || !r->is_string() || r->as_string() != ctx_.run_id || t == nullptr ||
          !t->is_number())
        return;  // not this run's (an old backlog)
      const auto sent = t->to_number<std::int64_t>();
      st.last_event_ns.store(now, std::memory_order_relaxed);
      if (sent < measure_ns_ || sent >= end_ns_) return;
      ++st.delivered;
      st.delivered_now.fetch_add(1, std::memory_order_relaxed);
      if (const auto* n = body->as_object().if_contains("n"); n != nullptr && n->is_number()) {
        auto& h = n->to_number<int>() == s.node ? st.same_lat : st.cross_lat;
        h.Record(std::chrono::nanoseconds(now - sent));
      }
      std::lock_guard lock(st.progress_mu);
      st.deliver_lat.Record(std::chrono::nanoseconds(now - sent));
    } else if (type->as_string() == "receipt") {
      const auto* ids = e.if_contains("msg_ids");
      const auto* status = e.if_contains("status");
      const std::uint64_t n = ids && ids->is_array() ? ids->as_array().size() : 1;
      ++st.receipt_events;
      if (status && status->is_string() && status->as_string() == "read") {
        st.receipts_read += n;
      } else {
        st.receipts_delivered += n;
      }
    }
  }

  void OnSessionClosed(Session& s, std::string_view why) override {
    PerLoop& st = *per_loop_[static_cast<std::size_t>(loop_of(s.id()))];
    const std::int64_t now = MonoNs();
    // In scale, a close from the kill on is what is measured, not an error.
    if (!scale_ || ctx_.opt.kill_pid == 0 || kill_ns_ == 0 || now < kill_ns_) {
      ++st.closed;
      ++st.errors["session closed: " + std::string(why)];
    }
    // Its unanswered sends will never be answered: stop waiting for them.
    st.inflight -= session_inflight_[s.id()];
    session_inflight_[s.id()] = 0;
    st.inflight_now.store(st.inflight, std::memory_order_relaxed);
    if (!scale_) return;
    // Like a real client: reconnect at once to another node, resuming
    // after the last event seen.
    const std::size_t id = s.id();
    if (closed_ns_[id] == 0 || back_[id] != 0) {
      closed_ns_[id] = now;
      back_[id] = 0;
      tries_[id] = 0;
      lost_node_[id] = s.node;
      ++st.pending;
      st.pending_now.store(st.pending, std::memory_order_relaxed);
    }
    st.last_close_ns.store(now, std::memory_order_relaxed);
    const std::uint64_t resume = s.highest_seq();
    const int node = OtherNode(lost_node_[id], id, 0);
    loop(loop_of(id)).Post([this, id, node, resume] { StartReconnect(id, node, resume); });
  }

  void OnReconnected(Session& s, bool ok, std::string_view error) override {
    PerLoop& st = *per_loop_[static_cast<std::size_t>(loop_of(s.id()))];
    const std::size_t id = s.id();
    const std::int64_t now = MonoNs();
    if (ok) {
      back_[id] = now;
      --st.pending;
      st.pending_now.store(st.pending, std::memory_order_relaxed);
      if (closed_ns_[id] >= kill_ns_) st.moves.push_back({closed_ns_[id], now, tries_[id] + 1});
      return;
    }
    ++st.reconnect_failed;
    ++st.reconnect_errors["reconnect: " + std::string(error)];
    const std::int64_t give_up = give_up_ns_.load(std::memory_order_relaxed);
    if (give_up > 0 && now >= give_up) return;  // counted as not back
    ++tries_[id];
    const std::int64_t delay = std::min(kRetryMaxNs, kRetryFirstNs << std::min(tries_[id], 10));
    st.retry.push_back({now + delay, static_cast<std::uint32_t>(id), s.highest_seq(),
                        OtherNode(lost_node_[id], id, tries_[id])});
    ArmRetry(st);
  }

 private:
  struct Retry {
    std::int64_t due_ns;
    std::uint32_t id;
    std::uint64_t resume;
    int node;
  };
  struct Move {
    std::int64_t closed_ns, back_ns;
    int tries;
  };

  struct PerLoop {
    explicit PerLoop(Loop& l) : timer(l), retry_timer(l) {}
    Timer timer;
    Timer retry_timer;
    std::vector<Retry> retry;
    std::vector<Move> moves;   // sessions closed after the kill, once back
    std::int64_t pending = 0;  // closed and not back yet
    std::uint64_t reconnect_failed = 0;
    std::map<std::string, std::uint64_t> reconnect_errors;
    Histogram cross_lat, same_lat;  // read only once the loops are stopped
    std::atomic<std::int64_t> pending_now{0}, last_close_ns{0};
    int index = 0;
    std::vector<std::uint32_t> senders;
    std::size_t rr = 0;
    double interval_ns = 0;
    std::uint64_t scheduled = 0;
    std::uint64_t next_msg = 0;
    std::mt19937_64 rng;
    std::uint64_t inflight = 0;
    std::uint64_t sent = 0, ok = 0, failed = 0, delivered = 0, skipped = 0, warmup_sent = 0;
    // receipts_*: msg_ids in receipts; receipt_events: the receipt events carrying them.
    std::uint64_t receipts_delivered = 0, receipts_read = 0, receipt_events = 0, closed = 0;
    Histogram ok_lat;
    Histogram deliver_lat;  // under progress_mu (the progress snapshot reads it)
    std::mutex progress_mu;
    std::map<std::string, std::uint64_t> errors;
    std::atomic<std::uint64_t> inflight_now{0}, ok_now{0}, delivered_now{0}, sent_now{0};
    std::atomic<std::int64_t> last_event_ns{0};
  };

  json::object ProgressPayload() {
    Payload p;
    double ok = 0, delivered = 0, sent = 0;
    Histogram h;
    for (auto& st : per_loop_) {
      ok += static_cast<double>(st->ok_now.load(std::memory_order_relaxed));
      delivered += static_cast<double>(st->delivered_now.load(std::memory_order_relaxed));
      sent += static_cast<double>(st->sent_now.load(std::memory_order_relaxed));
      std::lock_guard lock(st->progress_mu);
      h.Merge(st->deliver_lat);
    }
    p.Count("sessions", static_cast<double>(open_count()));
    p.Count("sent", sent);
    p.Count("ok", ok);
    p.Count("delivered", delivered);
    p.Hist("progress", h);
    return p.Build();
  }

  void Schedule(PerLoop& st) {
    const std::int64_t now = MonoNs();
    // Open loop: whatever is due goes now, timed from when it was due. A
    // burst is capped so that reads are not starved; the rest follows at once.
    for (int burst = 0; burst < 2000; ++burst) {
      const auto due =
          start_ns_ + static_cast<std::int64_t>(static_cast<double>(st.scheduled) * st.interval_ns);
      if (due >= end_ns_) return;
      if (due > now) return st.timer.At(FromNs(due), [this, &st] { Schedule(st); });
      ++st.scheduled;
      Session* s = NextSender(st);
      if (s == nullptr) {
        if (due >= measure_ns_) ++st.skipped;
        continue;
      }
      SendFrom(st, *s, due);
    }
    st.timer.At(Clock::now(), [this, &st] { Schedule(st); });
  }

  Session* NextSender(PerLoop& st) {
    // Bounded: one pass over the loop's senders.
    for (std::size_t k = 0; k < st.senders.size(); ++k) {
      Session& s = session(st.senders[st.rr++ % st.senders.size()]);
      if (s.open()) return &s;
    }
    return nullptr;
  }

  void SendFrom(PerLoop& st, Session& s, std::int64_t t) {
    const bool measured = t >= measure_ns_ && t < end_ns_;
    if (!s.open() || st.inflight >= kMaxInflightPerLoop || s.queued() > 10'000) {
      if (measured) ++st.skipped;
      return;
    }
    const std::size_t n = ctx_.accounts.size();
    const std::size_t self = account_of(s.id());
    std::size_t peer = static_cast<std::size_t>(st.rng() % (n - 1));
    if (peer >= self) ++peer;
    const std::string ts = std::to_string(t);
    std::string f;
    f.reserve(224 + pad_.size());
    f += R"({"op":"send","rid":")";
    f += ts;
    f += R"(","to":{"user":")";
    f += ctx_.accounts[peer].user_id;
    f += R"("},"client_msg_id":")";
    f += ctx_.run_id;
    f += '-';
    f += std::to_string(ctx_.share.index);
    f += '-';
    f += std::to_string(st.index);
    f += '-';
    f += std::to_string(st.next_msg++);
    f += R"(","kind":"text","body":{"r":")";
    f += ctx_.run_id;
    f += R"(","t":)";
    f += ts;
    if (nodes_ > 1) {
      f += R"(,"n":)";
      f += std::to_string(s.node);
    }
    if (!pad_.empty()) {
      f += R"(,"p":")";
      f += pad_;
      f += '"';
    }
    f += "}}";
    s.Send(std::move(f));
    ++st.inflight;
    st.inflight_now.store(st.inflight, std::memory_order_relaxed);
    ++session_inflight_[s.id()];
    if (measured) {
      ++st.sent;
      st.sent_now.fetch_add(1, std::memory_order_relaxed);
    } else if (t < measure_ns_) {
      ++st.warmup_sent;
    }
  }

  // The k-th node a client of `node` tries after losing it: never `node`
  // itself, and spread (by session) over the others, so that one dead
  // node's clients do not all land on the next one.
  int OtherNode(int node, std::size_t id, int k) const {
    if (nodes_ <= 1) return node;
    const auto spread = static_cast<int>(
        (account_of(id) / static_cast<std::size_t>(nodes_) + static_cast<std::size_t>(k)) %
        static_cast<std::size_t>(nodes_ - 1));
    return (node + 1 + spread) % nodes_;
  }

  void StartReconnect(std::size_t id, int node, std::uint64_t resume) {
    Reconnect(id, node, resume, std::chrono::seconds(10));
  }

  // (Re)arms the loop's retry timer for its earliest due retry.
  void ArmRetry(PerLoop& st) {
    if (st.retry.empty()) return st.retry_timer.Cancel();
    std::int64_t first = st.retry.front().due_ns;
    for (const auto& r : st.retry) first = std::min(first, r.due_ns);
    st.retry_timer.At(FromNs(first), [this, &st] {
      const std::int64_t now = MonoNs();
      std::vector<Retry> due;
      std::erase_if(st.retry, [&](const Retry& r) {
        if (r.due_ns > now) return false;
        due.push_back(r);
        return true;
      });
      for (const auto& r : due) StartReconnect(r.id, r.node, r.resume);
      ArmRetry(st);
    });
  }

  // After the loops have stopped: who moved, and how long they took.
  void AddKillFigures(Payload& p) {
    Histogram back, reconnect, closed;
    double moved = 0, tries = 0, failed = 0;
    std::int64_t pending = 0;
    for (auto& st : per_loop_) {
      for (const auto& m : st->moves) {
        if (killed_at_ns_ <= 0) break;
        ++moved;
        tries += m.tries;
        back.Record(std::chrono::nanoseconds(m.back_ns - killed_at_ns_));
        reconnect.Record(std::chrono::nanoseconds(m.back_ns - m.closed_ns));
        closed.Record(
            std::chrono::nanoseconds(std::max<std::int64_t>(0, m.closed_ns - killed_at_ns_)));
      }
      pending += st->pending;
      failed += static_cast<double>(st->reconnect_failed);
      p.Errors(st->reconnect_errors);
    }
    p.Count("kill_moved", moved + static_cast<double>(pending));
    p.Count("kill_back", moved);
    p.Count("kill_not_back", static_cast<double>(pending));
    p.Count("kill_reconnect_tries", tries);
    p.Count("kill_reconnect_failed", failed);
    p.Hist("kill_back", back);
    p.Hist("kill_reconnect", reconnect);
    p.Hist("kill_closed", closed);
  }

  std::vector<std::unique_ptr<PerLoop>> per_loop_;
  std::vector<std::uint32_t> session_inflight_;
  bool scale_ = false;
  int nodes_ = 1;
  // scale, per session (its loop's thread only): when it closed, reconnect
  // tries so far, the node it lost, when it was back (0: not yet).
  std::vector<std::int64_t> closed_ns_;
  std::vector<int> tries_;
  std::vector<int> lost_node_;
  std::vector<std::int64_t> back_;
  std::int64_t kill_ns_ = 0;       // when the parent kills (planned: end + drain)
  std::int64_t killed_at_ns_ = 0;  // when it did (0: it did not)
  std::atomic<std::int64_t> give_up_ns_{0};
  int window_ = 8;
  std::string pad_;
  std::int64_t start_ns_ = 0, measure_ns_ = 0, end_ns_ = 0;
};

class Chat final : public Scenario {
 public:
  explicit Chat(bool scale) : scale_(scale) {}
  std::size_t Accounts(const Options& o) const override { return UsersOr(o, 1000); }
  std::size_t Sockets(const Options& o) const override { return UsersOr(o, 1000); }
  double Seconds(const Options& o) const override {
    const double chat = o.warmup_s + o.duration_s + o.drain_s + 30;
    return scale_ ? chat + o.hold_s + o.kill_wait_s + 10 : chat;
  }
  std::string ProgressText(const Merged& m, double elapsed, double rate) const override {
    std::string s = Scenario::ProgressText(m, elapsed, rate);
    return s + "  delivered " + std::to_string(static_cast<long>(m.Counter("delivered")));
  }

  int Worker(WorkerContext& ctx) override {
    const auto& opt = ctx.opt;
    ChatFleet fleet(ctx, ctx.share.end - ctx.share.begin, scale_);
    std::vector<std::size_t> idx;
    for (std::size_t i = ctx.share.begin; i < ctx.share.end; ++i) idx.push_back(i);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(opt.setup_timeout_s));
    auto stats = fleet.Open(idx, deadline, [&](std::size_t ok, std::size_t) {
      ctx.MaybeProgress([&] {
        Payload p;
        p.Count("sessions", static_cast<double>(ok));
        return p.Build();
      });
    });
    Payload ready;
    AddOpenStats(ready, stats, "setup_");
    if (scale_) {
      // Where the sessions landed (the parent divides each node's memory by it).
      std::vector<double> per_node(static_cast<std::size_t>(TargetNodes()), 0.0);
      fleet.OnEachLoop([&](int l) {
        for (std::size_t i = static_cast<std::size_t>(l); i < fleet.size();
             i += static_cast<std::size_t>(fleet.loops())) {
          if (fleet.session(i).open()) ++per_node[static_cast<std::size_t>(fleet.session(i).node)];
        }
      });
      for (std::size_t n = 0; n < per_node.size(); ++n) {
        ready.Count("node_sessions_" + std::to_string(n), per_node[n]);
      }
    }
    const auto start = ctx.ReadyAndWait(
        ready.Build(), Clock::now() + std::chrono::seconds(static_cast<long>(opt.setup_timeout_s) +
                                                           120 + static_cast<long>(opt.hold_s)));
    if (!start) return 2;
    fleet.Go(*start);
    fleet.Wait();
    if (scale_ && opt.kill_pid != 0) fleet.AwaitKill();
    fleet.StopLoops();
    ctx.Result(fleet.Result());
    return 0;
  }

  void AfterReady(const Options& o, Driver& d) override {
    if (scale_) scale_parent_.AfterReady(o, d);
  }
  void DuringRun(const Options& o, Driver& d) override {
    if (scale_) scale_parent_.DuringRun(o, d);
  }

  void Summarize(const Options& o, const Merged& m, Driver& d, json::object& out) override {
    const double dur = o.duration_s;
    out["target_rate"] = o.rate_max ? json::value("max") : json::value(o.rate);
    if (o.rate_max) out["window_per_user"] = o.window > 0 ? o.window : 8;
    out["users"] = UsersOr(o, 1000);
    out["measured_seconds"] = dur;
    for (const char* k :
         {"sent", "ok", "failed", "unanswered", "delivered", "skipped", "receipts_delivered",
          "receipts_read", "receipt_events", "sessions_closed"}) {
      out[k] = m.Counter(k);
    }
    out["sent_per_s"] = m.Counter("sent") / dur;
    out["ok_per_s"] = m.Counter("ok") / dur;
    out["delivered_per_s"] = m.Counter("delivered") / dur;
    out["delivered_of_ok"] = m.Counter("ok") > 0 ? m.Counter("delivered") / m.Counter("ok") : 0.0;
    out["latency_send_to_ok"] = m.Hist("ok").Summary();
    out["latency_send_to_delivered"] = m.Hist("deliver").Summary();
    if (o.nodes.size() > 1) {
      out["nodes"] = o.nodes.size();
      out["delivered_cross_node"] = m.Counter("delivered_cross_node");
      out["delivered_same_node"] = m.Counter("delivered_same_node");
      out["latency_send_to_delivered_cross_node"] = m.Hist("deliver_cross").Summary();
      out["latency_send_to_delivered_same_node"] = m.Hist("deliver_same").Summary();
    }
    if (scale_) scale_parent_.Summarize(o, m, d, out);
  }

 private:
  bool scale_;
  ScaleParent scale_parent_;
};

}  // namespace

std::unique_ptr<Scenario> MakeChat() { return std::make_unique<Chat>(false); }
std::unique_ptr<Scenario> MakeScale() { return std::make_unique<Chat>(true); }

}  // namespace parley::bench
