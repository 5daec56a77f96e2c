// In-process rate limiters (a cluster shares them through Redis later, behind
// the same calls). All are thread-safe and bounded in memory: idle keys are
// forgotten.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace parley::core {

// At most `limit` events per key in any sliding `window_s`. limit 0: no limit.
class WindowLimiter {
 public:
  WindowLimiter(std::uint32_t limit, double window_s) : limit_(limit), window_s_(window_s) {}

  // 0 when an event may happen now, else the seconds until one may.
  double RetryAfter(const std::string& key, double now_s);
  // Records an event (call after RetryAfter answered 0).
  void Add(const std::string& key, double now_s);

 private:
  void Prune(std::deque<double>& q, double now_s) const;
  void MaybeSweep(double now_s);

  std::uint32_t limit_;
  double window_s_;
  std::mutex mu_;
  std::unordered_map<std::string, std::deque<double>> events_;
  double last_sweep_s_ = 0;
};

// A token bucket per key: `rate` tokens a second, up to `burst`. rate 0: no limit.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst) {}
  // Takes `n` tokens if there are; else answers the seconds until there are.
  // A cost above the burst is taken as the burst (a full bucket always pays
  // for one event, however big).
  double Take(const std::string& key, double now_s, double n = 1.0);
  // Takes `n` tokens whether or not there are (a cost learnt after the
  // fact): the bucket may go into debt, at most one burst deep, and refuses
  // until it has refilled.
  void Charge(const std::string& key, double now_s, double n);

 private:
  struct State {
    double tokens;
    double at_s;
  };
  double rate_;
  double burst_;
  std::mutex mu_;
  std::unordered_map<std::string, State> state_;
  double last_sweep_s_ = 0;
};

// A quota per key and fixed window (a UTC day for contact discovery).
class QuotaCounter {
 public:
  QuotaCounter(std::uint64_t limit, std::int64_t window_ms)
      : limit_(limit), window_ms_(window_ms) {}
  // Takes n units; on refusal answers the milliseconds until the window resets.
  std::int64_t Take(const std::string& key, std::int64_t now_ms, std::uint64_t n);

 private:
  struct State {
    std::int64_t window = 0;
    std::uint64_t used = 0;
  };
  std::uint64_t limit_;
  std::int64_t window_ms_;
  std::mutex mu_;
  std::unordered_map<std::string, State> state_;
};

}  // namespace parley::core
