#include "common/ids.hpp"

#include <charconv>
#include <stdexcept>
#include <utility>

#include "common/clock.hpp"

namespace parley {
namespace {

constexpr int kNodeBits = 10;
constexpr int kCounterBits = 12;
constexpr std::uint32_t kMaxCounter = (1u << kCounterBits) - 1;
constexpr std::uint32_t kMaxNode = (1u << kNodeBits) - 1;

}  // namespace

IdGenerator::IdGenerator(std::uint32_t node_id) : IdGenerator(node_id, &NowMs) {}

IdGenerator::IdGenerator(std::uint32_t node_id, std::function<std::int64_t()> clock)
    : clock_(std::move(clock)), node_(node_id) {
  if (node_id > kMaxNode) throw std::invalid_argument("node_id must be below 1024");
}

std::uint64_t IdGenerator::Next() {
  std::lock_guard lock(mu_);
  // A clock before the epoch counts as the epoch itself; a clock that stepped
  // back (NTP) keeps using the last millisecond until real time catches up.
  std::int64_t now = clock_() - kIdEpochMs;
  if (now < 0) now = 0;
  if (now > last_ms_) {
    last_ms_ = now;
    counter_ = 0;
  } else if (++counter_ > kMaxCounter) {
    // The millisecond is used up: borrow the next one rather than block, so
    // that ids stay unique; the clock catches up within milliseconds.
    ++last_ms_;
    counter_ = 0;
  }
  // Starting from last_ms_ = 0 and counter_ = 0, the first id at millisecond
  // 0 takes counter 1, so no id is ever 0 (ParseId rejects 0).
  return (static_cast<std::uint64_t>(last_ms_) << (kNodeBits + kCounterBits)) |
         (node_ << kCounterBits) | counter_;
}

std::int64_t IdTimeMs(std::uint64_t id) {
  return static_cast<std::int64_t>(id >> (kNodeBits + kCounterBits)) + kIdEpochMs;
}

std::uint64_t IdFloorForTime(std::int64_t unix_ms) {
  const std::int64_t ms = unix_ms - kIdEpochMs;
  if (ms <= 0) return 0;
  constexpr int kShift = kNodeBits + kCounterBits;
  // Past what 64 bits can hold every id is older.
  if (static_cast<std::uint64_t>(ms) >= (std::uint64_t{1} << (64 - kShift))) return UINT64_MAX;
  return static_cast<std::uint64_t>(ms) << kShift;
}

std::string IdToString(std::uint64_t id) { return std::to_string(id); }

std::optional<std::uint64_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 20 || text.front() == '0') return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace parley
