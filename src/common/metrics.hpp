// A small Prometheus registry: counters, gauges and histograms with labels,
// rendered in the text exposition format, plus the standard process metrics
// (process_resident_memory_bytes, process_cpu_seconds_total,
// process_open_fds, process_start_time_seconds) read from /proc at render time.
// No globals: one Registry is made in main and passed to whoever records.
// Get* takes a lock; callers on hot paths keep the returned reference, which
// stays valid for the registry's life. Recording is lock-free (atomics).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(double by = 1.0);
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v);
  void Add(double by);
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // sorted, without +Inf
  void Observe(double v);
  // Cumulative counts per bucket (the last is +Inf), the sum and the count.
  std::vector<std::uint64_t> CumulativeCounts() const;
  double Sum() const;
  std::uint64_t Count() const;
  const std::vector<double>& UpperBounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
  std::atomic<std::uint64_t> count_{0};
};

// Latency buckets in seconds, 50 us to 10 s.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The same (name, labels) always returns the same object. `help` is taken
  // from the first call for a name.
  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& GetHistogram(std::string_view name, std::string_view help, const Labels& labels = {},
                          std::vector<double> upper_bounds = LatencyBuckets());

  // Prometheus text exposition (version 0.0.4) of everything, process
  // metrics included.
  std::string Render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley
