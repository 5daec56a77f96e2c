// What every scenario implements, and what the driver gives it.
//
// The driver (driver.cpp) provisions accounts in the parent, forks the
// workers, waits until all of them are ready (connected), starts them
// together, and merges what they report. A scenario says how many accounts
// and sockets it needs, what a worker does (Worker, in the child), and how
// the merged figures become the report (Summarize, in the parent).
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client.hpp"
#include "histogram.hpp"
#include "options.hpp"
#include "provision.hpp"
#include "workers.hpp"

namespace parley::bench {

// The child's view of the run.
struct WorkerContext {
  const Options& opt;
  const std::vector<Account>&
      accounts;  // every account; this worker's are [share.begin, share.end)
  WorkerInfo share;
  ParentLink& link;
  std::string run_id;  // unique per run: message bodies and client_msg_ids carry it

  // Reports {"type":"ready", ...payload} and waits for "go". Returns the
  // common start time (steady-clock ns), or nullopt if no go came.
  std::optional<std::int64_t> ReadyAndWait(boost::json::object payload,
                                           std::chrono::steady_clock::time_point deadline);
  void Progress(boost::json::object payload);
  // Progress at most once a second (make() runs only when one is due).
  void MaybeProgress(const std::function<boost::json::object()>& make);
  void Result(boost::json::object payload);

  std::int64_t last_progress_ns = 0;
  double go_cpu_s = 0;          // this process's CPU time when go came
  std::int64_t go_wall_ns = 0;  // and the steady clock then
};

inline int UsersOr(const Options& opt, int fallback) {
  return opt.users > 0 ? opt.users : fallback;
}

// Worker payloads ("ready", "progress", "result") are objects with any of:
// "counters" {name: number} (summed over workers), "max" {name: number}
// (largest), "hists" {name: histogram JSON} (merged), "errors" {code: count}
// (summed), "info" {..} (taken from worker 0).
struct Merged {
  std::map<std::string, double> counters;
  std::map<std::string, double> max;
  std::map<std::string, Histogram> hists;
  std::map<std::string, std::uint64_t> errors;
  boost::json::object info;

  void Add(const boost::json::object& payload);
  double Counter(const std::string& name) const;
  double Max(const std::string& name) const;
  const Histogram& Hist(const std::string& name) const;
  boost::json::object ErrorsJson() const;
};

// Helpers to build payloads.
struct Payload {
  boost::json::object counters;
  boost::json::object max;
  boost::json::object hists;
  boost::json::object errors;
  boost::json::object info;
  void Count(std::string_view name, double v) { counters[name] = v; }
  void Hist(std::string_view name, const Histogram& h);
  void Errors(const std::map<std::string, std::uint64_t>& e);
  boost::json::object Build() const;
};

class Driver;

class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual std::size_t Accounts(const Options& opt) const = 0;
  // Sockets open at the same time, over all workers.
  virtual std::size_t Sockets(const Options& opt) const = 0;
  // Scenarios whose figures come from one process (sync, fanout).
  virtual bool SingleProcess() const { return false; }
  // How long the run lasts after setup (access tokens must outlive it).
  virtual double Seconds(const Options& opt) const = 0;
  // How long a worker may take from go to its result.
  virtual double ResultTimeout(const Options& opt) const { return Seconds(opt) + 120; }
  // In the child: returns the exit code.
  virtual int Worker(WorkerContext& ctx) = 0;
  // In the parent, once every worker is ready and before go.
  virtual void AfterReady(const Options&, Driver&) {}
  // In the parent, about every 200 ms from go until every result is in.
  virtual void DuringRun(const Options&, Driver&) {}
  // In the parent: the scenario's figures from the merged results.
  virtual void Summarize(const Options& opt, const Merged& merged, Driver& driver,
                         boost::json::object& results) = 0;
  // The progress line, from merged progress payloads.
  virtual std::string ProgressText(const Merged& merged, double elapsed_s, double rate) const;
  // The counter whose rate the progress line shows.
  virtual std::string RateCounter() const { return "ok"; }
};

std::unique_ptr<Scenario> MakeConnect();
std::unique_ptr<Scenario> MakeStorm();
std::unique_ptr<Scenario> MakeChat();
std::unique_ptr<Scenario> MakeSync();
std::unique_ptr<Scenario> MakeFanout();
std::unique_ptr<Scenario> MakeScale();

// Opens sessions for a set of accounts over a worker's loops with bounded
// concurrency and records how that went. Scenarios derive from it, handle
// OnEvent/OnAnswer, and get OnSessionReady/OnSessionClosed. A derived class
// must call StopLoops() before its own members (timers, per-loop state) go.
class Fleet : public SessionListener {
 public:
  // `capacity`: the most sessions this fleet will ever open.
  Fleet(WorkerContext& ctx, int threads, std::size_t capacity);
  ~Fleet() override;

  struct OpenStats {
    std::size_t ok = 0;
    std::size_t failed = 0;
    double seconds = 0;
    Histogram connect;  // Start -> upgraded
    Histogram hello;    // hello written -> ok
    Histogram total;    // Start -> ok
    std::map<std::string, std::uint64_t> errors;
  };
  // Opens one session per account index (appended after the existing
  // ones), at most opt.connect_concurrency handshakes at once; returns when
  // each has answered or at the deadline (the rest are aborted). `tick` runs
  // about every 200 ms on the calling thread (for progress).
  OpenStats Open(const std::vector<std::size_t>& account_indices, Clock::time_point deadline,
                 const std::function<void(std::size_t ok, std::size_t failed)>& tick = {});

  // On session i's loop: replaces it (closed) by a new session of the same
  // account on `node`, started at once, whose hello carries resume_after
  // when it is not 0. Its outcome goes to OnReconnected, not to Open's figures.
  void Reconnect(std::size_t i, int node, std::uint64_t resume_after,
                 std::chrono::milliseconds timeout);

  void OnHello(Session& s, bool ok, std::string_view error) final;
  void OnClosed(Session& s, std::string_view why) final;
  virtual void OnSessionReady(Session&) {}                     // on the session's loop
  virtual void OnSessionClosed(Session&, std::string_view) {}  // after a successful hello
  virtual void OnReconnected(Session&, bool /*ok*/, std::string_view /*error*/) {}

  std::size_t size() const { return count_; }
  Session& session(std::size_t i) { return *sessions_[i]; }
  std::size_t account_of(std::size_t i) const { return account_of_[i]; }
  int loop_of(std::size_t i) const { return static_cast<int>(i % loops_.size()); }
  Loop& loop(int i) { return *loops_[static_cast<std::size_t>(i)]; }
  int loops() const { return static_cast<int>(loops_.size()); }
  // Sessions open now (any thread).
  std::size_t open_count() const { return open_now_.load(std::memory_order_relaxed); }
  // Runs fn(loop index) on every loop and waits for each.
  void OnEachLoop(const std::function<void(int)>& fn);
  // Stops every loop's thread; after this, per-loop state may be read freely.
  void StopLoops();

 protected:
  WorkerContext& ctx_;

 private:
  struct LoopOpen;
  void StartNext(int loop);

  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<LoopOpen>> open_;
  // Sized once (capacity) so that loops may index it while Open appends.
  std::vector<std::shared_ptr<Session>> sessions_;
  std::vector<std::size_t> account_of_;
  // Per session: 0 pending, 1 open, 2 failed, 3 closed, 4 reconnecting.
  std::vector<std::uint8_t> state_;
  std::size_t count_ = 0;
  std::atomic<std::size_t> open_now_{0};
};

// Payload pieces shared by scenarios.
void AddOpenStats(Payload& p, const Fleet::OpenStats& s, const std::string& prefix);

}  // namespace parley::bench
