// Limits against enumeration, prekey draining and sign-in abuse (issue 14,
// items 3, 4 and 6). Each is in memory, per node, like the other limiters in
// rate_limit.hpp (in a cluster the sign-in windows are counted in Redis
// instead while the bus is up: otp_limits.hpp); every limit is a
// configuration key (docs/operations.md) and 0 turns it off.
//
// * Lookups: profile.get, presence.subscribe and contacts.discover draw from
//   one token bucket per device, one token per user or hash named, so that a
//   device cannot walk the id or phone space.
// * Prekeys: keys.bundle draws one token per call from a bucket per device
//   (over it: rate_limited). One-time prekeys are handed out at most
//   `prekey_claims_per_pair_per_hour` times an hour to one requesting user
//   for one target, and `prekey_claims_per_target_per_hour` times an hour
//   for one target in all; past either, the bundle is served without a
//   one-time prekey (X3DH works without one), so a stranger, or many, cannot
//   drain a user's prekeys while that user's contacts can still start
//   sessions.
// * Sign-in: a code burned by wrong guesses does not lock its phone out: a
//   fresh code is always possible after a delay that doubles with each burn
//   in a day (otp_burn_delay_s, 2x, 4x, ... up to an hour), whatever the
//   per-phone window says. A global cap bounds the codes sent per minute
//   (SMS pumping). Per-address limits count an IPv6 client by its /64, and
//   believe X-Forwarded-For only from `trusted_proxies`.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/address.hpp"
#include "common/config.hpp"
#include "core/rate_limit.hpp"

namespace parley::core {

// Remembers codes burned per phone, for the growing delay above.
class OtpBurns {
 public:
  explicit OtpBurns(std::uint32_t base_delay_s) : base_s_(base_delay_s) {}
  // A code of the phone was burned (too many wrong guesses) at now_s.
  void Burned(const std::string& phone, double now_s);
  // A new code was issued for the phone: the burn is answered.
  void Issued(const std::string& phone);
  // Whether the phone has an unanswered burn, and if so the seconds until a
  // fresh code may be sent regardless of the per-phone window (0: now).
  // -1 when there is no burn to answer.
  double FreshCodeAfter(const std::string& phone, double now_s);

 private:
  struct State {
    std::uint32_t burns = 0;  // in the last day
    double first_s = 0;       // when the day of burns began
    double last_s = 0;        // the latest burn
    bool pending = false;     // burned since the last code was issued
  };
  std::uint32_t base_s_;
  std::mutex mu_;
  std::unordered_map<std::string, State> state_;
};

struct AbuseLimits {
  explicit AbuseLimits(const Config& config);

  TokenBucket lookups;               // per device: users or hashes named
  TokenBucket bundles;               // per device: keys.bundle calls
  WindowLimiter prekeys_per_pair;    // "requester user:target user": one-time prekeys handed out
  WindowLimiter prekeys_per_target;  // target user: one-time prekeys handed out
  WindowLimiter otp_global;          // every code sent, one key
  OtpBurns otp_burns;
  AddressSet trusted_proxies;  // whose X-Forwarded-For is believed (common/address.hpp)
};

}  // namespace parley::core
