#pragma once

#include <chrono>
#include <cstdint>

namespace parley {

// Wall-clock milliseconds since the Unix epoch (the wire's *_ms fields).
inline std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Monotonic seconds, for latencies and rate limiters.
inline double MonoSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace parley
