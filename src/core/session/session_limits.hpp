// The per-device limits of abuse_limits.hpp as ops apply them.
#pragma once

#include <algorithm>
#include <string_view>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "core/session/session.hpp"
#include "proto/errors.hpp"

namespace parley::core {

// Takes `cost` tokens of the device's bucket; when there are not enough,
// answers rate_limited with retry_after_ms and returns true. A cost above
// the burst is charged as the burst (so a request the limits allow at all
// can always pass once the bucket is full).
inline bool RefusedByLimit(Session& session, TokenBucket& bucket, double burst, double cost,
                           const Session::Rid& rid, std::string_view message) {
  cost = std::max(1.0, std::min(cost, burst));
  const double wait_s = bucket.Take(IdToString(session.identity().device), MonoSeconds(), cost);
  if (wait_s <= 0) return false;
  boost::json::object extra;
  extra["retry_after_ms"] = static_cast<std::int64_t>(wait_s * 1000) + 1;
  session.Error(rid, proto::code::kRateLimited, message, std::move(extra));
  return true;
}

}  // namespace parley::core
