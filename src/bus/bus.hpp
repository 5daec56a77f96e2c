// The seam between a node and the other nodes of a cluster (PROTOCOL.md
// section 8; design: docs/architecture.md "The bus", cluster.md section 3).
//
// Design note. The bus is a hint, never the truth. Every event a device must
// get is in its user's mailbox in the store; the bus only tells the nodes
// holding that user's sockets that there is something new, so they read it
// (or take the rendered copy riding inline) sooner than the next ack or head
// check would. A lost publication therefore costs latency, never a message,
// and the bus may drop anything at any time: a reconnect, a slow subscriber
// cut off by Redis, garbage on a channel. What closes the windows is the
// caller's job and the bus's contract together:
//   * Subscribe(user, done): `done` runs only once the subscription is in
//     place (Redis confirmed it), so a caller that reads the mailbox head
//     after `done` misses nothing published after that read.
//   * on_resubscribed: after every (re)connection of the subscriber, once all
//     subscriptions are restored, so the caller pumps every local session
//     from the store (what was published while it was gone is lost).
//   * A node that cannot reach the bus still serves its own sockets: the
//     store-first write path never waits for the bus.
//
// Threading: every method is thread-safe and never blocks (publications are
// queued; answers come back through callbacks). Every callback, the handlers
// and the `done`s alike, is posted to the Executor given to the constructor,
// in the order the bus received what it reports; it never runs on the
// caller's stack, and none runs after Stop() has returned (do not call Stop
// from a callback). On a multi-threaded executor callbacks may run
// concurrently, so handlers must be thread-safe.
//
// Implementations: bus/local (`--bus none`: one node, delivers to itself) and
// bus/redis (`--bus redis://HOST:PORT`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.hpp"
#include "common/result.hpp"

namespace parley::bus {

using UserId = std::uint64_t;
using DeviceId = std::uint64_t;
using Seq = std::uint64_t;

// Where callbacks run: a function that runs its argument later, elsewhere
// (parleyd passes net::Server::Post; tests post to an io_context).
using Executor = std::function<void(std::function<void()>)>;

// "User `user` has events up to `seq`" (published after the commit).
struct Wake {
  UserId user = 0;
  Seq seq = 0;
  // The rendered `event` frame of `seq` when the writer had it and it is
  // small (at most kMaxInlineBytes); empty otherwise, and receivers read the
  // mailbox. Never trusted beyond being a frame to forward: a receiver uses
  // it only for exactly the seq it names.
  std::string frame;
  std::string origin;  // the publishing instance (receivers skip their own echo)
  // When it was published (microseconds since the epoch, set by the bus):
  // the receiver observes publish -> received latency from it. 0 when the
  // publisher did not say (an older node).
  std::int64_t sent_us = 0;
};

// A user's first device connected anywhere / last device left everywhere.
// Goes to every node (one firehose channel); receivers filter against their
// own presence subscriptions and apply last_seen visibility themselves.
struct PresenceChange {
  UserId user = 0;
  bool online = false;
  std::int64_t last_seen_ms = 0;
  std::string origin;
};

// `from` is typing to `to` (a user's devices on every node). `frame` is the
// rendered `typing` push, the same for every device of `to`.
struct Typing {
  UserId to = 0;
  UserId from = 0;
  std::string frame;
  std::string origin;
};

// Something to do to one device's socket wherever it is connected.
struct Control {
  enum class Kind : std::uint8_t {
    kRemoved = 1,   // the device was removed: close 4403
    kReplaced = 2,  // a newer connection of the device opened: close every other one 4409
    kRevoked = 3,   // every token of the device was revoked (refresh reuse): close 4401
  };
  Kind kind = Kind::kRemoved;
  UserId user = 0;
  DeviceId device = 0;
  // kReplaced: the newer connection, which stays (its instance is `origin`).
  std::uint64_t connection = 0;
  std::string origin;
};

// Where a device is connected (the connection registry).
struct DeviceLocation {
  DeviceId device = 0;
  std::string node;      // the node id (--node-id) holding its socket
  std::string instance;  // that node's process instance
};

// A limit counted across the cluster (the sign-in limits: codes per phone,
// per address, in all; docs/architecture.md "Limits across nodes"): at most
// `limit` events per `key` in any sliding window of `window_ms`; limit 0
// counts the event without limiting it.
struct WindowLimit {
  std::string key;
  std::uint32_t limit = 0;
  std::int64_t window_ms = 0;
};

// What a node hears from the others. Unset handlers drop their messages.
struct Handlers {
  std::function<void(const Wake&)> on_wake;
  // Also for the users a dead node's sweep left offline everywhere (see
  // the connection registry below): those arrive with `origin` equal to
  // this node's own instance, and this node then stands in for the dead one
  // (it records last_seen and publishes the transition to the others).
  std::function<void(const PresenceChange&)> on_presence;
  std::function<void(const Typing&)> on_typing;
  std::function<void(const Control&)> on_control;
  // After every (re)connection, once the subscriptions are restored:
  // whatever was published meanwhile is lost, so catch up from the store.
  std::function<void()> on_resubscribed;
  // Connected or not (the bus reconnects by itself).
  std::function<void(bool connected)> on_state;
  // Another live node holds this node's id (seen after a reconnect): the
  // node must stop. `holder` names it.
  std::function<void(const std::string& holder)> on_claim_lost;
};

// Published inline up to this size; larger events travel as a bare seq.
inline constexpr std::size_t kMaxInlineBytes = 8192;

// Counters for /metrics (parley_bus_*). Shared by both implementations.
struct BusMetrics {
  explicit BusMetrics(Registry& r);
  Counter& published;     // messages handed to the bus
  Counter& received;      // messages from other nodes handed to a handler
  Counter& dropped;       // malformed or foreign messages, counted and dropped
  Counter& publish_lost;  // publications that never reached the bus (down, overflow)
  Counter& reconnects;    // successful reconnections after a loss
  Gauge& connected;       // 1 while connected
  // Wake publish -> handed to this node's on_wake, for wakes from other
  // nodes that carry their publish time (Wake::sent_us).
  Histogram& wake_latency;
  void ObserveWake(const Wake& wake);
};

// Microseconds since the epoch (Wake::sent_us).
std::int64_t NowUs();

class Bus {
 public:
  virtual ~Bus() = default;

  // Connects (in the background when the bus is remote) and starts
  // delivering to `handlers`. Call once.
  virtual void Start(Handlers handlers) = 0;
  // Closes everything; no callback runs after this returns. Registrations and
  // the node claim are withdrawn when the bus is reachable (best effort).
  virtual void Stop() = 0;

  // This node's id and this process's instance (unique per start).
  virtual const std::string& node_id() const = 0;
  virtual const std::string& instance() const = 0;

  // True while the bus can carry messages (for /ready). The local bus is
  // always connected.
  virtual bool connected() const = 0;

  // Claims node_id() for this process among live nodes. `done` gets an
  // error (kConflict) naming the live holder, or kUnavailable when the bus
  // cannot be reached within `timeout_ms` (the claim is then made when it
  // connects, and a conflict then goes to on_claim_lost). A holder that died
  // (its heartbeat expired, or its connection to the bus is gone) is taken
  // over. The claim is kept alive by the node heartbeat until Stop().
  virtual void ClaimNode(std::uint32_t timeout_ms, std::function<void(Status)> done) = 0;

  // Publications: best effort, never block, counted in the metrics.
  virtual void PublishWake(const Wake& wake) = 0;
  virtual void PublishPresence(const PresenceChange& change) = 0;
  virtual void PublishTyping(const Typing& typing) = 0;
  virtual void PublishControl(const Control& control) = 0;

  // Interest in a user's channel (wakes, typing and control of that user),
  // counted: the first Subscribe subscribes, the last Unsubscribe leaves.
  // `done(true)` once the subscription is confirmed; `done(false)` when the
  // bus is down (it is then restored on reconnect, followed by
  // on_resubscribed). May be null.
  virtual void Subscribe(UserId user, std::function<void(bool)> done) = 0;
  virtual void Unsubscribe(UserId user) = 0;

  // The connection registry. Register records that (user, device) is
  // connected to this node and answers whether the user was offline on every
  // node before (a presence transition); Unregister answers whether that was
  // the user's last device anywhere. Entries expire unless this node's
  // heartbeat refreshes them, so a dead node's entries vanish by themselves;
  // sooner than that, a live node sweeps the entries of a node whose
  // heartbeat stopped (node_ttl) and hands the users that left offline to
  // its own on_presence (online = false, origin = this instance). A node
  // that finds it was swept (it was paused past node_ttl) registers its
  // devices again at once and hands the users that makes online again to
  // its own on_presence (online = true, origin = this instance).
  // Registrations are re-asserted after a reconnect. `done` may be null; it
  // gets kUnavailable while the bus is down.
  virtual void Register(UserId user, DeviceId device, std::function<void(Result<bool>)> done) = 0;
  virtual void Unregister(UserId user, DeviceId device, std::function<void(Result<bool>)> done) = 0;
  // Where the user's devices are connected, on every node.
  virtual void Locate(UserId user,
                      std::function<void(Result<std::vector<DeviceLocation>>)> done) = 0;

  // Checks every limit and, only when all of them allow one more event,
  // records one against each, as one step for the whole cluster (two nodes
  // never both take the last one). `done` gets 0 when the event was
  // recorded, else the milliseconds until all would allow it (nothing was
  // recorded); kUnavailable while the bus is down (the caller then falls
  // back to limits of its own). The Redis bus keeps them in Redis (its
  // clock); the local bus in its hub.
  virtual void TakeWindows(std::vector<WindowLimit> limits,
                           std::function<void(Result<std::int64_t>)> done) = 0;
};

// A fresh instance id: 16 random hex digits.
std::string NewInstanceId();
// A node id for a node started without one: "node-" and 8 random hex digits.
std::string GenerateNodeId();
// Node ids are 1 to 64 of [A-Za-z0-9._-] (they go into keys and logs).
bool ValidNodeId(std::string_view id);

}  // namespace parley::bus
