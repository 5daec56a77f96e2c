// The load generator's WebSocket client: many sessions per thread, each an
// asynchronous Beast stream on its Loop's io_context (one thread per Loop,
// so a session and everything its listener touches run on one thread and
// need no locks). Asio and Beast appear only in client.cpp.
#pragma once

#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "provision.hpp"

namespace parley::bench {

using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

// Where sessions connect, and from which loopback source addresses: one
// address has about 28,000 ephemeral ports towards one server port, so
// sockets are spread over 127.0.0.1 .. 127.0.0.<source_addrs>. Several
// nodes: a session connects to nodes[node % size] (Account::node unless
// Session::Create is given another).
struct Target {
  std::vector<Endpoint> nodes;  // SetTarget makes it one default Endpoint if empty
  bool ipv6 = false;
  int source_addrs = 8;
  // false: hello asks not to be sent the copies of the session's own sends
  // (skip_own_copy, docs/protocol.md); the ok's seq then counts as received.
  bool own_copy = false;
};
int TargetNodes();                     // nodes in the target (at least 1)
void SetTarget(const Target& target);  // before any session starts

// One io_context on its own thread, plus a 10 ms tick that flushes batched acks.
class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  void Start();
  // Stops the io_context and joins the thread; pending handlers are dropped
  // (nothing is called back) when the Loop is destroyed.
  void Stop();
  void Post(std::function<void()> fn);
  // Runs fn on the loop's thread and waits for it. A loop that does not get
  // to it within `timeout` ends the process (exit code 3): fn may refer to
  // the caller's locals, so returning without it would be unsafe.
  bool Call(std::function<void()> fn, std::chrono::milliseconds timeout = std::chrono::seconds(60));

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A one-shot timer on a Loop (use it from that loop's thread).
class Timer {
 public:
  explicit Timer(Loop& loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void At(Clock::time_point when, std::function<void()> fn);  // replaces a pending one
  void Cancel();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

class Session;

// Callbacks, on the session's loop thread.
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  // Exactly once per Start: ok, or why not (an error code from the server,
  // or a transport failure, or "timeout").
  virtual void OnHello(Session& s, bool ok, std::string_view error) = 0;
  // ok/error answers with a rid (other than hello's).
  virtual void OnAnswer(Session&, std::string_view /*rid*/, const boost::json::object& /*frame*/,
                        bool /*ok*/, std::string_view /*code*/) {}
  // Events, already queued for a batched ack.
  virtual void OnEvent(Session&, std::uint64_t /*seq*/, const boost::json::object& /*event*/) {}
  // Once, for a session whose hello succeeded, when it is gone.
  virtual void OnClosed(Session&, std::string_view /*why*/) {}
};

class Session {
 public:
  // `node` < 0: the account's node. `resume_after` > 0: hello carries it
  // (a reconnecting client that has every event up to it), and `seen_above`
  // are the events above it that it has too (dropped if sent again).
  static std::shared_ptr<Session> Create(Loop& loop, const Account& account, std::uint32_t id,
                                         SessionListener* listener, int node = -1,
                                         std::uint64_t resume_after = 0,
                                         std::vector<std::uint64_t> seen_above = {});
  virtual ~Session() = default;

  // TCP connect, WebSocket upgrade and hello, within `timeout`.
  virtual void Start(std::chrono::milliseconds timeout) = 0;
  virtual void Send(std::string frame) = 0;  // dropped unless open
  virtual void Close() = 0;                  // normal closure, after queued frames
  virtual void Abort() = 0;                  // drop the socket; no callbacks
  virtual bool open() const = 0;             // hello answered ok, not closed
  virtual std::size_t queued() const = 0;    // frames not yet written
  // The contiguous watermark: every event up to it was received (or resumed
  // after). What is acknowledged, and what a reconnect resumes after.
  virtual std::uint64_t highest_seq() const = 0;
  virtual std::vector<std::uint64_t> seen_above() const = 0;  // received above the watermark

  std::uint32_t id() const { return id_; }
  int node = 0;                     // index into Target::nodes
  std::uint64_t head_seq = 0;       // from hello
  Clock::time_point started_at{};   // Start()
  Clock::time_point upgraded_at{};  // WebSocket upgrade done
  Clock::time_point hello_at{};     // hello written
  Clock::time_point ready_at{};     // hello answered ok
  std::int64_t tag = 0;             // free for the scenario

 protected:
  explicit Session(std::uint32_t id) : id_(id) {}

 private:
  std::uint32_t id_;
};

}  // namespace parley::bench
