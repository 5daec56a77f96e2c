// A log-linear latency histogram in the manner of HdrHistogram: values in
// microseconds, three significant digits (relative error under 0.1%) from
// 1 us to 60 s, constant memory, O(1) record, mergeable across threads and
// processes, and serializable to JSON (only the non-empty buckets) so that
// worker processes can send theirs to the parent through a pipe.
#pragma once

#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <vector>

namespace parley::bench {

class Histogram {
 public:
  static constexpr std::uint64_t kMaxTrackedUs = 60'000'000;  // longer values count as 60 s

  Histogram();

  void RecordUs(std::uint64_t us);
  void Record(std::chrono::nanoseconds d);
  void Merge(const Histogram& other);
  void Clear();

  std::uint64_t count() const { return count_; }
  std::uint64_t min_us() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max_us() const { return max_; }  // exact, even past kMaxTrackedUs
  double mean_us() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }
  // The smallest value v such that at least q (0..1) of the samples are <= v,
  // reported as the upper edge of its bucket (never above the exact max).
  std::uint64_t PercentileUs(double q) const;

  // {"n":count,"min":..,"max":..,"sum":..,"b":[index,count,index,count,...]}
  boost::json::value ToJson() const;
  // Merges a ToJson() value into this; false if it is malformed.
  bool MergeJson(const boost::json::value& v);
  // {"count","mean_ms","p50_ms","p90_ms","p99_ms","p999_ms","max_ms"}
  boost::json::object Summary() const;

 private:
  static std::size_t IndexOf(std::uint64_t us);
  static std::uint64_t UpperEdge(std::size_t index);

  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t sum_ = 0;
};

}  // namespace parley::bench
