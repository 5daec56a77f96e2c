#include "core/account/abuse_limits.hpp"

#include <algorithm>
#include <cmath>

namespace parley::core {

namespace {
constexpr double kDayS = 86400;
constexpr double kMaxBurnDelayS = 3600;
constexpr std::size_t kMaxTracked = 100000;
}  // namespace

void OtpBurns::Burned(const std::string& phone, double now_s) {
  std::lock_guard lock(mu_);
  if (state_.size() > kMaxTracked) {
    std::erase_if(state_, [&](const auto& kv) { return now_s - kv.second.last_s > kDayS; });
  }
  State& s = state_[phone];
  if (s.burns == 0 || now_s - s.first_s > kDayS) {
    s.burns = 0;
    s.first_s = now_s;
  }
  // One burn per issued code: wrong guesses after the burn add nothing.
  if (s.pending) return;
  ++s.burns;
  s.last_s = now_s;
  s.pending = true;
}

void OtpBurns::Issued(const std::string& phone) {
  std::lock_guard lock(mu_);
  auto it = state_.find(phone);
  if (it != state_.end()) it->second.pending = false;
}

double OtpBurns::FreshCodeAfter(const std::string& phone, double now_s) {
  std::lock_guard lock(mu_);
  auto it = state_.find(phone);
  if (it == state_.end() || !it->second.pending) return -1;
  const State& s = it->second;
  const double delay = std::min(
      kMaxBurnDelayS, base_s_ * std::ldexp(1.0, static_cast<int>(std::min(s.burns, 20u)) - 1));
  return std::max(0.0, s.last_s + delay - now_s);
}

AbuseLimits::AbuseLimits(const Config& c)
    : lookups(c.lookup_rate, c.lookup_burst),
      bundles(c.keys_bundle_per_minute / 60.0, c.keys_bundle_per_minute),
      prekeys_per_pair(c.prekey_claims_per_pair_per_hour, 3600),
      prekeys_per_target(c.prekey_claims_per_target_per_hour, 3600),
      otp_global(c.otp_global_per_minute, 60),
      otp_burns(c.otp_burn_delay_s),
      trusted_proxies(AddressSet::Parse(c.trusted_proxies)) {}

}  // namespace parley::core
