#include "core/rate_limit.hpp"

#include <algorithm>

namespace parley::core {

namespace {
constexpr double kSweepEveryS = 60;
}

void WindowLimiter::Prune(std::deque<double>& q, double now_s) const {
  while (!q.empty() && q.front() <= now_s - window_s_) q.pop_front();
}

void WindowLimiter::MaybeSweep(double now_s) {
  if (now_s - last_sweep_s_ < kSweepEveryS) return;
  last_sweep_s_ = now_s;
  for (auto it = events_.begin(); it != events_.end();) {
    Prune(it->second, now_s);
    it = it->second.empty() ? events_.erase(it) : std::next(it);
  }
}

double WindowLimiter::RetryAfter(const std::string& key, double now_s) {
  if (limit_ == 0) return 0;
  std::lock_guard lock(mu_);
  MaybeSweep(now_s);
  auto it = events_.find(key);
  if (it == events_.end()) return 0;
  Prune(it->second, now_s);
  if (it->second.size() < limit_) return 0;
  // The oldest event that must leave the window before one more fits.
  const double oldest = it->second[it->second.size() - limit_];
  return std::max(0.001, oldest + window_s_ - now_s);
}

void WindowLimiter::Add(const std::string& key, double now_s) {
  if (limit_ == 0) return;
  std::lock_guard lock(mu_);
  auto& q = events_[key];
  Prune(q, now_s);
  q.push_back(now_s);
}

double TokenBucket::Take(const std::string& key, double now_s, double n) {
  if (rate_ <= 0) return 0;
  n = std::min(n, burst_);
  std::lock_guard lock(mu_);
  if (now_s - last_sweep_s_ > kSweepEveryS) {
    last_sweep_s_ = now_s;
    // A full bucket carries no information: forget it.
    std::erase_if(state_, [&](const auto& kv) {
      return kv.second.tokens + (now_s - kv.second.at_s) * rate_ >= burst_;
    });
  }
  auto [it, fresh] = state_.try_emplace(key, State{burst_, now_s});
  State& s = it->second;
  if (!fresh) {
    s.tokens = std::min(burst_, s.tokens + (now_s - s.at_s) * rate_);
    s.at_s = now_s;
  }
  if (s.tokens >= n) {
    s.tokens -= n;
    return 0;
  }
  return (n - s.tokens) / rate_;
}

void TokenBucket::Charge(const std::string& key, double now_s, double n) {
  if (rate_ <= 0) return;
  n = std::min(n, burst_);
  std::lock_guard lock(mu_);
  auto [it, fresh] = state_.try_emplace(key, State{burst_, now_s});
  State& s = it->second;
  if (!fresh) {
    s.tokens = std::min(burst_, s.tokens + (now_s - s.at_s) * rate_);
    s.at_s = now_s;
  }
  s.tokens = std::max(-burst_, s.tokens - n);
}

std::int64_t QuotaCounter::Take(const std::string& key, std::int64_t now_ms, std::uint64_t n) {
  if (limit_ == 0) return 0;
  const std::int64_t window = now_ms / window_ms_;
  std::lock_guard lock(mu_);
  if (state_.size() > 100000) {
    std::erase_if(state_, [&](const auto& kv) { return kv.second.window != window; });
  }
  State& s = state_[key];
  if (s.window != window) s = State{window, 0};
  if (s.used + n > limit_) return (window + 1) * window_ms_ - now_ms;
  s.used += n;
  return 0;
}

}  // namespace parley::core
