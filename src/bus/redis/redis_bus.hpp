// The Redis 7 bus (`--bus redis://HOST:PORT`): pub/sub for wakes, typing,
// control and presence; keys for the connection registry and node claims.
// Layout (docs/architecture.md, "The bus"; cluster.md section 3.2):
//
//   u:{user}            channel  wakes, typing and control for that user's
//                                devices; subscribed by the nodes holding one
//   presence            channel  presence transitions, every node subscribes
//   n:{instance}:ping   channel  each node's own; a publish that reaches no
//                                subscriber means that process is gone
//   nid:{node_id}       string   the instance holding a node id, PX node TTL
//   node:{instance}     hash     node_id, started_ms; PX node TTL
//   nodes               zset     instance -> last heartbeat ms
//   pr:{user}           zset     "device/instance/node" -> expiry ms
//   nd:{instance}       set      "user device/instance/node" registered by it
//
// Two connections, both on the bus's own I/O thread: one for commands
// (pipelined, each with a deadline) and one subscriber. Either reconnects by
// itself with backoff (100 ms doubling to 2 s). After the subscriber
// reconnects, every channel is subscribed again and on_resubscribed runs;
// after the command connection reconnects, the node claim and every
// registration are asserted again (a restarted Redis has none of them).
// The subscriber pings Redis every probe interval and counts itself dead
// when nothing arrives for three of them (a silently dead TCP connection
// would otherwise swallow every publication).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "bus/bus.hpp"

namespace parley::bus {

struct RedisOptions {
  std::string host = "127.0.0.1";
  std::string port = "6379";
  std::string node_id;
  std::chrono::milliseconds command_timeout{2000};
  std::chrono::milliseconds heartbeat{2000};      // node key and claim refresh
  std::chrono::milliseconds node_ttl{6000};       // a node silent this long is dead
  std::chrono::milliseconds registry_ttl{30000};  // registrations refreshed every third of it
  std::chrono::milliseconds probe{1000};          // subscriber liveness ping
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{2000};
  std::size_t max_pending = 100000;  // queued commands past which publications are dropped
};

// Parses "redis://HOST:PORT" (PORT defaults to 6379; IPv6 as [::1]).
Result<RedisOptions> ParseRedisUrl(std::string_view url);

// `metrics` may be null.
std::unique_ptr<Bus> MakeRedisBus(RedisOptions options, Executor executor, BusMetrics* metrics);

}  // namespace parley::bus
