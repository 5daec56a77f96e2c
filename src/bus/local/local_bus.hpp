// The in-process bus (`--bus none`): the nodes are LocalBus objects joined to
// one LocalHub in one process. parleyd makes a hub of its own with one bus on
// it, so every publication finds no other node and costs one map lookup;
// tests join several to one hub to run the bus contract without Redis. Like
// the Redis bus, a node never hears its own publications (it delivered to
// its own sessions already), and the registry, node claims and presence
// transitions are the hub's.
#pragma once

#include <memory>

#include "bus/bus.hpp"

namespace parley::bus {

class LocalHub;

std::shared_ptr<LocalHub> NewLocalHub();

// `metrics` may be null (no counters).
std::unique_ptr<Bus> MakeLocalBus(std::shared_ptr<LocalHub> hub, std::string node_id,
                                  Executor executor, BusMetrics* metrics);

}  // namespace parley::bus
