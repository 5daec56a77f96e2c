// Time-ordered 64-bit ids (Snowflake): 41 bits of milliseconds since
// 2024-01-01T00:00:00Z, 10 bits of node id, 12 bits of a per-millisecond
// counter. Ids from one generator strictly increase, also when the clock
// steps back (the generator keeps the last millisecond it used) or when more
// than 4096 are asked for in one millisecond (it borrows the next one).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace parley {

inline constexpr std::int64_t kIdEpochMs = 1704067200000;  // 2024-01-01T00:00:00Z

class IdGenerator {
 public:
  explicit IdGenerator(std::uint32_t node_id);  // node_id < 1024
  // `clock` returns Unix milliseconds; tests pass one to step time back.
  IdGenerator(std::uint32_t node_id, std::function<std::int64_t()> clock);
  std::uint64_t Next();

 private:
  std::mutex mu_;
  std::function<std::int64_t()> clock_;
  std::uint64_t node_;
  std::int64_t last_ms_ = 0;
  std::uint32_t counter_ = 0;
};

// The millisecond an id was made in (Unix epoch).
std::int64_t IdTimeMs(std::uint64_t id);
// The smallest id made at or after `unix_ms`: IdTimeMs(id) < unix_ms exactly
// when id < IdFloorForTime(unix_ms), so "older than a time" is a key range.
std::uint64_t IdFloorForTime(std::int64_t unix_ms);

// Ids travel as decimal strings on the wire.
std::string IdToString(std::uint64_t id);
// Strict: digits only, no sign, no leading zeros, fits in 64 bits, not 0.
std::optional<std::uint64_t> ParseId(std::string_view text);

}  // namespace parley
