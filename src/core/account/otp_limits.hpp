// The sign-in limits across a cluster (issue 14, item 6; docs/architecture.md
// "Limits across nodes"). Codes per phone (otp_per_phone per 10 minutes),
// per client address (otp_per_address_per_hour) and in all
// (otp_global_per_minute, against SMS pumping) guard cost and abuse, so in a
// cluster they are counted once for all nodes: with a Redis bus, the
// POST /v1/auth/otp handler takes them through Bus::TakeWindows, one Lua
// script that checks all three and counts the code against each atomically
// (a sorted set of event times per key in Redis, on Redis's clock). Without a
// bus, or while it is down, each node keeps its own windows (rate_limit.hpp),
// as a single node always did; a code allowed by the cluster is added to
// those too, so a node falling back has its recent history.
//
// Still per node: the burned-code memory (OtpBurns: a fresh code after a
// burn, abuse_limits.hpp) and every other limiter.
#pragma once

#include <string>
#include <vector>

#include "bus/bus.hpp"
#include "common/config.hpp"

namespace parley::core {

// The windows one code counts against; a limit that is off (0) is left out.
// `phone_counted_only`: the phone's window counts the code without refusing
// it (a fresh code after a burn, which the per-phone window must not stop).
std::vector<bus::WindowLimit> OtpWindowLimits(const Config& config, const std::string& phone,
                                              const std::string& address, bool phone_counted_only);

}  // namespace parley::core
