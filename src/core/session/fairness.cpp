#include "core/session/fairness.hpp"

namespace parley::core {

bool WriteShare::Acquire(store::UserId user) {
  std::lock_guard lock(mu_);
  auto& n = in_flight_[user];
  if (limit_ != 0 && n >= limit_) return false;
  ++n;
  return true;
}

void WriteShare::Release(store::UserId user) {
  std::lock_guard lock(mu_);
  auto it = in_flight_.find(user);
  if (it == in_flight_.end()) return;
  if (--it->second == 0) in_flight_.erase(it);
}

std::uint32_t WriteShare::InFlight(store::UserId user) {
  std::lock_guard lock(mu_);
  auto it = in_flight_.find(user);
  return it == in_flight_.end() ? 0 : it->second;
}

}  // namespace parley::core
